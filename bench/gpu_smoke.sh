#!/usr/bin/env bash
# GPU smoke check, one command on a GPU host (from the repository root, after `make install`):
#
#     bash bench/gpu_smoke.sh [SPEC] [EPOCHS]        # default: experiments/digits.yaml, 3 epochs
#
# Prints the GPUs TensorFlow sees (name, compute capability), then trains SPEC for EPOCHS epochs and prints
# the strategy, replicas and speed settings dlrun resolved (env.json), the examples/s and the wall time.
# Exits non-zero when TensorFlow sees no GPU or training fails. With several GPUs, `strategy: auto` picks
# mirrored over all of them; add `--set distribute.strategy=default` after the script's arguments to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SPEC=${1:-experiments/digits.yaml}
EPOCHS=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
export TF_CPP_MIN_LOG_LEVEL=2

"$PY" - <<'PY'
import sys
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
print(f"TensorFlow {tf.__version__}, CUDA build: {tf.test.is_built_with_cuda()}, GPUs: {len(gpus)}")
for gpu in gpus:
    details = tf.config.experimental.get_device_details(gpu)
    print(f"  {gpu.name}: {details.get('device_name', '?')}, compute capability {details.get('compute_capability')}")
if not gpus:
    sys.exit("no GPU visible to TensorFlow: check nvidia-smi, the driver and the CUDA wheels (docs/gpu-hosts.md)")
PY

RUN=$(mktemp -d)/run
START=$(date +%s.%N)
"$PY" -m runner train "$SPEC" --set "train.epochs=$EPOCHS" --run-dir "$RUN" "$@"
END=$(date +%s.%N)

"$PY" - "$RUN" "$START" "$END" <<'PY'
import json, sys
from pathlib import Path

run, start, end = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
env = json.loads((run / "env.json").read_text())
metrics = json.loads((run / "metrics.json").read_text())
gpus = [d["name"] for d in env["devices"] if d["type"] == "GPU"]
print(f"devices: {', '.join(gpus) or 'no GPU'}")
print(f"strategy: {env['strategy']}, replicas: {env['replicas']}")
print(f"speed: {env['speed']}")
print(f"examples/s (epochs 2..N): {metrics['throughput']['examples_per_sec']}")
print(f"wall: {end - start:.1f} s, run directory: {run}")
PY
