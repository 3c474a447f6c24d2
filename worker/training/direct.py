"""The fenced fast path: a step's forward, backward, update and zero-grad calls, without
PyTorch's Python around them. The only module that touches PyTorch's private names.

For a small model on a CPU most of a step is Python, not arithmetic: a 2-layer MLP's step
takes about 110 us, of which Module.__call__'s hook checks, Tensor.backward's argument
handling and Optimizer.step's bookkeeping (its profiler scope, the lists of parameters,
gradients and state it gathers anew every step, their grouping by device and dtype) take
30-35 us. The functions here make the same kernel calls with the same arguments, so a step
computes the same bits (tests/worker/test_direct.py compares every weight with the
ordinary calls'). Each shortcut is taken only where it is exact; otherwise the ordinary
call runs. Settings.direct_kernels (env DIRECT_KERNELS) switches the whole module off:
worker/training/step.py then makes the ordinary calls.
"""
import weakref
from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.graph import _engine_run_backward
from torch.nn.modules import module as _module
from torch.optim import optimizer as _optimizer


def _hooked(mod: nn.Module) -> bool:
    return bool(mod._forward_pre_hooks or mod._forward_hooks or mod._backward_pre_hooks or mod._backward_hooks)


def forward(model: nn.Sequential, loss_fn: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss_fn(model(xb), yb), calling each layer's and the loss's ``forward`` directly.

    That is what Module.__call__ does when no hook is registered (about 1 us a module).
    The layers' own sub-modules are still called the ordinary way.
    """
    if _module._has_any_global_hook() or any(_hooked(m) for m in (model, loss_fn, *model)):
        return lambda xb, yb: loss_fn(model(xb), yb)
    layers, loss_forward = [m.forward for m in model], loss_fn.forward

    def run(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            xb = layer(xb)
        return loss_forward(xb, yb)

    return run


def backward(loss: torch.Tensor) -> None:
    """``loss.backward()`` for a plain scalar loss: the engine call torch.autograd.backward makes."""
    _engine_run_backward((loss,), (torch.ones_like(loss, memory_format=torch.preserve_format),),
                         False, False, (), allow_unreachable=True, accumulate_grad=True)


def zero_grad(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """``optimizer.zero_grad(set_to_none=True)`` without its profiler scope and dispatch:
    about 8 us a step, a few percent of a small model's step on a CPU."""
    every_param = [p for group in optimizer.param_groups for p in group["params"]]

    def run() -> None:
        for p in every_param:
            p.grad = None

    return run


# The fused kernels PyTorch's Adam, AdamW and SGD call (torch/optim/adam.py `_fused_adam`,
# sgd.py `_fused_sgd`), and the state each needs per parameter.
_STATE = {"adam": ("exp_avg", "exp_avg_sq", "step"), "sgd": ("momentum_buffer",)}


def update(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """``optimizer.step()``. For fused Adam, AdamW and SGD with one parameter group it calls
    the fused kernel itself, once every parameter has a gradient and its state exists (the
    first step, which creates the state, is an ordinary one).

    Anything unusual takes ``optimizer.step()``: hooks, a tensor learning rate or betas,
    amsgrad, a parameter without a gradient, a gradient scaler's attributes, state not yet
    created or no longer matching the parameters.
    """
    kind = "adam" if isinstance(optimizer, torch.optim.Adam) else \
        "sgd" if isinstance(optimizer, torch.optim.SGD) else None
    groups = optimizer.param_groups
    if kind is None or len(groups) != 1 or not groups[0].get("fused") or groups[0].get("differentiable") \
            or groups[0].get("capturable"):
        return optimizer.step
    params = groups[0]["params"]
    if not params or len({(p.device, p.dtype) for p in params}) != 1:
        return optimizer.step  # PyTorch calls the kernel once per device and dtype
    started = [False]
    names = _STATE[kind]
    cached: dict = {}  # the state's tensors, as lists; valid while optimizer.state is the same dict

    def state_lists() -> list[list[torch.Tensor]] | None:
        state = optimizer.state
        if cached.get("of") is not state:
            per_param = [state.get(p) for p in params]
            if any(not s or any(n not in s for n in names) for s in per_param):
                return None  # before the first step, or after momentum was switched on
            cached.update(of=state, lists=[[s[n] for s in per_param] for n in names])
        return cached["lists"]

    def plain() -> bool:  # checked every step: hooks and a scaler's attributes can come later
        return not (_optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks
                    or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                    or getattr(optimizer, "grad_scale", None) is not None
                    or getattr(optimizer, "found_inf", None) is not None)

    def step() -> None:
        # load_state_dict (a rollback) replaces the group: read it anew every step.
        g = optimizer.param_groups[0]
        if g["params"] is not params:
            optimizer.step()
            return
        grads = [p.grad for p in params]
        lr = g["lr"]
        if not started[0] or any(t is None for t in grads) or isinstance(lr, torch.Tensor) or not plain():
            started[0] = True
            optimizer.step()
            return
        if kind == "adam":
            beta1, beta2 = g["betas"]
            lists = state_lists()
            if lists is None or g["amsgrad"] or isinstance(beta1, torch.Tensor) or isinstance(beta2, torch.Tensor):
                optimizer.step()
                return
            exp_avgs, exp_avg_sqs, steps = lists
            kernel = torch._fused_adamw_ if g["decoupled_weight_decay"] else torch._fused_adam_
            with torch.no_grad():
                torch._foreach_add_(steps, 1)
                kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr,
                       beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"],
                       maximize=g["maximize"], grad_scale=None, found_inf=None)
        else:
            momentum = g["momentum"]
            buffers: list[torch.Tensor] = []
            if momentum != 0:
                lists = state_lists()
                if lists is None:
                    optimizer.step()
                    return
                buffers = lists[0]
            with torch.no_grad():
                torch._fused_sgd_(params, grads, buffers, weight_decay=g["weight_decay"], momentum=momentum,
                                  lr=lr, dampening=g["dampening"], nesterov=g["nesterov"],
                                  maximize=g["maximize"], is_first_step=False, grad_scale=None, found_inf=None)
        # What a learning-rate scheduler's wrapper of optimizer.step records (it warns when a
        # schedule steps before the optimizer has); the kernel call bypasses that wrapper.
        optimizer._opt_called = True

    return step


def _fusable(optimizer: torch.optim.Optimizer) -> tuple | None:
    """The fused kernel call the optimizer's next step would make, as a key (kind and every
    hyperparameter it takes), or None when that step must be the optimizer's own (as ``update``)."""
    kind = "adam" if isinstance(optimizer, torch.optim.Adam) else \
        "sgd" if isinstance(optimizer, torch.optim.SGD) else None
    groups = optimizer.param_groups
    if kind is None or len(groups) != 1:
        return None
    g = groups[0]
    if not g.get("fused") or g.get("differentiable") or g.get("capturable") or isinstance(g["lr"], torch.Tensor) \
            or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks \
            or getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        return None
    if any(p.grad is None for p in g["params"]) or _state_lists(optimizer, kind, g) is None:
        return None  # its first step (which creates the state) is an ordinary one
    if kind == "adam":
        if g["amsgrad"] or any(isinstance(b, torch.Tensor) for b in g["betas"]):
            return None
        return kind, g["lr"], *g["betas"], g["weight_decay"], g["eps"], g["maximize"], g["decoupled_weight_decay"]
    return kind, g["lr"], g["momentum"], g["dampening"], g["nesterov"], g["weight_decay"], g["maximize"]


def update_together(optimizers: list[torch.optim.Optimizer], steps: list[Callable[[], None]]) -> None:
    """Steps each optimizer (a pack's members', worker/training/packed.py): those whose next step is
    the same fused Adam or SGD call share one call over all their parameters, the rest take their
    own ``steps``. The fused kernels update each tensor on its own, so a shared call computes the
    bits each optimizer's own call would (tests/worker/test_packed.py); it saves a call's 20 us a member.
    """
    if _optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks:
        keys = [None] * len(optimizers)
    else:
        keys = [_fusable(o) for o in optimizers]
    shared: dict[tuple, list[torch.optim.Optimizer]] = {}
    for optimizer, key, own in zip(optimizers, keys, steps):
        if key is None:
            own()
        else:
            shared.setdefault(key, []).append(optimizer)
    for key, group in shared.items():
        _fused_call(key, group)


# Per optimizer: (its param list, its state dict, the state's tensors as lists by name), valid
# while both are the same objects (load_state_dict replaces them). Reading the state by
# parameter hashes each tensor in Python: 20 us a member a step, as much as the call saved.
_LISTS: "weakref.WeakKeyDictionary[torch.optim.Optimizer, tuple]" = weakref.WeakKeyDictionary()


def _state_lists(optimizer: torch.optim.Optimizer, kind: str, g: dict) -> list[list[torch.Tensor]] | None:
    cached = _LISTS.get(optimizer)
    if cached is not None and cached[0] is g["params"] and cached[1] is optimizer.state:
        return cached[2]
    names = _STATE[kind] if kind == "adam" or g["momentum"] != 0 else ()
    per_param = [optimizer.state.get(p) for p in g["params"]]
    if any(not st or any(n not in st for n in names) for st in per_param):
        return None
    lists = [[st[n] for st in per_param] for n in names]
    _LISTS[optimizer] = (g["params"], optimizer.state, lists)
    return lists


def _fused_call(key: tuple, optimizers: list[torch.optim.Optimizer]) -> None:
    params = [p for o in optimizers for p in o.param_groups[0]["params"]]
    grads = [p.grad for p in params]
    lists = [_LISTS[o][2] for o in optimizers]  # filled by _fusable, just before
    state = [[t for member in lists for t in member[n]] for n in range(len(lists[0]))]
    with torch.no_grad():
        if key[0] == "adam":
            _, lr, beta1, beta2, weight_decay, eps, maximize, decoupled = key
            exp_avgs, exp_avg_sqs, steps = state
            torch._foreach_add_(steps, 1)
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps,
                   amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps,
                   maximize=maximize, grad_scale=None, found_inf=None)
        else:
            _, lr, momentum, dampening, nesterov, weight_decay, maximize = key
            buffers = state[0] if momentum != 0 else []
            torch._fused_sgd_(params, grads, buffers, weight_decay=weight_decay, momentum=momentum, lr=lr,
                              dampening=dampening, nesterov=nesterov, maximize=maximize, is_first_step=False,
                              grad_scale=None, found_inf=None)
    for o in optimizers:
        o._opt_called = True  # as update's step records it for the schedule's check
