#!/usr/bin/env bash
# oneDNN 2.x (Debian's libdnnl.so.2) against 3.x (PyPI's onednn-cpu-gomp: oneDNN 3.2 on GNU OpenMP) on
# gift's GEMM shapes, f32 and bf16, 1 and 2 threads, through gift's own shim (Sources/CDNNLShim), the
# libraries alternated round by round in one run so that a machine shared with other work slows both.
# Usage: cluster/experiments/onednn-versions.sh [rounds] [seconds per measurement]
#        cluster/experiments/onednn-versions.sh --summary RESULTS   (the table again, from a results file)
#   ONEDNN3=/path/libdnnl.so.3 to measure another 3.x build (default: the one launch/test.sh puts in the
#   test venv, else PyPI's onednn-cpu-gomp installed into a venv of its own under $TMPDIR).
# Why not PyPI's `onednn` 2026.1 (oneDNN 3.13): it is a SYCL build (CPU runtime SYCL, needs 1.2 GB of
# Intel runtimes); its CPU engine needs a SYCL CPU device, i.e. Unified Runtime's OpenCL adapter, which
# no PyPI package ships: dnnl_engine_create fails with "SYCL cpu devices queried but not found".
set -euo pipefail
cd "$(dirname "$0")/../.."
# Per lane: the median and the best of the rounds, and 3.x over 2.x for each (on a machine shared with
# other work the best is the closer to the uncontended rate).
summarize() {
python3 - "$1" <<'PY'
import re, statistics, sys
rates, refused = {}, set()
for line in open(sys.argv[1]):
    m = re.match(r'round\d+-(\S+)\s+threads=(\d) (\S+)\s+(.+?)\s+(\d+x\d+x\d+)\s+([\d.]+) GFLOP/s.*?(REFUSED)?$', line.strip())
    if not m: continue
    lib, t, dt, name, shape, g, ref = m.groups()
    if ref: refused.add(f"{lib} {dt} threads={t}"); continue
    rates.setdefault((t, dt, name, shape), {}).setdefault(lib, []).append(float(g))
print(f"# {'threads dtype shape':40} {'median 2.x':>10} {'3.x':>6} {'3.x/2.x':>7} | {'best 2.x':>8} {'3.x':>6} {'3.x/2.x':>7}  GFLOP/s")
for k in sorted(rates):
    a, b = rates[k].get("2.x", [0]), rates[k].get("3.x", [0])
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"# {k[0]} {k[1]:4} {k[2]:12} {k[3]:16}      {ma:10.1f} {mb:6.1f} {mb / ma if ma else 0:7.2f} |"
          f" {max(a):8.1f} {max(b):6.1f} {max(b) / max(a) if max(a) else 0:7.2f}")
for r in sorted(refused): print("# refused for every shape:", r)
PY
}
if [ "${1:-}" = --summary ]; then summarize "$2"; exit; fi
ROUNDS=${1:-3}
SECONDS_EACH=${2:-1.5}
WORK=${TMPDIR:-/tmp}/gift-onednn-versions
mkdir -p "$WORK"
if [ -z "${ONEDNN3:-}" ]; then
  ONEDNN3=${GIFT_TEST_VENV:-${TMPDIR:-/tmp}/gift-test-venv}/lib/libdnnl.so.3
  if [ ! -e "$ONEDNN3" ]; then
    ONEDNN3=$WORK/venv/lib/libdnnl.so.3
    [ -e "$ONEDNN3" ] || { python3 -m venv "$WORK/venv" && "$WORK/venv/bin/pip" install --quiet onednn-cpu-gomp==2023.2.0; }
  fi
fi
gcc -O2 -I Sources/CDNNLShim/include cluster/experiments/onednn-versions.c Sources/CDNNLShim/gift_dnnl.c \
    -ldl -lm -o "$WORK/bench"
OUT=cluster/experiments/results/onednn-versions-$(date +%Y%m%d-%H%M).txt
{
  cpu() { grep -m1 "^$1" /proc/cpuinfo | cut -d: -f2 | xargs; }
  echo "# $(cpu 'model name') (family $(cpu 'cpu family'), model $(cpu 'model')), $(nproc) cores; $(date -Is)"
  echo "# GFLOP/s: best of the timed calls of each measurement (${SECONDS_EACH}s each), $ROUNDS rounds alternating the libraries"
  for r in $(seq "$ROUNDS"); do
    for t in 1 2; do
      for lib in libdnnl.so.2 "$ONEDNN3"; do
        tag=$([ "$lib" = libdnnl.so.2 ] && echo "2.x" || echo "3.x")
        GIFT_ONEDNN_LIB=$lib "$WORK/bench" "$t" "round$r-$tag" "$SECONDS_EACH" 2>&1
      done
    done
  done
} | tee "$OUT"
summarize "$OUT" | tee -a "$OUT"
echo "written: $OUT"
