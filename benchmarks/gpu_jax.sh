#!/usr/bin/env bash
# The GPU benchmark for the device tool (one H100/H200 with JAX, no TensorFlow), run from the
# repository root there. Carry the keras wheel, fetched here once with:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
# (the H100/H200 image has ml-dtypes, h5py and rich, not keras, namex or optree), then
#   run(command="bash benchmarks/gpu_jax.sh", carry=[".whl"], timeout_s=400)  # about 2 minutes on an H200
# Results land in $OUT/gpu_jax.json (and benchmarks/results/ when copied back).
set -euo pipefail
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export KERAS_BACKEND=jax
nvidia-smi --query-gpu=name,memory.total --format=csv || true
timeout 450 python3 benchmarks/gpu_jax.py --batch_size "${BATCH_SIZE:-64}" \
  --output "${OUT:-benchmarks/results}/gpu_jax.json"
