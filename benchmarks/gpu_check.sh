#!/usr/bin/env bash
# The GPU check (issue 21): on a machine with a CUDA device, in under 5 minutes,
#   1. the model tests on device "cuda" (FLARESEQ_TEST_DEVICE=cuda: every MODELS entry's
#      training step, CPU-vs-GPU equality and the estimator on the GPU, KerasLSTM's fused
#      and recurrent-dropout paths against a plain autograd loop; test_models_common.py's
#      estimator tests pick the GPU themselves, device="auto");
#   2. benchmarks/train.py on the GPU (lstm and stacked-lstm, with and without recurrent
#      dropout, no Keras), printing its RESULT line.
#
#   bash benchmarks/gpu_check.sh                         # after `make install`
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh    # the same steps on the CPU (a rehearsal)
#   PYTHON=python3 bash benchmarks/gpu_check.sh
#
# It needs a CUDA build of torch: the PyPI wheel of torch==2.13.0 for Linux x86-64 is one
# (this project's development machine installs a CPU wheel of the same version). Without a
# CUDA device it says so and exits 2. Output is kept in bench-data/gpu-check/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
OUT="bench-data/gpu-check"
mkdir -p "$OUT"
started=$SECONDS

GPU_CHECK_DEVICE="$DEVICE" "$PY" - <<'PYEOF'
import os
import sys

import torch

device = os.environ["GPU_CHECK_DEVICE"]
print(f"gpu_check: torch {torch.__version__}, CUDA build {torch.version.cuda or 'no'}; device {device}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; run this on a machine with one, with a CUDA build of torch "
              "(or GPU_CHECK_DEVICE=cpu for a rehearsal on the CPU).", file=sys.stderr)
        sys.exit(2)
    p = torch.cuda.get_device_properties(0)
    print(f"gpu_check: cuDNN {torch.backends.cudnn.version()}, {torch.cuda.device_count()} device(s); "
          f"device 0: {p.name}, {p.total_memory / 2**30:.0f} GiB")
PYEOF

echo "== 1. model tests on $DEVICE"
# one process (-p no:xdist) owns the device; the timeouts keep the whole check under 5 minutes
FLARESEQ_TEST_DEVICE="$DEVICE" timeout 150 "$PY" -m pytest -p no:xdist -p no:cacheprovider -q -rs \
  tests/test_models_device.py tests/test_models_recurrent.py tests/test_models_common.py \
  2>&1 | tee "$OUT/tests.txt"
if grep -q "CUDA is not available" "$OUT/tests.txt"; then
  echo "gpu_check: FAILED, the model tests skipped the GPU" >&2
  exit 1
fi

echo "== 2. benchmarks/train.py on $DEVICE"
timeout 120 "$PY" benchmarks/train.py --device "$DEVICE" --no-keras --models lstm stacked-lstm \
  --batches 20 --repeats 2 2>&1 | tee "$OUT/train.txt"
grep -q '^RESULT {' "$OUT/train.txt"

echo "gpu_check: passed on $DEVICE in $((SECONDS - started)) s; output in $OUT/"
