#!/usr/bin/env bash
# The memory plan of the paper's run (LLaDA-8B, seq 4096, micro-batch 1, bf16 matmuls, GIFT) on NODES
# nodes of one rank each, ZeRO 1/2/3 with and without --recompute blocks, as a markdown table (GiB per
# rank; bytes sent per step per rank; seconds per step at GFLOPS). Every row is one `gift plan` call,
# printed above the table so it can be repeated.
#   cluster/experiments/plan-table.sh     (NODES="8 16 64" GFLOPS=measured here BF16_KERNEL=native)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
NODES=${NODES:-8 16 64} BF16_KERNEL=${BF16_KERNEL:-native}
[ -x "$GIFT" ] || { echo "plan-table: build gift first (swift build -c release)" >&2; exit 2; }
common=(--model llada-8b --seq 4096 --micro-batch 1 --precision bf16 --objective gift --bf16-kernel "$BF16_KERNEL")
if [ -z "${GFLOPS:-}" ]; then
  # the fp32 GEMM rate of this machine at the model's width (what `gift plan` measures)
  GFLOPS=$("$GIFT" plan "${common[@]}" --ranks 8 | tail -1 | jq -r '.gemm_gflops')
  echo "GEMM rate measured here by gift plan: $GFLOPS GFLOP/s" >&2
fi
rows=()
for n in $NODES; do
  for z in 1 2 3; do
    for r in none blocks; do
      cmd=("$GIFT" plan "${common[@]}" --ranks "$n" --zero "$z" --recompute "$r" --gflops "$GFLOPS")
      echo "${cmd[*]}" >&2
      rows+=("$n $z $r $("${cmd[@]}" | tail -1 | jq -c .)")
    done
  done
done
g='(. / 1073741824 * 100 | round / 100)'
echo "| nodes | ZeRO | recompute | total | parameters | gradients | moments | activations | checkpoint snapshot | bf16 weights | export | last-good | other | sent per step | s/step at $GFLOPS GFLOP/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
  read -r n z r json <<< "$row"
  jq -r --arg n "$n" --arg z "$z" --arg r "$r" "
    .bytes_per_rank as \$b |
    (\$b.total - \$b.parameters - \$b.gradients - \$b.moments - \$b.activations - \$b.checkpoint_snapshot
      - (\$b.bf16_weights // 0) - (\$b.export // 0) - \$b.last_good_copy) as \$other |
    \"| \(\$n) | \(\$z) | \(\$r) | **\(\$b.total | $g)** | \(\$b.parameters | $g) | \(\$b.gradients | $g) | \(\$b.moments | $g) | \(\$b.activations | $g) | \(\$b.checkpoint_snapshot | $g) | \((\$b.bf16_weights // 0) | $g) | \((\$b.export // 0) | $g) | \(\$b.last_good_copy | $g) | \(\$other | $g) | \(.bytes_moved_per_step | $g) | \(.seconds_per_step_estimate * 10 | round / 10) |\"
  " <<< "$json"
done
