#!/usr/bin/env bash
# The inference benchmark on a CUDA machine, in one short run: installs the project (and
# transformers) into .venv-gpu, then times vits and vitl in fp32, fp16 and bf16, eager and
# torch.compile'd, against transformers (default attention, same precision) and, when
# OFFICIAL=/path/to/Depth-Anything-V2 is set, the official code.
#
#   bash benchmarks/bench_gpu.sh                       # MODELS="vits vitl" REPEATS=5 by default
#   OFFICIAL=~/src/Depth-Anything-V2 MODELS=vits bash benchmarks/bench_gpu.sh
#
# On a machine without a CUDA GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "bench_gpu.sh: no CUDA GPU on this machine (nvidia-smi finds none); nothing to measure"
    exit 0
fi
nvidia-smi -L

python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || pip install -q torch==2.13.0
pip install -q -e ".[hf]"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "bench_gpu.sh: torch $(python -c 'import torch; print(torch.__version__)') sees no CUDA device; install a CUDA build of torch 2.13.0 and rerun"
    exit 0
fi

args=(--device cuda --precisions fp32 fp16 bf16 --models ${MODELS:-vits vitl} --repeats "${REPEATS:-5}")
if [ -n "${OFFICIAL:-}" ]; then
    args+=(--official "$OFFICIAL")
fi
python benchmarks/bench_inference.py "${args[@]}"
