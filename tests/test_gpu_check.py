"""bench/gpu_check.sh on a machine without a GPU (CI): it says so and exits 2 at once, running nothing."""
import subprocess
import sys

import pytest

from tests.devices import CUDA
from tests.stack import ROOT


@pytest.mark.skipif(CUDA, reason="this machine has a GPU: the script would run its checks")
def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path)], cwd=ROOT, timeout=120,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "sees no GPU" in out.stderr
    assert list(tmp_path.iterdir()) == []  # no step ran
