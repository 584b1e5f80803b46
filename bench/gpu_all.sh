#!/usr/bin/env bash
# Every GPU measurement amploop has, in one device call; tables as text and JSON under $OUT.
#
#   bash bench/gpu_all.sh            # on the GPU host, from the repository root (about 6-8 minutes)
#   bash bench/gpu_all.sh --small    # a quick check of this script on the CPU (about 2 minutes)
#
# The GPU host has torch but not pydantic, SQLAlchemy or FastAPI, and no network. When they are
# missing, they are installed from bench/.wheelhouse (made here by bench/gpu_wheelhouse.sh and
# carried to the host with the working tree) into a temporary folder on PYTHONPATH.
#
# Steps, each under its own time limit, each recorded as ok or failed in $OUT/summary.json:
#   1. bench/train_gpu.py: GPT-2 124M and ResNet-50, plain loops, Fabric, Accelerate, amploop last;
#   2. amploop bench precision on mnist5k with --model resnet: fp32 against bf16 (accuracy, speed,
#      peak memory);
#   3. amploop train on mnist5k with --model resnet, defaults (precision auto, compile auto): the
#      choices it made and their recorded reasons.
set -uo pipefail
cd "$(dirname "$0")/.."

small=0
if [[ "${1:-}" == "--small" ]]; then small=1; fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ! $PY -c "import pydantic, sqlalchemy, fastapi, yaml" 2>/dev/null; then
  if compgen -G "bench/.wheelhouse/*.whl" > /dev/null; then
    $PY -m pip install --quiet --no-index --no-deps --target "$WORK/site" bench/.wheelhouse/*.whl \
      || echo "installing the wheelhouse failed; steps 2 and 3 will fail" >&2
    export PYTHONPATH="$WORK/site:${PYTHONPATH:-}"
  else
    echo "no bench/.wheelhouse: run bench/gpu_wheelhouse.sh here and carry it; steps 2 and 3 will fail" >&2
  fi
fi
export PYTHONPATH=".:${PYTHONPATH:-}"
export AMPLOOP_HOME="$WORK/home"

if (( small )); then
  device=cpu; gpu_args=(--device cpu --small); model=cnn; epochs=1; modes=fp32,bf16; limit=600
else
  device=cuda; gpu_args=(); model=resnet; epochs=3; modes=fp32,bf16; limit=420
fi

steps=()
run_step() {  # name, seconds, command...: stdout and stderr to $OUT/NAME.txt, status to the summary
  local name=$1 seconds=$2; shift 2
  local started=$SECONDS
  echo "== $name: $*" >&2
  timeout "$seconds" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  local rc=$?
  steps+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - started))}")
  tail -n 25 "$OUT/$name.txt" >&2
  if (( rc != 0 )); then tail -n 5 "$OUT/$name.err" >&2; fi
}

$PY - > "$OUT/machine.json" <<'PYEOF'
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "python": platform.python_version(), "torch": torch.__version__,
    "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
}, indent=1))
PYEOF

run_step train_gpu "$limit" $PY bench/train_gpu.py "${gpu_args[@]}"
run_step precision "$limit" $PY -m amploop bench precision --dataset mnist5k --model "$model" \
  --modes "$modes" --epochs "$epochs" --device "$device" --json
run_step train_defaults "$limit" $PY -m amploop train --dataset mnist5k --model "$model" \
  --epochs "$epochs" --device "$device" --json

{
  echo "{\"small\": $small, \"machine\": $(cat "$OUT/machine.json"), \"steps\": ["
  (IFS=,; echo "${steps[*]}")
  echo "]}"
} > "$OUT/summary.json"
echo
echo "step             rc  seconds   (full output: \$OUT/STEP.txt)"
for s in "${steps[@]}"; do
  $PY -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['step']:<16} {d['rc']:>2}  {d['seconds']:>7}\")" "$s"
done
