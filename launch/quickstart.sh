#!/usr/bin/env bash
# One command from a fresh clone: installs the Debian packages gift needs, builds it in release mode
# and runs the main job. Until `gift train` lands this makes a tiny model, inspects the GIFT objective
# on a small batch and benchmarks a training step.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
swift build -c release
GIFT=.build/release/gift
RUN=runs/quickstart
mkdir -p "$RUN"
"$GIFT" init --preset tiny --seed 0 --out "$RUN/model"
cat > "$RUN/batch.json" <<'JSON'
{"sequences": [
  {"input_ids": [5, 9, 13, 20, 21, 22, 23, 62, 62], "prompt_length": 3, "t": 0.3, "mask": [0,0,0,1,0,1,1,0,1]},
  {"input_ids": [7, 8, 30, 31, 32, 33, 34, 35, 62], "prompt_length": 2, "t": 0.7, "mask": [0,0,1,1,1,0,0,1,1]}
]}
JSON
for objective in sft gift; do
  echo "== gift inspect --objective $objective"
  "$GIFT" inspect --model "$RUN/model" --batch "$RUN/batch.json" --objective "$objective" --out "$RUN/inspect-$objective.safetensors"
done
echo "== gift bench (tiny)"
"$GIFT" bench --preset tiny --seq 128 --batch 2 --steps 3 --objective sft,gift
