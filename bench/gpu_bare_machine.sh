#!/usr/bin/env bash
# The GPU checks of issue 9 on a CUDA machine that has torch, transformers and triton but no
# project venv and no network (how docs/performance.md's GPU figures were made):
#   1. here, with network: download the missing wheels for the machine's Python into .whl/
#      (the names and versions: docs/performance.md, "GPU decode"; pins from requirements/constraints.txt)
#   2. there, from the repository root:  OUT=/some/dir bash bench/gpu_bare_machine.sh
# It installs the wheels with pip --target (nothing system-wide), runs the CUDA tests, then
# bench/engine_gpu.py --profile; the logs and the JSON report land in $OUT. ~4 min on an H100.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/flashsight-gpu}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
T0=$SECONDS
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
  > "$OUT/pip.txt" 2>&1 || { cat "$OUT/pip.txt"; exit 1; }
export PYTHONPATH=$SITE:$PWD/services/common/src:$PWD/services/modelserver/src:$PWD/services/reasoner/src:$PWD/services/vision/src:$PWD
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)"
echo "== CUDA tests ($((SECONDS - T0)) s)"
timeout -k 5 "${TEST_S:-300}" python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/modelserver/test_cuda_graphs.py tests/vision/test_glm_cuda.py tests/modelserver/test_fused_step.py \
  > "$OUT/tests.txt" 2>&1
echo "tests rc=$?"; tail -3 "$OUT/tests.txt"
echo "== bench/engine_gpu.py --profile ($((SECONDS - T0)) s)"
timeout -k 10 "${BENCH_S:-600}" python3 bench/engine_gpu.py --profile --json "$OUT/engine_gpu.json" \
  > "$OUT/bench.txt" 2>&1
echo "bench rc=$?"; grep -v '^\s*$' "$OUT/bench.txt" | tail -40
echo "== done ($((SECONDS - T0)) s)"
