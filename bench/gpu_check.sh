#!/usr/bin/env bash
# Every CUDA test and GPU benchmark in one go, inside 10 minutes: for a GPU machine lent for a short time.
#
#   bench/gpu_check.sh [LOG_DIR]      # default $OUT, else /tmp/trainyard-gpu-check
#   PYTHON=/opt/torch/.venv/bin/python3 bench/gpu_check.sh    # an interpreter with CUDA torch
#
# Each step has its own time limit (their sum is under 10 minutes) and its whole log under
# LOG_DIR; the summary at the end says which passed. It stops at once, exit 2, where torch
# sees no GPU. docs/workers.md says what each step checks.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LOG_DIR=${1:-${OUT:-/tmp/trainyard-gpu-check}}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
summary=()
failed=0

step() {  # step NAME SECONDS COMMAND...: runs it under a limit, keeps its log, prints its tail
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (at most ${limit} s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$LOG_DIR/$name.log" 2>&1
    rc=$?
    tail -n 30 "$LOG_DIR/$name.log"
    [ "$rc" -eq 0 ] || failed=1
    summary+=("$(printf '%-14s %s in %d s' "$name" "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")" $(( $(date +%s) - start )))")
}

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_check: torch ($PY) sees no GPU; nothing to check here" >&2
    exit 2
fi
"$PY" -c "import torch; print(torch.__version__, '|', ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))"

# 1. Every test with a CUDA case: the same assertions as on the CPU, on the GPU (tests/devices.py),
#    mixed precision, a GPU worker through the real API, GPU memory after OOM, and data parallel
#    ranks on NCCL (two GPUs: 2 ranks; one GPU: 1 rank) equal to one process.
step cuda-tests 240 "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/worker tests/ml tests/app tests/api \
    tests/e2e/test_workers.py
# 2. The engine against the loops people write, on the GPU: GPU-resident batches against a
#    pinned-memory DataLoader loop and Lightning, and bf16 against fp32 on the CNN.
step train-speed 180 "$PY" bench/train_speed.py --device cuda --rounds 3
# 3. 64 packed study members on one GPU worker against the same 64 one after another (issue 20's
#    target: at least 20x), through a real API and `trainyard worker --devices 0`.
step packing 150 "$PY" bench/packing.py --members 64 --epochs 5 --rounds 1 --device cuda
summary_line() { printf '%s\n' "${summary[@]}"; }
echo
echo "== summary ($GPUS GPU(s); logs in $LOG_DIR)"
summary_line | tee "$LOG_DIR/summary.txt"
exit $failed
