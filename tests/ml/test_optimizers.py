"""build_optimizer: every option reaches torch, and the first steps follow PyTorch's
documented update rules, written out in plain tensor math (tests/ml/optimizer_rules.py).

The problem: nn.Linear(3, 2) on 4 fixed rows with mean squared error. Its gradient is
computed by hand too, so the reference shares nothing with autograd or torch.optim.
"""
import copy
import typing

import pytest
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import OPTIMIZER_CLASSES, build_optimizer
from app.ml.optim.conjugate_gradient import ConjugateGradient
from app.ml.optim.levenberg_marquardt import LevenbergMarquardt
from app.ml.optim.newton import Newton
from app.ml.optim.scaled_conjugate_gradient import ScaledConjugateGradient
from tests.ml.optimizer_rules import (
    adadelta_rule,
    adagrad_rule,
    adam_rule,
    adamax_rule,
    nadam_rule,
    radam_rule,
    rmsprop_rule,
    rprop_rule,
    sgd_rule,
)

STEPS = 3
TOL = {"rtol": 1e-5, "atol": 1e-6}

X = torch.tensor([[0.5, -1.0, 2.0],
                  [1.5, 0.25, -0.5],
                  [-2.0, 1.0, 0.75],
                  [0.1, 0.3, -1.2]])
Y = torch.tensor([[1.0, -0.5],
                  [0.0, 2.0],
                  [-1.5, 0.5],
                  [0.7, 0.2]])


def fresh_model() -> nn.Linear:
    torch.manual_seed(11)
    return nn.Linear(3, 2)


def mse_grads(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of mean((X w^T + b - Y)^2) by hand."""
    out = X @ w.T + b
    d_out = 2.0 * (out - Y) / out.numel()
    return d_out.T @ X, d_out.sum(dim=0)


def run_torch(opt_factory) -> list[torch.Tensor]:
    model = fresh_model()
    opt = opt_factory(model.parameters())
    loss_fn = nn.MSELoss()

    def closure():  # every torch optimizer takes one; L-BFGS needs it
        opt.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        return loss

    for _ in range(STEPS):
        opt.step(closure)
    return [model.weight.detach().clone(), model.bias.detach().clone()]


def run_by_hand(update) -> list[torch.Tensor]:
    """``update(t, p, g, state) -> new p`` with t counted from 1 and state per parameter."""
    model = fresh_model()
    params = [model.weight.detach().clone(), model.bias.detach().clone()]
    states = [{} for _ in params]
    for t in range(1, STEPS + 1):
        grads = mse_grads(*params)
        params = [update(t, p, g, s) for p, g, s in zip(params, grads, states)]
    return params


# (id, spec options with non-default values, hand-written rule; L-BFGS has its own test below)
CASES = [
    ("sgd", {"type": "sgd", "lr": 0.05, "weight_decay": 0.01},
     sgd_rule(lr=0.05, weight_decay=0.01)),
    ("sgd-momentum", {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.02},
     sgd_rule(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.02)),
    ("sgd-nesterov", {"type": "sgd", "lr": 0.03, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
     sgd_rule(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("adam", {"type": "adam", "lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.05},
     adam_rule(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    # amsgrad only matters once the second moment shrinks: a large lr and a short beta2 get
    # there within three steps (test_hand_rules_are_sensitive_to_the_options checks it does)
    ("adam-amsgrad", {"type": "adam", "lr": 0.1, "betas": [0.5, 0.6], "eps": 1e-7, "amsgrad": True},
     adam_rule(lr=0.1, betas=(0.5, 0.6), eps=1e-7, amsgrad=True)),
    ("adamw", {"type": "adamw", "lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1},
     adam_rule(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, decoupled=True)),
    ("adamw-amsgrad", {"type": "adamw", "lr": 0.1, "betas": [0.9, 0.5], "weight_decay": 0.3, "amsgrad": True},
     adam_rule(lr=0.1, betas=(0.9, 0.5), eps=1e-8, weight_decay=0.3, amsgrad=True, decoupled=True)),
    ("rmsprop", {"type": "rmsprop", "lr": 0.005, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.01},
     rmsprop_rule(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.01)),
    ("rmsprop-centered-momentum",
     {"type": "rmsprop", "lr": 0.005, "alpha": 0.8, "eps": 1e-6, "weight_decay": 0.02,
      "momentum": 0.7, "centered": True},
     rmsprop_rule(lr=0.005, alpha=0.8, eps=1e-6, weight_decay=0.02, momentum=0.7, centered=True)),
    ("adagrad", {"type": "adagrad", "lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.01,
                 "initial_accumulator_value": 0.2, "eps": 1e-8},
     adagrad_rule(lr=0.1, lr_decay=0.5, weight_decay=0.01, initial_accumulator_value=0.2, eps=1e-8)),
    ("adadelta", {"type": "adadelta", "lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.01},
     adadelta_rule(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01)),
    ("adamax", {"type": "adamax", "lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-6, "weight_decay": 0.02},
     adamax_rule(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.02)),
    ("nadam", {"type": "nadam", "lr": 0.01, "betas": [0.85, 0.95], "eps": 1e-6, "weight_decay": 0.02,
               "momentum_decay": 0.01},
     nadam_rule(lr=0.01, betas=(0.85, 0.95), eps=1e-6, weight_decay=0.02, momentum_decay=0.01)),
    ("nadam-decoupled", {"type": "nadam", "lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
     nadam_rule(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, decoupled=True)),
    # beta2 0.5 makes rho_t exceed 5 from step 2, so both branches of RAdam are exercised
    ("radam", {"type": "radam", "lr": 0.01, "betas": [0.9, 0.5], "eps": 1e-6, "weight_decay": 0.02},
     radam_rule(lr=0.01, betas=(0.9, 0.5), eps=1e-6, weight_decay=0.02)),
    ("radam-decoupled", {"type": "radam", "lr": 0.01, "betas": [0.9, 0.5], "weight_decay": 0.1,
                         "decoupled_weight_decay": True},
     radam_rule(lr=0.01, betas=(0.9, 0.5), eps=1e-8, weight_decay=0.1, decoupled=True)),
    # lr 0.3 overshoots, so some gradients flip sign within the steps and eta_minus is exercised too
    ("rprop", {"type": "rprop", "lr": 0.3, "etas": [0.4, 1.5], "step_sizes": [1e-3, 0.5]},
     rprop_rule(lr=0.3, etas=(0.4, 1.5), step_sizes=(1e-3, 0.5))),
    ("lbfgs", {"type": "lbfgs", "lr": 0.5, "max_iter": 1, "history_size": 5}, None),
    # Trainyard's own (app/ml/optim): their steps are checked against references written out by
    # hand in tests/ml/test_newton_lm.py, test_conjugate_gradient.py, test_scaled_conjugate_gradient.py.
    ("newton", {"type": "newton", "lr": 0.5, "damping": 1e-2, "line_search": None, "max_backtracks": 3}, None),
    ("levenberg_marquardt", {"type": "levenberg_marquardt", "mu": 0.01, "mu_inc": 5.0, "mu_max": 1e8}, None),
    ("conjugate_gradient", {"type": "conjugate_gradient", "beta": "fletcher_reeves", "restart": 3, "c2": 0.2}, None),
    ("scaled_conjugate_gradient", {"type": "scaled_conjugate_gradient", "sigma": 1e-5, "lambda_1": 1e-7}, None),
]
TORCH_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                 "adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
                 "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
                 "adadelta": torch.optim.Adadelta, "rprop": torch.optim.Rprop, "lbfgs": torch.optim.LBFGS}
OWN_CLASSES = {"newton": Newton, "levenberg_marquardt": LevenbergMarquardt,
               "conjugate_gradient": ConjugateGradient, "scaled_conjugate_gradient": ScaledConjugateGradient}
TORCH_CASES = [c for c in CASES if c[1]["type"] in TORCH_CLASSES]
RULE_CASES = [c for c in CASES if c[2] is not None]
# The implementation flags docs/equivalence.md names: fused where PyTorch has a fused
# optimizer, the multi-tensor path for the rest, neither for L-BFGS.
FLAGS = {"sgd": {"fused": True}, "adam": {"fused": True}, "adamw": {"fused": True},
         "adagrad": {"fused": True}, "adamax": {"foreach": True}, "nadam": {"foreach": True},
         "radam": {"foreach": True}, "rmsprop": {"foreach": True}, "adadelta": {"foreach": True},
         "rprop": {"foreach": True}, "lbfgs": {}, **{tag: {} for tag in OWN_CLASSES}}


def parse(options: dict) -> S.Optimizer:
    return S.JobSpec.model_validate({
        "dataset": "ds", "model": {"layers": [{"type": "linear", "out_features": 2}]},
        "loss": {"type": "mse"}, "optimizer": options,
    }).optimizer


def torch_kwargs(options: dict) -> dict:
    kw = {k: v for k, v in options.items() if k != "type"}
    for pair in ("betas", "etas", "step_sizes"):
        if pair in kw:
            kw[pair] = tuple(kw[pair])
    return kw


def test_cases_cover_every_optimizer_type():
    union = typing.get_args(typing.get_args(S.Optimizer)[0])
    tags = {typing.get_args(cls.model_fields["type"].annotation)[0] for cls in union}
    assert {opts["type"] for _, opts, _ in CASES} == tags == set(OPTIMIZER_CLASSES) == set(FLAGS)


@pytest.mark.parametrize("options", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_options_reach_the_param_groups(options):
    spec = parse(options)
    model = fresh_model()
    opt = build_optimizer(spec, model.parameters())
    assert type(opt) is OPTIMIZER_CLASSES[options["type"]]
    assert type(opt) is {**TORCH_CLASSES, **OWN_CLASSES}[options["type"]]
    (group,) = opt.param_groups
    assert [id(p) for p in group["params"]] == [id(model.weight), id(model.bias)]
    # every field of the parsed spec, defaults included, is what torch uses
    for name, value in spec.model_dump(exclude={"type"}).items():
        got = group[name]
        if name == "max_eval" and value is None:
            value = spec.max_iter * 5 // 4  # torch's documented default
        if name == "betas":
            assert isinstance(got, tuple) and got == tuple(value)
        else:
            assert got == value, name
    # and the non-default values given in the request are among them
    for name, value in torch_kwargs(options).items():
        assert group[name] == value, name
    for name, value in FLAGS[options["type"]].items():
        assert group[name] is value, name


@pytest.mark.parametrize("options, rule", [(c[1], c[2]) for c in RULE_CASES],
                         ids=[c[0] for c in RULE_CASES])
def test_first_steps_follow_the_documented_update_rule(options, rule):
    spec = parse(options)
    got = run_torch(lambda params: build_optimizer(spec, params))
    want = run_by_hand(rule)
    start = fresh_model()
    for g, w, p0 in zip(got, want, [start.weight.detach(), start.bias.detach()]):
        assert not torch.equal(g, p0), "the optimizer did not move the parameters"
        torch.testing.assert_close(g, w, **TOL)


@pytest.mark.parametrize("options", [c[1] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_first_steps_equal_torchs_own_optimizer_bitwise(options):
    spec = parse(options)
    cls = TORCH_CLASSES[options["type"]]
    kwargs = {**torch_kwargs(options), **FLAGS[options["type"]]}
    got = run_torch(lambda params: build_optimizer(spec, params))
    want = run_torch(lambda params: cls(params, **kwargs))
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_hand_rules_are_sensitive_to_the_options():
    """The reference rules must tell options apart, or the rule test proves nothing."""
    base = run_by_hand(sgd_rule(lr=0.05, momentum=0.9))
    assert not torch.allclose(base[0], run_by_hand(sgd_rule(lr=0.05, momentum=0.9, nesterov=True))[0])
    assert not torch.allclose(base[0], run_by_hand(sgd_rule(lr=0.05, momentum=0.9, dampening=0.1))[0])
    coupled = run_by_hand(adam_rule(lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1))
    decoupled = run_by_hand(adam_rule(lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1,
                                      decoupled=True))
    assert not torch.allclose(coupled[0], decoupled[0], **TOL)
    for amsgrad_case in ("adam-amsgrad", "adamw-amsgrad"):
        options, rule = next((o, r) for name, o, r in CASES if name == amsgrad_case)
        without = adam_rule(lr=options["lr"], betas=tuple(options["betas"]), eps=options.get("eps", 1e-8),
                            weight_decay=options.get("weight_decay", 0.0),
                            decoupled=options["type"] == "adamw")
        a, b = run_by_hand(rule), run_by_hand(without)
        assert not (torch.allclose(a[0], b[0], **TOL) and torch.allclose(a[1], b[1], **TOL)), amsgrad_case
    adagrad = dict(lr=0.1, weight_decay=0.01, initial_accumulator_value=0.2, eps=1e-8)
    assert not torch.allclose(run_by_hand(adagrad_rule(**adagrad))[0],
                              run_by_hand(adagrad_rule(lr_decay=0.5, **adagrad))[0], **TOL)
    plain = run_by_hand(rmsprop_rule(lr=0.005, alpha=0.8, eps=1e-6))
    centered = run_by_hand(rmsprop_rule(lr=0.005, alpha=0.8, eps=1e-6, centered=True))
    assert not torch.allclose(plain[0], centered[0], **TOL)


def test_adam_and_adamw_are_not_interchangeable():
    """Same options, different weight decay: swapping the classes would change results."""
    opts = {"lr": 0.02, "weight_decay": 0.1}
    adam = run_torch(lambda params: build_optimizer(parse({"type": "adam", **opts}), params))
    adamw = run_torch(lambda params: build_optimizer(parse({"type": "adamw", **opts}), params))
    assert not torch.allclose(adam[0], adamw[0], **TOL)


def test_default_options_equal_torch_defaults_step_for_step():
    for tag, cls in TORCH_CLASSES.items():
        got = run_torch(lambda params: build_optimizer(parse({"type": tag}), params))
        want = run_torch(lambda params: cls(params, **FLAGS[tag]))
        for g, w in zip(got, want):
            assert torch.equal(g, w), tag


def test_build_optimizer_does_not_mutate_the_spec():
    spec = parse(CASES[3][1])
    before = copy.deepcopy(spec.model_dump())
    build_optimizer(spec, fresh_model().parameters())
    assert spec.model_dump() == before


def lbfgs_by_hand(lr: float, history_size: int) -> list[torch.Tensor]:
    """PyTorch's L-BFGS with max_iter=1 and no line search: one two-loop update per step,
    over all parameters flattened into one vector."""
    start = fresh_model()
    flat = torch.cat([start.weight.detach().flatten(), start.bias.detach()])

    def grad(v):
        gw, gb = mse_grads(v[:6].view(2, 3), v[6:])
        return torch.cat([gw.flatten(), gb])

    dirs, steps, rhos, prev_g, d, t, h_diag = [], [], [], None, None, None, 1.0
    for n in range(1, STEPS + 1):
        g = grad(flat)
        if n == 1:
            d = -g
        else:
            y, s = g - prev_g, d * t
            ys = float(y @ s)
            if ys > 1e-10:
                if len(dirs) == history_size:
                    dirs.pop(0), steps.pop(0), rhos.pop(0)
                dirs.append(y), steps.append(s), rhos.append(1.0 / ys)
                h_diag = ys / float(y @ y)
            q, alphas = -g, []
            for y_i, s_i, r_i in reversed(list(zip(dirs, steps, rhos))):
                a = float(s_i @ q) * r_i
                alphas.insert(0, a)
                q = q - a * y_i
            r = q * h_diag
            for (y_i, s_i, r_i), a in zip(zip(dirs, steps, rhos), alphas):
                r = r + s_i * (a - float(y_i @ r) * r_i)
            d = r
        prev_g = g
        t = min(1.0, 1.0 / float(g.abs().sum())) * lr if n == 1 else lr
        flat = flat + t * d
    return [flat[:6].view(2, 3), flat[6:]]


def test_lbfgs_follows_the_two_loop_recursion():
    options = next(c[1] for c in CASES if c[0] == "lbfgs")
    got = run_torch(lambda params: build_optimizer(parse(options), params))
    want = lbfgs_by_hand(lr=options["lr"], history_size=options["history_size"])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOL)
    start = fresh_model()
    assert not torch.equal(got[0], start.weight.detach())


def test_our_optimizers_defaults_are_the_specs():
    """The spec's defaults (documented with their sources) are the classes' own."""
    for tag, cls in OWN_CLASSES.items():
        built = build_optimizer(parse({"type": tag}), fresh_model().parameters()).param_groups[0]
        plain = cls(fresh_model().parameters()).param_groups[0]
        assert {k: v for k, v in built.items() if k != "params"} == {k: v for k, v in plain.items() if k != "params"}
