#!/usr/bin/env bash
# The paper in miniature: does GIFT beat SFT when fine-tuning a pre-trained base, and by how much?
#
# The design, fixed before any outcome was looked at (change it only by writing a new design here):
#   task        4x4 Sudoku (the built-in task; 16 cells, digits 1-4), scored as the fraction of blank cells
#               filled correctly, on the test split (never a training puzzle), greedy low-confidence
#               remasking (LLaDA's sampler, one block, gen length 17, 8 steps: `gift eval`'s defaults)
#   bases       BASES (default 3) bases, each the `mini` preset (d 128, 4 layers) initialised with its own
#               seed and pre-trained with SFT on a mixture of 3000 Sudoku and 3000 Countdown puzzles
#               (generation seed 1000 + base) for 1 epoch at lr 2e-3 (cosine, warmup 0.05): a base that
#               knows the formats and part of the task, so fine-tuning has room to help
#   fine-tune   one set of 600 Sudoku puzzles (generation seed 77, disjoint draws from the bases' data
#               by seed), 4 epochs, micro-batch 32, lr 5e-4, cosine, warmup 0.05, weight decay 0.01,
#               max length 40, with SFT and with GIFT (the objective.md defaults), SEEDS (default 4)
#               fine-tune seeds per base; seed = 100·base + s, so SFT and GIFT with one seed share every
#               batch, mask draw and time draw, and the same 3 × 128 test puzzles
#   evaluation  at the end of each fine-tune: 128 test puzzles × 3 repetitions (seeds s, s+1, s+2), plus
#               the base itself on the same puzzles (`untrained_accuracy` in each run's eval.json)
#   report      `gift compare` within each base (paired t-test over its seeds, McNemar over its puzzles)
#               and pooled over the bases (`--ignore model`: pairs by seed), all in REPORT.md
# Report whatever comes out: this is a measurement, not a demo to tune.
#
# Usage: cluster/experiments/miniature.sh [--objectives LIST] [--beta-reference R] [OUT_DIR]
#   OUT_DIR default runs/miniature-DATE.
#   --objectives  comma-separated fine-tune objectives (default sft,gift; the ablations: sft,gift,gift-raw,
#                 nll,gift-sw,dream,gift-ref); every objective is compared against sft (listed or not, sft
#                 is run: it is the baseline), on the same bases and seeds
#   --beta-reference  response (default) or content, passed to every fine-tune (objective.md)
#   BASES=3 SEEDS=4 (the design); SCALE=smoke shrinks everything to check the pipeline in a minute
#   (its numbers mean nothing). THREADS (default: all cores, split over the ranks) per rank.
#   RANKS=N (default 1) runs every job under `mpirun -np N` with the same global batch (micro-batch
#   32/N per rank): the same batches, draws and test puzzles as one process, but not the same rounding
#   (the gradient sum's order), which the training amplifies: at SCALE=smoke the accuracies match one
#   process's, at the full design they differ by up to 0.03. Compare runs made with one rank count.
# A base is trained once and reused by every objective and seed; finished runs are skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
[ -x "$GIFT" ] || swift build -c release
OBJECTIVES=sft,gift BETA_REF=response OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --objectives) OBJECTIVES=$2; shift 2 ;;
    --beta-reference) BETA_REF=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "miniature.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) OUT=$1; shift ;;
  esac
done
OUT=${OUT:-runs/miniature-$(date +%Y%m%d-%H%M%S)}
# sft first: the baseline of every comparison
OBJS="sft $(echo "$OBJECTIVES" | tr ',' ' ' | tr ' ' '\n' | { grep -vx sft || true; } | tr '\n' ' ')"
for o in $OBJS; do
  case "$o" in sft|gift|gift-raw|nll|gift-sw|dream|gift-ref) ;; *) echo "miniature.sh: unknown objective $o" >&2; exit 2 ;; esac
done
case "$BETA_REF" in response|content) ;; *) echo "miniature.sh: --beta-reference must be response or content" >&2; exit 2 ;; esac
BASES=${BASES:-3} SEEDS=${SEEDS:-4} RANKS=${RANKS:-1}
if [ $((32 % RANKS)) -ne 0 ]; then echo "miniature.sh: RANKS must divide the global batch of 32" >&2; exit 2; fi
MICRO=$((32 / RANKS))
export OPENBLAS_NUM_THREADS=${THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
PRE_N=3000 PRE_EPOCHS=1 FT_N=600 FT_EPOCHS=4 EVAL_N=128
if [ "${SCALE:-full}" = smoke ]; then BASES=1 SEEDS=2 PRE_N=200 FT_N=64 FT_EPOCHS=1 EVAL_N=8; fi
mkdir -p "$OUT/data"
run() {
  if [ "$RANKS" -gt 1 ]; then mpirun -np "$RANKS" --oversubscribe --bind-to none -x OPENBLAS_NUM_THREADS "$GIFT" "$@"
  else "$GIFT" "$@"; fi
}

# data: the fine-tune set and each base's pre-training mixture
"$GIFT" data sudoku --n "$FT_N" --seed 77 --split train --out "$OUT/data/finetune.jsonl" >/dev/null
for b in $(seq 1 "$BASES"); do
  mix="$OUT/data/pretrain-$b.jsonl"
  if [ ! -s "$mix" ]; then
    "$GIFT" data sudoku --n "$PRE_N" --seed $((1000 + b)) --split train --out "$OUT/data/s-$b.jsonl" >/dev/null
    "$GIFT" data countdown --n "$PRE_N" --seed $((1000 + b)) --split train --out "$OUT/data/c-$b.jsonl" >/dev/null
    cat "$OUT/data/s-$b.jsonl" "$OUT/data/c-$b.jsonl" > "$mix"
  fi
done

for b in $(seq 1 "$BASES"); do
  base="$OUT/base-$b"
  if [ ! -f "$base/model/config.json" ]; then
    echo "== base $b: pre-training (SFT on the mixture)"
    run train --model mini --init-seed "$b" --data "$OUT/data/pretrain-$b.jsonl" --objective sft --epochs "$PRE_EPOCHS" \
      --micro-batch "$MICRO" --lr 2e-3 --warmup-ratio 0.05 --weight-decay 0.01 --max-length 64 --seed "$b" --out "$base" 2>&1 | tail -1
  fi
  for s in $(seq 1 "$SEEDS"); do
    seed=$((100 * b + s))
    for obj in $OBJS; do
      dir="$OUT/ft-base$b-$obj-seed$seed"
      [ -f "$dir/eval.json" ] && continue
      echo "== base $b, $obj, seed $seed"
      run train --model "$base/model" --data "$OUT/data/finetune.jsonl" --objective "$obj" --epochs "$FT_EPOCHS" --beta-reference "$BETA_REF" \
        --micro-batch "$MICRO" --lr 5e-4 --warmup-ratio 0.05 --weight-decay 0.01 --max-length 40 --seed "$seed" \
        --eval-task sudoku --eval-n "$EVAL_N" --out "$dir" 2>&1 | tail -1
    done
  done
done

{
  echo "# GIFT vs SFT in miniature ($(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'))"
  echo
  echo "Design: see the header of cluster/experiments/miniature.sh (BASES=$BASES, SEEDS=$SEEDS, SCALE=${SCALE:-full}, objectives $(echo $OBJS | tr ' ' ','), beta reference $BETA_REF, $RANKS rank(s))."
  echo "\"untrained\" is the base before fine-tuning, on the same test puzzles; \"X − sft\" > 0 favours X."
  runs() { for o in $OBJS; do for s in $(seq 1 "$SEEDS"); do echo "$OUT/ft-base$1-$o-seed$((100 * $1 + s))"; done; done; }
  for b in $(seq 1 "$BASES"); do
    echo; echo "## Base $b"; echo
    "$GIFT" compare --markdown --against sft --svg "$OUT/base-$b.svg" $(runs "$b")
  done
  echo; echo "## Pooled over the bases (pairs by seed)"; echo
  "$GIFT" compare --markdown --against sft --ignore model --svg "$OUT/pooled.svg" $(for o in $OBJS; do for b in $(seq 1 "$BASES"); do runs "$b" | grep -- "-$o-seed"; done; done)
  echo; echo "JSON: \`gift compare --json --ignore model $OUT/ft-base*\`"
} > "$OUT/REPORT.md"
cat "$OUT/REPORT.md"
