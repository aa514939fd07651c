#!/usr/bin/env bash
# The whole CUDA check of sergrad in one run (< 10 minutes on one GPU; each step has its own
# timeout, and a failing step does not stop the next). Run from the repository root on a
# machine with torch + CUDA, numpy, pyarrow and scikit-learn (no install needed: PYTHONPATH):
#
#     bash sergrad/bench/gpu_check.sh            # results in $OUT (default /tmp/sergrad-gpu)
#     DEVICE=cpu QUICK=1 bash sergrad/bench/gpu_check.sh   # dry run of the plumbing on a CPU
#
# Steps (worst case, all timeouts reached: 530 s): 1. the device; 2. `bench attack` (cnn vs
# logreg_colcorr, paper fc1 256x988, mixed precision); 3. `bench fl` stacked runs (16, 64 and
# 256 paper-shape runs in one engine) against the same runs one by one and against the CPU
# reference engine on one core, measured in the same run (the ">= 20x per device" ratio);
# 4. `bench fl` engines on the CPU (one core each); 5. a 50-epoch paper-shape cnn on the
# comovement leak (early stopping off, training budget 120 s).
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-/tmp/sergrad-gpu}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
mkdir -p "$OUT"
if [ -n "${QUICK:-}" ]; then
  ATTACK="--n-train 60 --n-test 20 --shape 16 40"; LONG="--n-train 60 --n-test 20 --shape 16 40"
  EPOCHS=2; FL="--quick --seconds 0.1"; STACK="2 3"
else
  ATTACK="--n-train 2000 --n-test 500"; LONG="--n-train 4000 --n-test 1000"
  EPOCHS=50; FL="--seconds 2"; STACK="16 64 256"
fi
step() {  # name, timeout seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$OUT/log.txt"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.md" 2> "$OUT/$name.err"
  echo "   rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/log.txt"
  cat "$OUT/$name.md"
}
step device 30 "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
step attack 100 "$PY" -m sergrad.bench attack --device "$DEVICE" --models cnn logreg_colcorr \
  --epochs 3 $ATTACK
step fl_stacked 150 "$PY" -m sergrad.bench fl --device "$DEVICE" --shapes paper --parts stacked \
  --procs 1 --stack $STACK $FL
step fl_cpu 80 "$PY" -m sergrad.bench fl --device cpu --shapes paper --parts engines \
  --procs 1 $FL --seconds 1
step cnn50 170 "$PY" -m sergrad.bench attack --device "$DEVICE" --models cnn --leak comovement \
  --epochs "$EPOCHS" --max-seconds 120 $LONG
echo "results in $OUT"
