#!/usr/bin/env bash
# The whole GPU comparison on one GPU, sized for about 8 minutes: genjax and
# every form of each PyTorch twin, float32 and bfloat16, at realistic batch
# sizes (benchmarks/benchmark.py's GPU_PRESET), peak device memory with XLA's
# preallocation off. Writes benchmarks/results/gpu.json; more flags are
# passed on (--output=..., --experiments=..., --batches=tiny for a check on
# a CPU in seconds).
#
#   benchmarks/gpu.sh
#   benchmarks/gpu.sh --batches=tiny --windows=1 --window_seconds=0.1 --output=/tmp/gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false
exec python -m benchmarks.benchmark --preset=gpu "$@"
