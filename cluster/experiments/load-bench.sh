#!/usr/bin/env bash
# Ranged model loading (ModelFolder.loadRange, ZeRO-3's start): MB/s and peak memory per rank, side by
# side with the whole-model loader, on a sharded bf16 folder. For each rank count N, starts N
# `gift load-check` processes at once (N ranks of one node), from a cold page cache (the folder's files
# evicted with posix_fadvise DONTNEED, which touches no other file) and then warm; prints per setting the
# aggregate MB/s of weight-file bytes read (all ranks' bytes / the slowest rank's load seconds, timed
# inside each process), the slowest rank's MB/s, the wall-clock MB/s including process start, and the
# largest ratio of a rank's peak RSS increase to its final shard bytes. The last line is one JSON object.
#   cluster/experiments/load-bench.sh [MODEL_DIR]      (ROUNDS=3 rounds, RANKS="1 2 4")
# Without MODEL_DIR, makes $WORK/model (default /tmp/gift-load-bench): 54.8 M parameters (small with 16
# layers, 219 MB as fp32) in 6 bf16 shards, like LLaDA-8B's folder in miniature.
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
WORK=${WORK:-/tmp/gift-load-bench}
ROUNDS=${ROUNDS:-3}
RANKS=${RANKS:-1 2 4}
[ -x "$GIFT" ] || { echo "load-bench: build gift first (swift build -c release)" >&2; exit 2; }
MODEL=${1:-$WORK/model}
if [ ! -f "$MODEL/config.json" ]; then
  echo "load-bench: writing $MODEL" >&2
  "$GIFT" init --preset small --layers 16 --dtype bf16 --max-shard-bytes 20000000 --out "$MODEL" >&2
fi

evict() {
  python3 - "$MODEL" <<'PY'
import os, sys
for n in os.listdir(sys.argv[1]):
    if n.endswith(".safetensors"):
        fd = os.open(os.path.join(sys.argv[1], n), os.O_RDONLY)
        os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
PY
}

# run MODE N CACHE -> one JSON line summarising N concurrent ranks
run() {
  local mode=$1 n=$2 cache=$3 out; out=$(mktemp -d)
  [ "$cache" = cold ] && evict
  local t0; t0=$(date +%s.%N)
  for r in $(seq 0 $((n - 1))); do
    "$GIFT" load-check "$MODEL" --rank "$r" --ranks "$n" $([ "$mode" = full ] && echo --full) > "$out/$r.json" &
  done
  wait
  local t1; t1=$(date +%s.%N)
  python3 - "$out" "$mode" "$n" "$cache" "$t0" "$t1" <<'PY'
import json, os, sys
d, mode, n, cache, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
rs = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d))]
read = sum(r["file_bytes_read"] for r in rs)
print(json.dumps({"mode": mode, "ranks": n, "cache": cache,
                  "aggregate_mb_per_s": round(read / max(r["seconds"] for r in rs) / 1e6, 1),
                  "wall_mb_per_s": round(read / (t1 - t0) / 1e6, 1),
                  "load_mb_per_s_min": round(min(r["mb_per_s"] for r in rs), 1),
                  "load_seconds_max": round(max(r["seconds"] for r in rs), 3),
                  "peak_over_shard_max": round(max(r["peak_increase"] / r["bytes"] for r in rs), 3),
                  "shard_mb": round(rs[0]["bytes"] / 1e6, 1)}))
PY
  rm -rf "$out"
}

results=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for n in $RANKS; do
    for mode in ranged full; do
      for cache in cold warm; do
        line=$(run "$mode" "$n" "$cache"); echo "round $round: $line"; echo "$line" >> "$results"
      done
    done
  done
done
python3 - "$results" "$MODEL" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["mode"], r["ranks"], r["cache"]) for r in rows}, key=lambda k: (k[1], k[0], k[2]))
summary = []
for k in keys:
    g = [r for r in rows if (r["mode"], r["ranks"], r["cache"]) == k]
    agg = [r["aggregate_mb_per_s"] for r in g]
    s = {"mode": k[0], "ranks": k[1], "cache": k[2], "aggregate_mb_per_s_median": statistics.median(agg),
         "aggregate_mb_per_s_range": [min(agg), max(agg)],
         "slowest_rank_mb_per_s_median": statistics.median(r["load_mb_per_s_min"] for r in g),
         "wall_mb_per_s_median": statistics.median(r["wall_mb_per_s"] for r in g),
         "peak_over_shard_max": max(r["peak_over_shard_max"] for r in g), "shard_mb": g[0]["shard_mb"]}
    print(f"{k[0]:>6} {k[1]} ranks {k[2]}: {s['aggregate_mb_per_s_median']:7.1f} MB/s aggregate "
          f"({min(agg):.1f}-{max(agg):.1f}), slowest rank {s['slowest_rank_mb_per_s_median']:.1f}, "
          f"wall {s['wall_mb_per_s_median']:.1f}; peak/shard {s['peak_over_shard_max']:.3f}, shard {s['shard_mb']} MB")
    summary.append(s)
print(json.dumps({"model": sys.argv[2], "rounds": len(rows) // max(1, len(keys)), "settings": summary}))
PY
rm -f "$results"
