#!/usr/bin/env bash
# A behaviour-neutral change's proof: a matrix of small training runs (ZeRO 0-3 × recompute × LoRA ×
# 1/2 ranks, plus bf16 matmuls and bf16 gradient reduction on 2 ranks), each with validation and task
# evaluation every 2 steps and checkpoints, digested into one line per run: the metrics without their
# timing fields, the trained model or adapter files, and every checkpoint file (manifests and shards).
# Run it before and after a change with the same WORK (the run folder's path is in every manifest) and
# diff the outputs: every line must be equal. results/bit-identity-before-issue23.txt: the tree before
# issue 23 (c61bd9c) with the checkpoint writer's rank_state keys sorted (they were in hash order, so
# checkpoint bytes differed from run to run).
#   cluster/experiments/bit-identity.sh > before.txt     (GIFT=path/to/gift WORK=/tmp/gift-bit-identity)
# results/bit-identity-dream-tiny.txt: MODEL=dream-tiny at h-dream 6b94e74 (WORK=/tmp/dream-bi-dream): its
# metrics and weights columns are equal between exactly the runs whose LLaDA lines are equal.
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
WORK=${WORK:-/tmp/gift-bit-identity}
MODEL=${MODEL:-tiny}   # MODEL=dream-tiny: the same matrix on the Dream family
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
export OPENBLAS_NUM_THREADS=1
[ -x "$GIFT" ] || { echo "bit-identity: build gift first (swift build -c release)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
digest() {   # the run folder's deterministic content, one hash per part
  local d=$1
  local m; m=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    for k in ("tokens_per_s", "comm_wait_s"): o.pop(k, None)
    print(json.dumps(o, sort_keys=True))' "$d/metrics.jsonl" | sha256sum | cut -c1-16)
  local w; w=$(cd "$d" && find model adapter -type f 2>/dev/null | sort | xargs cat | sha256sum | cut -c1-16)
  local c; c=$(cd "$d" && find checkpoints -type f 2>/dev/null | sort | xargs cat | sha256sum | cut -c1-16)
  echo "metrics $m weights $w checkpoints $c"
}
run() {   # name ranks flags...
  local name=$1 np=$2; shift 2
  local out="$WORK/$name"
  local args=(train --model "$MODEL" --data countdown --task-examples 96 --max-steps 4 --micro-batch 2 --max-length 32
              --seed 3 --lr 1e-3 --eval-every 2 --eval-task countdown --eval-n 4 --checkpoint-every 2
              --compression-workers 0 --out "$out" "$@")
  if [ "$np" = 1 ]; then "$GIFT" "${args[@]}" > "$out.log" 2>&1
  else mpirun -np "$np" --oversubscribe --bind-to none "$GIFT" "${args[@]}" > "$out.log" 2>&1; fi \
    || { echo "bit-identity: $name failed, see $out.log" >&2; tail -3 "$out.log" >&2; exit 1; }
  echo "$name: $(digest "$out")"
}
for np in 1 2; do
  for z in 0 1 2 3; do
    for rc in none blocks; do
      for lr in 0 4; do
        [ "$z" = 3 ] && [ "$lr" != 0 ] && continue   # ZeRO-3 shards trained parameters: refused under LoRA
        run "np$np-z$z-$rc-lora$lr" "$np" --zero "$z" --recompute "$rc" --lora-r "$lr"
      done
    done
  done
done
run np2-z0-bf16 2 --precision bf16
run np2-z2-bf16reduce 2 --zero 2 --grad-reduce-dtype bf16
run np2-z3-bf16 2 --zero 3 --precision bf16
run np1-lora-bf16base 1 --lora-r 4 --base-dtype bf16
run np1-giftref 1 --objective gift-ref
run np2-sft-accum 2 --objective sft --grad-accum 2 --zero 1
