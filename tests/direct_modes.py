"""The two ways a training step runs: with worker/training/direct.py's kernel calls, and
with the ordinary PyTorch calls (Settings.direct_kernels off). Tests that exercise the
step take ``direct`` from DIRECT, so both ways must compute the same bits."""
import pytest

DIRECT = [pytest.param(True, id="direct"), pytest.param(False, id="ordinary")]
