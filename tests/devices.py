"""The devices a test runs on: the CPU always, and CUDA too where the machine has a GPU.

CI has no GPU, so there these tests check the CPU and the test logic; on a GPU machine
(`pytest -k cuda`) the same assertions check the CUDA paths.
"""
import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICES = [pytest.param(torch.device("cpu"), id="cpu")] + \
    ([pytest.param(torch.device("cuda"), id="cuda")] if CUDA else [])
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a GPU")
