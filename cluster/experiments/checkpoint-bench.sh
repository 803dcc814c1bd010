#!/usr/bin/env bash
# Checkpoint save speed, gift against torch.save, side by side in one sitting on the same bytes: the
# params and both AdamW moments of a trained model (a checkpoint shard), written by `gift save-bench`
# under each zstd level and worker count (and uncompressed: the disk's figure), then by torch.save of the
# same three fp32 tensors in one dict, each write fsynced; ROUNDS rounds, interleaved. Prints each round,
# then per setting the range (min-max) and median of MB/s of raw state, the compression ratio and CPU
# seconds; the last line is one JSON object.
#   cluster/experiments/checkpoint-bench.sh [--from CHECKPOINT] [--levels 1,3] [--workers 0,2]
# Without --from, trains the `small` preset for 60 steps with a checkpoint at the end (cached in
# $WORK, default /tmp/gift-checkpoint-bench). torch from PYTHON (default /work/peer/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
PYTHON=${PYTHON:-/work/peer/bin/python}
WORK=${WORK:-/tmp/gift-checkpoint-bench}
ROUNDS=${ROUNDS:-3}
FROM="" LEVELS=1,3 WORKERS=0,2
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM=$2; shift 2 ;; --levels) LEVELS=$2; shift 2 ;; --workers) WORKERS=$2; shift 2 ;;
    *) echo "checkpoint-bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$GIFT" ] || { echo "checkpoint-bench: build gift first (swift build -c release)" >&2; exit 2; }
"$PYTHON" -c 'import torch' || { echo "checkpoint-bench: $PYTHON has no torch (set PYTHON)" >&2; exit 2; }
mkdir -p "$WORK"
if [ -z "$FROM" ]; then
  FROM="$WORK/run/checkpoints/step-00000060"
  if [ ! -d "$FROM" ]; then
    echo "checkpoint-bench: training small for 60 steps to get real parameters and moments" >&2
    "$GIFT" train --model small --data countdown --task-examples 2000 --max-steps 60 --lr 1e-3 --max-length 64 \
      --micro-batch 8 --eval-every 0 --out "$WORK/run" --checkpoint-every 60 > "$WORK/train.log" 2>&1
  fi
fi
"$GIFT" save-bench --from "$FROM" --dump "$WORK/state.f32"
OUT=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
  "$GIFT" save-bench --from "$FROM" --level="$LEVELS" --workers="$WORKERS" --rounds 1 --dir "$WORK" | grep '^round' \
    | sed "s/^round 1/round $r/" | tee -a "$OUT/rounds.txt"
  "$PYTHON" - "$WORK/state.f32" "$WORK/torch.pt" "$r" <<'PY' | tee -a "$OUT/rounds.txt"
import os, sys, time, resource, numpy as np, torch
raw, path, r = sys.argv[1], sys.argv[2], sys.argv[3]
a = torch.from_numpy(np.fromfile(raw, dtype="<f4"))
n = a.numel() // 3
state = {"params": a[:n].clone(), "m": a[n:2 * n].clone(), "v": a[2 * n:].clone()}
if os.path.exists(path): os.unlink(path)
ru = lambda: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
c0, t0 = ru(), time.perf_counter()
with open(path, "wb") as f:
    torch.save(state, f)
    f.flush(); os.fsync(f.fileno())
dt, cpu = time.perf_counter() - t0, ru() - c0
size = os.path.getsize(path); os.unlink(path)
print(f"round {r} torch.save: {4 * a.numel() / 1e6 / dt:.1f} MB/s, ratio {4 * a.numel() / size:.3f}x, {dt:.2f} s, cpu {cpu:.2f} s")
PY
done
"$PYTHON" - "$OUT/rounds.txt" <<'PY'
import re, sys, json, statistics
by = {}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+ (.+?): ([\d.]+) MB/s, ratio ([\d.]+)x, ([\d.]+) s, cpu ([\d.]+) s", line)
    if m:
        d = by.setdefault(m[1], {"mbs": [], "ratio": float(m[3]), "cpu": []})
        d["mbs"].append(float(m[2])); d["cpu"].append(float(m[5]))
print(f"{'setting':32} {'MB/s min-max (median)':>26} {'ratio':>7} {'cpu s':>6}")
summary = {}
for k, d in by.items():
    print(f"{k:32} {min(d['mbs']):9.1f}-{max(d['mbs']):<7.1f} ({statistics.median(d['mbs']):6.1f}) {d['ratio']:6.3f}x {statistics.median(d['cpu']):6.2f}")
    summary[k] = {"mb_per_s_min": min(d["mbs"]), "mb_per_s_max": max(d["mbs"]), "mb_per_s_median": statistics.median(d["mbs"]),
                  "ratio": d["ratio"], "cpu_s_median": statistics.median(d["cpu"])}
print(json.dumps(summary))
PY
rm -rf "$OUT"
