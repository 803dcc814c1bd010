#!/usr/bin/env bash
# Training slowdown while checkpoints are written in the background: the same `small` training run
# (same seed and data, so the same batches step by step) without intermediate checkpoints, with one every
# EVERY steps at the background writer's default nice 19, and with nice 0 (the writer competing as an
# equal), interleaved ROUNDS times. A run's training time is the sum of its step times (metrics.jsonl:
# tokens / tokens_per_s) plus the stalls its checkpoints caused (the snapshot copy, logged per save);
# the slowdown is that over the same round's run without checkpoints. Last line: one JSON object.
# A save that takes longer than EVERY steps makes the next one wait for it (one save in flight): those
# waits are stalls too, so EVERY should leave a save time to finish, as on a real run.
#   cluster/experiments/checkpoint-slowdown.sh      (STEPS=30 EVERY=10 ROUNDS=2 MODES="nice19 nice0" THREADS=all cores
#                                                    MODEL=small RANKS=1 ZERO=0 MICRO=8: RANKS>1 runs under mpirun)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
WORK=${WORK:-/tmp/gift-checkpoint-slowdown}
STEPS=${STEPS:-30} EVERY=${EVERY:-10} ROUNDS=${ROUNDS:-2} MODES=${MODES:-nice19 nice0}
MODEL=${MODEL:-small} RANKS=${RANKS:-1} ZERO=${ZERO:-0} MICRO=${MICRO:-8}
export OPENBLAS_NUM_THREADS=${THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
launch=(); [ "$RANKS" -gt 1 ] && launch=(mpirun -np "$RANKS" --oversubscribe --bind-to none)
[ -x "$GIFT" ] || { echo "checkpoint-slowdown: build gift first (swift build -c release)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
for r in $(seq 1 "$ROUNDS"); do
  for mode in none $MODES; do
    extra=()
    case "$mode" in nice19) extra=(--checkpoint-every "$EVERY" --checkpoint-nice 19) ;; nice0) extra=(--checkpoint-every "$EVERY" --checkpoint-nice 0) ;; esac
    "${launch[@]}" "$GIFT" train --model "$MODEL" --data countdown --task-examples 2000 --max-steps "$STEPS" --lr 1e-3 --max-length 64 \
      --micro-batch "$MICRO" --zero "$ZERO" --eval-every 0 --seed 3 --out "$WORK/$mode-$r" "${extra[@]}" > "$WORK/$mode-$r.log" 2>&1
    echo "round $r $mode done" >&2
  done
done
python3 - "$WORK" "$ROUNDS" "$STEPS" "$RANKS" $MODES <<'PY'
import json, re, sys, statistics
work, rounds, steps, ranks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def run(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl") if '"tokens_per_s"' in l]
    step_s = sum(r["tokens"] / r["tokens_per_s"] for r in rows if r["step"] <= steps)
    log = open(f"{work}/{name}.log").read()
    saves = re.findall(r"checkpoint step-(\d+): .* written in ([\d.]+) s \((\d+) MB/s of raw state\), training stalled ([\d.]+) s", log)
    # the end-of-run save is in every run; MB/s per rank: each rank writes its slice in parallel
    mid = [(int(s), float(w), float(t), float(mb) / ranks) for s, w, mb, t in saves if int(s) < steps]
    return step_s, mid
out = {}
for mode in sys.argv[5:]:
    slow, writes, step_slow, rates = [], [], [], []
    for r in range(1, rounds + 1):
        base, _ = run(f"none-{r}")
        t, mid = run(f"{mode}-{r}")
        total = t + sum(x[2] for x in mid)
        slow.append(total / base - 1); writes += [x[1] for x in mid]; step_slow.append(round(t / base - 1, 4)); rates += [x[3] for x in mid]
        print(f"round {r} {mode}: steps {t:.1f} s + stalls {sum(x[2] for x in mid):.2f} s against {base:.1f} s: "
              f"slowdown {100 * (total / base - 1):+.1f}% (steps alone {100 * (t / base - 1):+.1f}%), {len(mid)} saves, each written in {statistics.median([x[1] for x in mid]):.2f} s (median)")
    out[mode] = {"slowdown_min": min(slow), "slowdown_max": max(slow), "save_seconds_median": statistics.median(writes),
                 "mb_per_s_per_rank_median": statistics.median(rates),
                 "step_slowdown": [s for s in step_slow]}
print(json.dumps(out))
PY
