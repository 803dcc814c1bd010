#!/usr/bin/env bash
# Each ZeRO stage side by side on RANKS ranks of one node: the same training run (same seed, data and
# batches) with --zero 0, 1, 2, 3, interleaved ROUNDS times so the machine's load hits every stage alike.
# Per stage: the median step time (metrics.jsonl: tokens / tokens_per_s, step 1 left out), the bytes
# each rank moves per step (gradients handed to the reduction, parameters received in gathers: the
# trainer's own count), and the largest peak resident memory over the ranks (the trainer's VmHWM line),
# beside what `gift plan` predicts. Last line: one JSON object.
#   cluster/experiments/zero-stages.sh     (MODEL=base RANKS=2 STEPS=6 ROUNDS=2 MICRO=1 SEQ=64 STAGES="0 1 2 3"
#                                           EXTRA="--recompute blocks" to add flags to every run)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
WORK=${WORK:-/tmp/gift-zero-stages}
MODEL=${MODEL:-base} RANKS=${RANKS:-2} STEPS=${STEPS:-6} ROUNDS=${ROUNDS:-2} MICRO=${MICRO:-1} SEQ=${SEQ:-64}
STAGES=${STAGES:-0 1 2 3} EXTRA=${EXTRA:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
export OPENBLAS_NUM_THREADS=${THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
[ -x "$GIFT" ] || { echo "zero-stages: build gift first (swift build -c release)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
lscpu | grep -m1 "Model name" >&2 || true
for r in $(seq 1 "$ROUNDS"); do
  for z in $STAGES; do
    # shellcheck disable=SC2086
    mpirun -np "$RANKS" --oversubscribe --bind-to none "$GIFT" train --model "$MODEL" --data countdown --task-examples 400 \
      --max-steps "$STEPS" --lr 1e-4 --max-length "$SEQ" --micro-batch "$MICRO" --seed 3 --eval-every 0 \
      --validation-fraction 0.01 --zero "$z" $EXTRA --out "$WORK/z$z-$r" > "$WORK/z$z-$r.log" 2>&1 \
      || { echo "zero-stages: ZeRO-$z round $r failed, see $WORK/z$z-$r.log" >&2; tail -5 "$WORK/z$z-$r.log" >&2; exit 1; }
    echo "round $r ZeRO-$z done" >&2
  done
done
for z in $STAGES; do
  # shellcheck disable=SC2086
  "$GIFT" plan --model "$MODEL" --ranks "$RANKS" --zero "$z" --micro-batch "$MICRO" --seq "$SEQ" $EXTRA 2>/dev/null | tail -1 > "$WORK/plan-z$z.json" || echo '{}' > "$WORK/plan-z$z.json"
done
python3 - "$WORK" "$ROUNDS" "$MODEL" "$RANKS" $STAGES <<'PY'
import json, re, sys, statistics
work, rounds, model, ranks = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
out = {"model": model, "ranks": ranks, "stages": {}}
for z in sys.argv[5:]:
    times, grad, par, peak = [], [], [], []
    for r in range(1, rounds + 1):
        rows = [json.loads(l) for l in open(f"{work}/z{z}-{r}/metrics.jsonl") if '"tokens_per_s"' in l]
        times += [x["tokens"] / x["tokens_per_s"] for x in rows if x["step"] > 1]
        log = open(f"{work}/z{z}-{r}.log").read()
        m = re.search(r"gradient bytes reduced by this rank: \d+ in \d+ steps \((\d+) per step\); parameter bytes gathered: \d+ \((\d+) per step\)", log)
        if m: grad.append(int(m.group(1))); par.append(int(m.group(2)))
        m = re.search(r"peak resident memory per rank \(MiB\): ([\d. ]+)", log)
        if m: peak.append(max(float(x) for x in m.group(1).split()))
    try: plan = json.load(open(f"{work}/plan-z{z}.json"))["bytes_per_rank"]["total"] / 2**20
    except Exception: plan = None
    st = statistics.median(times)
    out["stages"][z] = {"step_s_median": round(st, 3), "grad_bytes_per_step": grad[0] if grad else None,
                        "param_bytes_per_step": par[0] if par else None, "peak_rss_mib": max(peak) if peak else None,
                        "plan_mib": round(plan, 1) if plan else None}
    print(f"ZeRO-{z}: step {st:.3f} s (median of {len(times)}), moved per rank per step: gradients {grad[0] if grad else '?'} B, "
          f"parameters {par[0] if par else '?'} B; peak RSS {max(peak) if peak else '?'} MiB (plan {plan and round(plan, 1)} MiB)")
z0 = out["stages"].get("0")
if z0:
    for z, v in out["stages"].items(): v["step_time_vs_zero0"] = round(v["step_s_median"] / z0["step_s_median"], 3)
print(json.dumps(out))
PY
