#!/usr/bin/env bash
# Sampling speed: gift's diffusion sampler against d1's generate() in PyTorch (d1_generate_torch.py beside this
# file) on the same CPU, model and prompts, side by side in one sitting, ROUNDS rounds each (best kept).
#   cluster/experiments/eval-speed.sh [--preset small] [--batch 8] [--prompt-len 48] [--gen 128] [--block 32] [--steps 64]
# gift lanes: default kernels, --gemm onednn, --precision bf16 (and GIFT_BF16_KERNEL=native where oneDNN has
# it); PyTorch lanes: eager fp32, eager bf16 autocast (COMPILE=1 adds torch.compile). Needs torch in a venv
# outside the repository: PEER_VENV (default /tmp/gift-peer-venv), made with `pip install torch numpy
# safetensors` when missing. Threads: THREADS (default: all cores) for both sides. Prints one table and, last,
# one JSON line with each lane's generated tokens/s and gift's best over PyTorch's best.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
PEER_VENV=${PEER_VENV:-/tmp/gift-peer-venv}
PRESET=small BATCH=8 PLEN=48 GEN=128 BLOCK=32 STEPS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=$2; shift 2 ;; --batch) BATCH=$2; shift 2 ;; --prompt-len) PLEN=$2; shift 2 ;;
    --gen) GEN=$2; shift 2 ;; --block) BLOCK=$2; shift 2 ;; --steps) STEPS=$2; shift 2 ;;
    *) echo "eval-speed: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$PEER_VENV/bin/python" ] || ! "$PEER_VENV/bin/python" -c 'import torch, safetensors' 2>/dev/null; then
  python3 -m venv "$PEER_VENV" && "$PEER_VENV/bin/pip" install -q torch numpy safetensors
fi
GIFT=${GIFT:-.build/release/gift}
[ -x "$GIFT" ] || { echo "eval-speed: build gift first (swift build -c release)" >&2; exit 2; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
$GIFT init --preset "$PRESET" --out "$WORK/model" >/dev/null
VOCAB=$(python3 -c "import json; c = json.load(open('$WORK/model/config.json')); print(c['mask_token_id'])")
python3 - "$WORK/prompts.jsonl" "$BATCH" "$PLEN" "$VOCAB" <<'EOF'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"prompt_ids": [random.randrange(int(sys.argv[4])) for _ in range(int(sys.argv[3]))]}) + "\n")
EOF
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
echo "eval-speed: $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads, preset $PRESET, batch $BATCH, prompt $PLEN, gen $GEN, block $BLOCK, steps $STEPS"
declare -A best
LANE_LIMIT=${LANE_LIMIT:-900}   # seconds a lane's run may take (PyTorch's bf16 autocast crawls on CPUs without bf16)
lane() {   # name, command...: best wall seconds of ROUNDS runs, printed as it goes
  local name=$1; shift
  for _ in $(seq "$ROUNDS"); do
    local t0 t1 s
    t0=$(date +%s.%N)
    if ! timeout "$LANE_LIMIT" "$@" >/dev/null; then echo "  $name: failed or over ${LANE_LIMIT} s" >&2; return 0; fi
    t1=$(date +%s.%N)
    s=$(python3 -c "print(round($t1 - $t0, 3))")
    echo "  $name: $s s" >&2
    if [ -z "${best[$name]:-}" ] || python3 -c "import sys; sys.exit(0 if $s < ${best[$name]} else 1)"; then best[$name]=$s; fi
  done
}
G=(generate --model "$WORK/model" --prompts "$WORK/prompts.jsonl" --gen-length "$GEN" --block-length "$BLOCK" --steps "$STEPS" --batch "$BATCH")
P=("$PEER_VENV/bin/python" cluster/experiments/d1_generate_torch.py "$WORK/model" --prompt-len "$PLEN" --batch "$BATCH" --gen "$GEN" --block "$BLOCK" --steps "$STEPS" --threads "$THREADS" --rounds 1)
lane "gift default" $GIFT "${G[@]}"
lane "gift --gemm onednn" $GIFT "${G[@]}" --gemm onednn
lane "gift --precision bf16" $GIFT "${G[@]}" --precision bf16
if $GIFT bench --help >/dev/null 2>&1 && GIFT_BF16_KERNEL=native $GIFT "${G[@]}" --gemm onednn --precision bf16 >/dev/null 2>&1; then
  lane "gift bf16 native (oneDNN)" env GIFT_BF16_KERNEL=native $GIFT "${G[@]}" --gemm onednn --precision bf16
fi
lane "torch eager fp32" "${P[@]}"
lane "torch eager bf16 autocast" "${P[@]}" --bf16
if [ "${COMPILE:-0}" = 1 ]; then
  lane "torch compile fp32" "${P[@]}" --compile
  lane "torch compile bf16 autocast" "${P[@]}" --compile --bf16
fi
TOKENS=$((BATCH * GEN))
python3 - "$TOKENS" "$(for k in "${!best[@]}"; do printf '%s=%s\n' "$k" "${best[$k]}"; done)" <<'EOF'
import json, sys
tokens, lanes = int(sys.argv[1]), dict(l.split("=", 1) for l in sys.argv[2].splitlines() if l)
rows = sorted(((k, float(v)) for k, v in lanes.items()), key=lambda r: r[1])
print(f"{'lane':32} {'wall s':>8} {'gen tok/s':>10}")
for k, s in rows:
    print(f"{k:32} {s:8.2f} {tokens / s:10.1f}")
g = min(s for k, s in rows if k.startswith("gift")); t = min(s for k, s in rows if k.startswith("torch"))
print(json.dumps({"lanes": {k: round(tokens / s, 2) for k, s in rows}, "gift_best_over_torch_best": round(t / g, 3)}))
EOF
