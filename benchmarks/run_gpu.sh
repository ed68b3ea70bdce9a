#!/usr/bin/env bash
# The GPU checks and the full benchmark, on a machine with a CUDA GPU.
#
#   bash benchmarks/run_gpu.sh [OUT_DIR]      (default: $OUT, else out/gpu)
#
# Writes OUT_DIR/pytest.txt, bench.log, gpu.md (the table, for RESULTS.md) and
# candidates.md (the many-model candidates of gpu_candidates.py). Fits in one
# 10-minute device call: about 15 s of tests, 130 s of bench, 2-3 min of candidates.
# Nothing is installed: aelab runs from this checkout (PYTHONPATH), and its
# dependencies (torch, torchvision, numpy, scipy, matplotlib, scikit-image,
# tqdm, pytest) are expected in the machine's Python, as on the lent H100 and
# Colab. Data: the MNIST subset embedded in data/ (no network needed).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-out/gpu}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export AELAB_OFFLINE=1 AELAB_CACHE=/tmp/aelab-cache MPLBACKEND=Agg
py=$(command -v python3 || command -v python)

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available()
else '')"

# -o addopts= : the project's pytest options name nbval, which the machine may lack.
timeout 120 "$py" -m pytest -o addopts= -p no:cacheprovider -q -s -rs \
    tests/test_gpu.py tests/test_train.py 2>&1 | tee "$out/pytest.txt"
tests=${PIPESTATUS[0]}

timeout 300 "$py" -c "from aelab.bench import main; main(out='$out/gpu.md')" 2>&1 \
    | tee "$out/bench.log"
bench=${PIPESTATUS[0]}

timeout 150 "$py" benchmarks/gpu_candidates.py 2>&1 | tee "$out/candidates.md"
candidates=${PIPESTATUS[0]}
echo "run_gpu: pytest exit $tests, bench exit $bench, candidates exit $candidates"
exit $(( tests || bench || candidates ))
