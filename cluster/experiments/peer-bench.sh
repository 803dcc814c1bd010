#!/usr/bin/env bash
# gift against its PyTorch peer (../shared/bench/pytorch_peer.py, or PEER_SCRIPT) on this machine, side by
# side in one sitting: gift bench and the four PyTorch configurations (eager, torch.compile, bf16
# autocast, both) in turn, ROUNDS times, then gift once more; each figure is its best round, and
# PyTorch's best configuration is the peer. Prints one table and, last, one JSON line with the ratios.
#   cluster/experiments/peer-bench.sh [--preset small --seq 512 --batch 2] [--precision fp32,bf16]
# Needs torch in a venv outside the repository: PEER_VENV (default /tmp/gift-peer-venv) is made with
# `pip install torch numpy` when missing. Threads: THREADS (default: all cores) for both sides.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-$(nproc)}
PEER_VENV=${PEER_VENV:-/tmp/gift-peer-venv}
PEER_SCRIPT=${PEER_SCRIPT:-../shared/bench/pytorch_peer.py}
PRESET=small SEQ=512 BATCH=2 PRECISION=fp32
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=$2; shift 2 ;; --seq) SEQ=$2; shift 2 ;; --batch) BATCH=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    *) echo "peer-bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$PRESET" in
  small) SHAPE="--d 512 --layers 8 --heads 8 --ff 1376 --vocab 4096" ;;
  tiny) SHAPE="--d 64 --layers 2 --heads 4 --ff 176 --vocab 64" ;;
  *) echo "peer-bench: the peer knows the presets small and tiny" >&2; exit 2 ;;
esac
[ -f "$PEER_SCRIPT" ] || { echo "peer-bench: no peer script at $PEER_SCRIPT (set PEER_SCRIPT)" >&2; exit 2; }
if [ ! -x "$PEER_VENV/bin/python" ] || ! "$PEER_VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$PEER_VENV" && "$PEER_VENV/bin/pip" install -q torch numpy
fi
GIFT=${GIFT:-.build/release/gift}
[ -x "$GIFT" ] || swift build -c release
OUT=$(mktemp -d)
# GIFT_RANKS="1 2": gift once per rank count each round, the same global batch (BATCH / ranks per rank) on the
# same THREADS cores (THREADS / ranks threads per rank, mpirun): data parallel is how gift spreads over cores
GIFT_RANKS=${GIFT_RANKS:-1}
gift_run() {
  local n
  for n in $GIFT_RANKS; do
    if [ "$n" = 1 ]; then
      OPENBLAS_NUM_THREADS=$THREADS "$GIFT" bench --preset "$PRESET" --seq "$SEQ" --batch "$BATCH" --steps 3 \
        --objective sft,gift --precision "$PRECISION" > "$OUT/gift$1-ranks1.txt"
    else
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 mpirun -np "$n" --bind-to none \
        -x OPENBLAS_NUM_THREADS=$((THREADS / n)) "$GIFT" bench --preset "$PRESET" --seq "$SEQ" --batch $((BATCH / n)) \
        --steps 3 --objective sft,gift --precision "$PRECISION" 2>/dev/null > "$OUT/gift$1-ranks$n.txt"
    fi
  done
}
lscpu | grep -E "Model name|Flags" | cut -c1-200
# ROUNDS rounds of (gift, every PyTorch configuration), then gift once more: each side's figure is its
# best round, so a slow spell of a shared machine penalises neither
ROUNDS=${ROUNDS:-2}
for r in $(seq 1 "$ROUNDS"); do
  gift_run "$r"
  # PEER_CONFIGS="eager compile" skips the bf16 autocast ones (on a CPU without bf16 instructions they
  # run at a small fraction of fp32's speed: 14.6 tokens/s against ~200-700 for fp32 on a Zen 3 pair)
  for f in ${PEER_CONFIGS:-eager compile bf16 compile+bf16}; do
    case "$f" in eager) f="" ;; compile) f=--compile ;; bf16) f=--bf16 ;; compile+bf16) f="--compile --bf16" ;; esac
    "$PEER_VENV/bin/python" "$PEER_SCRIPT" $SHAPE --seq "$SEQ" --batch "$BATCH" --steps 4 --threads "$THREADS" $f \
      2>/dev/null | grep '^{' >> "$OUT/peer.jsonl"
  done
done
gift_run $((ROUNDS + 1))
python3 - "$OUT" <<'PY'
import json, sys, glob
out = sys.argv[1]
peer = [json.loads(l) for l in open(f"{out}/peer.jsonl")]
gift = {}
for f in sorted(glob.glob(f"{out}/gift*.txt")):
    ranks = int(f.rsplit("ranks", 1)[1].split(".")[0])
    for l in open(f):
        if l.startswith('{"objective"') and '"gemm"' in l:
            o = json.loads(l); k = (o["objective"], o["compute"] + (f", {ranks} ranks" if ranks > 1 else ""))
            gift[k] = max(gift.get(k, 0), o["tokens_per_s"])
        elif l.startswith('{"objective"'):
            summary = json.loads(l)
print(f"cpu: {summary['cpu']} ({summary['cpu_flags']}); {summary['blas']} core {summary['blas_core']}; "
      f"best GEMM {summary['best_gemm_gflops']} GFLOP/s ({summary['best_gemm']})")
print(f"{'':28s} {'sft tok/s':>10s} {'gift tok/s':>10s}")
def name(p): return "pytorch " + ("+".join(x for x, on in [("compile", p["compile"]), ("bf16", p["bf16"])] if on) or "eager")
rows = {}
for p in peer:
    r = rows.setdefault(name(p), {})
    r[p["objective"]] = max(r.get(p["objective"], 0), p["tokens_per_s"])
for n, r in rows.items(): print(f"{n:28s} {r.get('sft', 0):10.1f} {r.get('gift', 0):10.1f}")
best = {o: max(r.get(o, 0) for r in rows.values()) for o in ("sft", "gift")}
computes = sorted({c for _, c in gift})
res = {"cpu": summary["cpu"], "blas_core": summary["blas_core"], "peer_best": best, "gift": {}, "ratio": {}}
for c in computes:
    s, g = gift.get(("sft", c), 0), gift.get(("gift", c), 0)
    print(f"{'gift ' + c:28s} {s:10.1f} {g:10.1f}   x{s / best['sft']:.2f} x{g / best['gift']:.2f} of PyTorch's best")
    res["gift"][c] = {"sft": s, "gift": g}; res["ratio"][c] = {"sft": round(s / best["sft"], 3), "gift": round(g / best["gift"], 3)}
print(json.dumps(res))
PY
