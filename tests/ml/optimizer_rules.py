"""PyTorch's documented optimizer update rules, written out in plain tensor math.

Each *_rule(options) returns update(t, p, g, state) -> the new p for step t (from 1), so
tests/ml/test_optimizers.py can check torch.optim against a reference that shares nothing
with it.
"""
import torch


def sgd_rule(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    def update(t, p, g, s):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            if t == 1:
                s["b"] = g.clone()
            else:
                s["b"] = momentum * s["b"] + (1 - dampening) * g
            g = g + momentum * s["b"] if nesterov else s["b"]
        return p - lr * g
    return update


def _decay_and_moments(p, g, s, lr, weight_decay, decoupled, b1, b2):
    """Adam's family: weight decay (decoupled: on the weight; else added to the gradient),
    then the two moment estimates, kept in s. Returns the (decayed) weight and gradient."""
    if decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
    s["v"] = b2 * s.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
    return p, g


def adam_rule(lr, betas, eps, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas

    def update(t, p, g, s):
        p, g = _decay_and_moments(p, g, s, lr, weight_decay, decoupled, b1, b2)
        m_hat = s["m"] / (1 - b1 ** t)
        if amsgrad:
            s["v_max"] = torch.maximum(s.get("v_max", torch.zeros_like(p)), s["v"])
            v_hat = s["v_max"] / (1 - b2 ** t)
        else:
            v_hat = s["v"] / (1 - b2 ** t)
        return p - lr * m_hat / (v_hat.sqrt() + eps)
    return update


def rmsprop_rule(lr, alpha, eps, weight_decay=0.0, momentum=0.0, centered=False):
    def update(t, p, g, s):
        if weight_decay:
            g = g + weight_decay * p
        s["v"] = alpha * s.get("v", torch.zeros_like(p)) + (1 - alpha) * g * g
        v = s["v"]
        if centered:
            s["g_avg"] = alpha * s.get("g_avg", torch.zeros_like(p)) + (1 - alpha) * g
            v = v - s["g_avg"] * s["g_avg"]
        step = g / (v.sqrt() + eps)
        if momentum > 0:
            s["b"] = momentum * s.get("b", torch.zeros_like(p)) + step
            return p - lr * s["b"]
        return p - lr * step
    return update


def adagrad_rule(lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    def update(t, p, g, s):
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay:
            g = g + weight_decay * p
        s["sum"] = s.get("sum", torch.full_like(p, initial_accumulator_value)) + g * g
        return p - clr * g / (s["sum"].sqrt() + eps)
    return update


def adadelta_rule(lr, rho, eps, weight_decay=0.0):
    def update(t, p, g, s):
        if weight_decay:
            g = g + weight_decay * p
        s["v"] = rho * s.get("v", torch.zeros_like(p)) + (1 - rho) * g * g
        u = s.get("u", torch.zeros_like(p))
        delta = (u + eps).sqrt() / (s["v"] + eps).sqrt() * g
        s["u"] = rho * u + (1 - rho) * delta * delta
        return p - lr * delta
    return update


def adamax_rule(lr, betas, eps, weight_decay=0.0):
    b1, b2 = betas

    def update(t, p, g, s):
        if weight_decay:
            g = g + weight_decay * p
        s["m"] = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
        s["u"] = torch.maximum(b2 * s.get("u", torch.zeros_like(p)), g.abs() + eps)
        return p - lr / (1 - b1 ** t) * s["m"] / s["u"]
    return update


def nadam_rule(lr, betas, eps, weight_decay=0.0, momentum_decay=4e-3, decoupled=False):
    b1, b2 = betas

    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def update(t, p, g, s):
        p, g = _decay_and_moments(p, g, s, lr, weight_decay, decoupled, b1, b2)
        s["prod"] = s.get("prod", 1.0) * mu(t)
        m_hat = mu(t + 1) * s["m"] / (1 - s["prod"] * mu(t + 1)) + (1 - mu(t)) * g / (1 - s["prod"])
        v_hat = s["v"] / (1 - b2 ** t)
        return p - lr * m_hat / (v_hat.sqrt() + eps)
    return update


def radam_rule(lr, betas, eps, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    rho_inf = 2 / (1 - b2) - 1

    def update(t, p, g, s):
        p, g = _decay_and_moments(p, g, s, lr, weight_decay, decoupled, b1, b2)
        m_hat = s["m"] / (1 - b1 ** t)
        rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho_t <= 5:
            return p - lr * m_hat
        adaptive = (1 - b2 ** t) ** 0.5 / (s["v"].sqrt() + eps)
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        return p - lr * m_hat * adaptive * rect
    return update


def rprop_rule(lr, etas, step_sizes):
    """Rprop as Riedmiller & Braun (1993) give it, without weight backtracking (PyTorch's variant): a step
    size per weight, times eta_plus while the gradient keeps its sign, eta_minus when it flips (and no step
    that time: the gradient counts as zero), clamped to step_sizes; the weight moves by -sign(g) * step."""
    eta_minus, eta_plus = etas
    smallest, largest = step_sizes

    def update(t, p, g, s):
        prev = s.get("prev", torch.zeros_like(p))
        step = s.get("step", torch.full_like(p, lr))
        agree = g * prev
        factor = torch.where(agree > 0, torch.full_like(p, eta_plus),
                             torch.where(agree < 0, torch.full_like(p, eta_minus), torch.ones_like(p)))
        s["step"] = (step * factor).clamp(smallest, largest)
        g = torch.where(agree < 0, torch.zeros_like(g), g)
        s["prev"] = g
        return p - g.sign() * s["step"]
    return update
