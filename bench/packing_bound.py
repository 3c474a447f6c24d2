"""What packing could gain at best on this machine: a plain PyTorch step of the 64-128-10 MLP at
batch 32 against the same step for 16 members fully vectorized (one batched forward and backward,
one loss over all members, one Adam over the stacked weights: what packing would do if it gave up
each member's bit-for-bit equality with its lone run). docs/benchmarks.md "Packed study members".

    .venv/bin/python bench/packing_bound.py 1    # torch threads (default 2)
"""
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

MEMBERS, BATCH = 16, 32


def microseconds(step, n: int = 400) -> float:
    for _ in range(50):
        step()
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3, foreach=True)
    x, y = torch.randn(BATCH, 64), torch.randint(0, 10, (BATCH,))

    def lone() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def lone_arithmetic() -> None:  # the forward and backward alone
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    m = MEMBERS
    w1, b1 = torch.randn(m, 128, 64, requires_grad=True), torch.randn(m, 1, 128, requires_grad=True)
    w2, b2 = torch.randn(m, 10, 128, requires_grad=True), torch.randn(m, 1, 10, requires_grad=True)
    stacked = torch.optim.Adam([w1, b1, w2, b2], 1e-3, foreach=True)
    xs, ys = torch.randn(m, BATCH, 64), torch.randint(0, 10, (m * BATCH,))

    def vectorized() -> None:
        stacked.zero_grad(set_to_none=True)
        hidden = torch.relu(torch.baddbmm(b1, xs, w1.transpose(1, 2)))  # (members, batch, 128)
        out = torch.baddbmm(b2, hidden, w2.transpose(1, 2))  # (members, batch, 10)
        (F.cross_entropy(out.reshape(m * BATCH, 10), ys) * m).backward()
        stacked.step()

    step, arithmetic, member = microseconds(lone), microseconds(lone_arithmetic), microseconds(vectorized) / m
    print(f"threads {torch.get_num_threads()}: lone step {step:.0f} us (forward+backward alone {arithmetic:.0f} us); "
          f"fully vectorized pack of {m}: {member:.0f} us a member -> at most {step / member:.1f}x over the lone step")


if __name__ == "__main__":
    main()
