#!/usr/bin/env bash
# Sampling speed: gift's diffusion sampler against d1's generate() in PyTorch (d1_generate_torch.py beside this
# file) on the same CPU, model and prompts, side by side in one sitting, ROUNDS rounds each (best kept).
#   cluster/experiments/eval-speed.sh [--preset small] [--batch 8] [--prompt-len 48] [--gen 128] [--block 32] [--steps 64]
# gift lanes: default kernels (and --lanes 1: the batch on all cores, not split one group per core), Fast-dLLM's --cache prefix|dual and --threshold 0.9, --gemm onednn, --precision
# bf16 (and GIFT_BF16_KERNEL=native where oneDNN has it); PyTorch lanes: eager fp32 with and without the same
# Fast-dLLM switches, eager bf16 autocast (COMPILE=1 adds torch.compile); ONLY=REGEX keeps the lanes whose
# names match. The rounds interleave the lanes; the figures compared are sampling seconds (gift generate's
# stderr line, the peer's generate() time), process seconds beside them. Needs torch in a venv
# outside the repository: PEER_VENV (default /tmp/gift-peer-venv), made with `pip install torch numpy
# safetensors` when missing. Threads: THREADS (default: all cores) for both sides. Prints one table and, last,
# one JSON line with each lane's generated tokens/s, gift's best over PyTorch's best and, for each switch, PyTorch's
# seconds over gift's.
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
declare -A best wall
LANE_LIMIT=${LANE_LIMIT:-900}   # seconds a lane's run may take (PyTorch's bf16 autocast crawls on CPUs without bf16)
ONLY=${ONLY:-.}                 # a regex: only the lanes whose names match it
G=(generate --model "$WORK/model" --prompts "$WORK/prompts.jsonl" --gen-length "$GEN" --block-length "$BLOCK" --steps "$STEPS" --batch "$BATCH")
P=("$PEER_VENV/bin/python" cluster/experiments/d1_generate_torch.py "$WORK/model" --prompt-len "$PLEN" --batch "$BATCH" --gen "$GEN" --block "$BLOCK" --steps "$STEPS" --threads "$THREADS" --rounds 1)
# name|command: gift prints its sampling seconds ("sampled N tokens in S s") to stderr, the peer its generate()
# seconds as JSON: those are compared (model load and process start left out on both sides)
LANES=(
  "gift default|$GIFT ${G[*]}"
  "gift --lanes 1|$GIFT ${G[*]} --lanes 1"
  "gift --cache prefix|$GIFT ${G[*]} --cache prefix"
  "gift --cache dual|$GIFT ${G[*]} --cache dual"
  "gift --threshold 0.9|$GIFT ${G[*]} --threshold 0.9"
  "gift --cache dual --threshold 0.9|$GIFT ${G[*]} --cache dual --threshold 0.9"
  "gift --gemm onednn|$GIFT ${G[*]} --gemm onednn"
  "gift --precision bf16|$GIFT ${G[*]} --precision bf16"
  "torch eager fp32|${P[*]}"
  "torch eager fp32 --cache prefix|${P[*]} --cache prefix"
  "torch eager fp32 --cache dual|${P[*]} --cache dual"
  "torch eager fp32 --threshold 0.9|${P[*]} --threshold 0.9"
  "torch eager fp32 --cache dual --threshold 0.9|${P[*]} --cache dual --threshold 0.9"
  "torch eager bf16 autocast|${P[*]} --bf16"
)
if [[ "gift bf16 native (oneDNN)" =~ $ONLY ]] && $GIFT bench --help >/dev/null 2>&1 && GIFT_BF16_KERNEL=native $GIFT "${G[@]}" --gemm onednn --precision bf16 >/dev/null 2>&1; then
  LANES+=("gift bf16 native (oneDNN)|env GIFT_BF16_KERNEL=native $GIFT ${G[*]} --gemm onednn --precision bf16")
fi
if [ "${COMPILE:-0}" = 1 ]; then
  LANES+=("torch compile fp32|${P[*]} --compile" "torch compile bf16 autocast|${P[*]} --compile --bf16")
fi
run_lane() {   # name, command (words split on spaces: the paths have none): one run; keeps the best seconds
  local name=$1 cmd=$2 t0 t1 out s w
  t0=$(date +%s.%N)
  # the last line of both streams: gift's timing line (stderr) or the peer's JSON (stdout)
  if ! out=$(timeout "$LANE_LIMIT" $cmd 2>&1 | grep -E 'sampled [0-9]+ tokens in|"seconds"' | tail -1) || [ -z "$out" ]; then
    echo "  $name: failed or over ${LANE_LIMIT} s" >&2; return 0
  fi
  t1=$(date +%s.%N)
  s=$(python3 -c "import json, re, sys; t = sys.argv[1]; m = re.search(r'tokens in ([0-9.]+) s', t); print(m.group(1) if m else json.loads(t)['seconds'])" "$out")
  w=$(python3 -c "print(round($t1 - $t0, 3))")
  echo "  $name: sampling $s s, process $w s" >&2
  if [ -z "${best[$name]:-}" ] || python3 -c "import sys; sys.exit(0 if $s < ${best[$name]} else 1)"; then best[$name]=$s; fi
  if [ -z "${wall[$name]:-}" ] || python3 -c "import sys; sys.exit(0 if $w < ${wall[$name]} else 1)"; then wall[$name]=$w; fi
}
# rounds outermost: every lane runs once per round, so a change of load hits all lanes alike
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  for l in "${LANES[@]}"; do
    name=${l%%|*}
    [[ $name =~ $ONLY ]] || continue
    run_lane "$name" "${l#*|}"
  done
done
TOKENS=$((BATCH * GEN))
python3 - "$TOKENS" "$(for k in "${!best[@]}"; do printf '%s=%s=%s\n' "$k" "${best[$k]}" "${wall[$k]}"; done)" <<'EOF'
import json, sys
tokens = int(sys.argv[1])
lanes = {k: (float(s), float(w)) for k, s, w in (l.split("=") for l in sys.argv[2].splitlines() if l)}
rows = sorted(lanes.items(), key=lambda r: r[1][0])
print(f"{'lane':46} {'sampling s':>10} {'gen tok/s':>10} {'process s':>10}")
for k, (s, w) in rows:
    print(f"{k:46} {s:10.2f} {tokens / s:10.1f} {w:10.2f}")
res = {"lanes": {k: round(tokens / s, 2) for k, (s, w) in rows}}
gift = [s for k, (s, w) in rows if k.startswith("gift")]
torch = [s for k, (s, w) in rows if k.startswith("torch")]
if gift and torch:
    res["gift_best_over_torch_best"] = round(min(torch) / min(gift), 3)
# the same algorithm on both sides: PyTorch's seconds over gift's
pairs = {"default": ("gift default", "torch eager fp32")}
for k in lanes:
    if k.startswith("gift --cache") or k.startswith("gift --threshold"):
        pairs[k[5:]] = (k, "torch eager fp32 " + k[5:])
for name, (g, t) in pairs.items():
    if g in lanes and t in lanes:
        res[f"{name}: gift over torch"] = round(lanes[t][0] / lanes[g][0], 3)
print(json.dumps(res))
EOF
