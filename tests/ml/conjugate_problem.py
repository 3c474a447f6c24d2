"""The tiny problem both conjugate-gradient reference tests share: a 2-3-1 tanh network in float64
fitting targets made by another such network (so a loss near 0 is reachable), the same network
written on a flat weight vector, and its loss and gradient by autograd."""
import torch
from torch import nn


def fresh_net(seed: int = 1, scale: float = 1.0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


torch.manual_seed(0)
X = torch.randn(8, 2, dtype=torch.float64)
with torch.no_grad():
    Y = 2 * fresh_net(seed=42)(X)


def flat_weights(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def net_loss(w: torch.Tensor) -> torch.Tensor:
    """The same network on a flat vector: W1 (3x2), b1 (3), W2 (1x3), b2 (1)."""
    w1, b1, w2, b2 = w[0:6].view(3, 2), w[6:9], w[9:12].view(1, 3), w[12:13]
    out = torch.tanh(X @ w1.T + b1) @ w2.T + b2
    return ((out - Y) ** 2).mean()


def value_and_grad(loss_fn, w: torch.Tensor) -> tuple[float, torch.Tensor]:
    w = w.detach().requires_grad_(True)
    loss = loss_fn(w)
    (grad,) = torch.autograd.grad(loss, w)
    return float(loss.detach()), grad
