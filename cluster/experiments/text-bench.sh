#!/usr/bin/env bash
# Real-text figures, measured side by side in one run (issue 14's closing note):
#   1. tokenization speed: gift's tokenizer.json encoder against PyPI `tokenizers` (Rust) on the same
#      synthetic chat text (CHARS characters, default 25 M: Tulu-3-10k's size), one byte-level BPE with a
#      Llama-3-style split regex trained here (vocab 8000); plain lines through `gift tokenize` (ids printed
#      as JSON, so gift's figure includes writing them) against Tokenizer.encode_batch with 1 and with
#      every core, and the ids compared line by line; then the whole data pipeline, `gift data prepare`
#      of the chat JSONL (template, split, tokenize, write) against transformers' apply_chat_template +
#      the fast tokenizer doing the same split.
#   2. length-aware batching: padding fraction and tokens/s of `gift train` (tiny preset, SFT, one epoch,
#      micro-batch 8) on N pre-tokenized examples with Tulu-3-like lengths (log-normal, median ~300
#      tokens, 20 to 2000), without and with --group-by-length: both runs see the same examples, so the
#      wall time compares directly; "useful tokens/s" counts non-padding tokens.
# Usage: cluster/experiments/text-bench.sh [OUT_DIR]   (CHARS, N, PYTHON=venv python with tokenizers
#        and transformers; default /tmp/gift-test-venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIFT=${GIFT:-.build/release/gift}
PY=${PYTHON:-/tmp/gift-test-venv/bin/python}
[ -x "$GIFT" ] || swift build -c release
OUT=${1:-runs/text-bench-$(date +%Y%m%d-%H%M%S)}
CHARS=${CHARS:-25000000} N=${N:-320}
mkdir -p "$OUT/model"
export OPENBLAS_NUM_THREADS=${THREADS:-$(nproc)}

echo "== setup: synthetic chat text ($CHARS characters), tokenizer, model folder"
"$PY" - "$OUT" "$CHARS" <<'PYEOF'
import json, math, random, sys
from tokenizers import Tokenizer, Regex, models, trainers, pre_tokenizers, decoders
out, chars = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
# a Zipf-distributed lexicon of 60k made-up words (syllables), so BPE learns a real vocabulary, plus
# multilingual text, emoji, code and numbers
syl = ["ka", "to", "ri", "en", "the", "st", "ion", "al", "er", "in", "ou", "ma", "ne", "pro", "con", "ing", "ed",
       "ü", "é", "ø", "日", "本", "語", "на", "ть"]
lexicon = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(60000)]
lexicon += ["🙂", "x = f(y)", "def g(a, b):", "return a + b", "1234", "3.14159", "    ", "\t"]
cum, acc = [], 0.0
for k in range(len(lexicon)): acc += 1.0 / (k + 1); cum.append(acc)
def text(n):
    s = []
    while n > 0:
        ws = rng.choices(lexicon, cum_weights=cum, k=16)
        for w in ws: s.append(w); n -= len(w) + 1
        if rng.random() < 0.08: s.append(rng.choice([".", ",", "\n", "\n\n", "  ", "?"]))
    return " ".join(s)
# Tulu-3-like: log-normal turn lengths (characters), one to three user/assistant exchanges
total, convs = 0, []
while total < chars:
    ms = [{"role": "system", "content": "You are a helpful assistant."}] if rng.random() < 0.3 else []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        ms.append({"role": "user", "content": text(int(min(6000, rng.lognormvariate(5.5, 1.0))))})
        ms.append({"role": "assistant", "content": text(int(min(8000, rng.lognormvariate(6.5, 1.0))))})
    total += sum(len(m["content"]) for m in ms); convs.append(ms)
with open(out + "/chat.jsonl", "w") as f:
    for ms in convs: f.write(json.dumps({"messages": ms}, ensure_ascii=False) + "\n")
with open(out + "/text.txt", "w") as f:   # the same text as plain lines (newlines inside turns as spaces)
    for ms in convs:
        for m in ms: f.write(m["content"].replace("\n", " ") + "\n")
tok = Tokenizer(models.BPE())
split = Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(split, behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
special = ["<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|mdm_mask|>"]
sample = [m["content"] for ms in convs[:3000] for m in ms]
tok.train_from_iterator(sample, trainers.BpeTrainer(vocab_size=8000, special_tokens=special,
                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok.save(out + "/model/tokenizer.json")
template = open("Tests/GiftCoreTests/Fixtures/chat-templates/llada-8b-instruct.jinja").read()
json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
           "chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"}, open(out + "/model/tokenizer_config.json", "w"))
print(json.dumps({"conversations": len(convs), "characters": total, "vocab": tok.get_vocab_size(),
                  "mask": tok.token_to_id("<|mdm_mask|>"), "eos": tok.token_to_id("<|endoftext|>")}))
json.dump({"vocab": tok.get_vocab_size(), "mask": tok.token_to_id("<|mdm_mask|>"), "eos": tok.token_to_id("<|endoftext|>")},
          open(out + "/ids.json", "w"))
PYEOF
read -r VOCAB MASK EOS < <("$PY" -c "import json;d=json.load(open('$OUT/ids.json'));print(d['vocab'],d['mask'],d['eos'])")
"$GIFT" init --preset tiny --vocab "$VOCAB" --mask-id "$MASK" --eos-id "$EOS" --out "$OUT/model" >/dev/null

echo "== 1a. plain text lines: gift tokenize vs tokenizers (same file, ids compared)"
t0=$(date +%s.%N)
"$GIFT" tokenize --model "$OUT/model" --no-special-tokens --file "$OUT/text.txt" > "$OUT/gift-ids.txt"
t1=$(date +%s.%N)
GIFT_S=$(echo "$t1 - $t0" | bc)
"$PY" - "$OUT" "$GIFT_S" <<'PYEOF'
import json, os, sys, time
out, gift_s = sys.argv[1], float(sys.argv[2])
from tokenizers import Tokenizer
lines = open(out + "/text.txt", encoding="utf-8").read().split("\n")[:-1]
chars = sum(len(l) for l in lines)
tok = Tokenizer.from_file(out + "/model/tokenizer.json")
res = {}
for threads in ["1", str(os.cpu_count())]:
    # RAYON_RS_NUM_CPUS is read once per process: run each thread count in its own interpreter
    import subprocess
    code = ("import sys,time;from tokenizers import Tokenizer;t=Tokenizer.from_file(sys.argv[1]+'/model/tokenizer.json');"
            "L=open(sys.argv[1]+'/text.txt',encoding='utf-8').read().split('\\n')[:-1];s=time.time();"
            "e=t.encode_batch(L,add_special_tokens=False);print(time.time()-s)")
    env = dict(os.environ, RAYON_RS_NUM_CPUS=threads, TOKENIZERS_PARALLELISM="true")
    res[threads] = float(subprocess.check_output([sys.executable, "-c", code, out], env=env))
ref = tok.encode_batch(lines, add_special_tokens=False)
mine = open(out + "/gift-ids.txt").read().split("\n")[:-1]
bad = sum(1 for r, m in zip(ref, mine) if json.loads(m) != r.ids) + abs(len(ref) - len(mine))
ntok = sum(len(r.ids) for r in ref)
print(f"text: {len(lines)} lines, {chars/1e6:.1f} M characters, {ntok/1e6:.2f} M tokens; lines whose ids differ: {bad}")
print(f"gift tokenize (1 thread, ids written as JSON): {gift_s:6.2f} s  {chars/gift_s/1e6:6.2f} M chars/s")
for th, s in res.items():
    print(f"tokenizers encode_batch ({th} thread{'s' if th != '1' else ''}):        {s:6.2f} s  {chars/s/1e6:6.2f} M chars/s")
PYEOF

echo "== 1b. chat JSONL to prompt/response ids: gift data prepare vs transformers (template + split + tokenize)"
t0=$(date +%s.%N)
"$GIFT" data prepare --model "$OUT/model" --data "$OUT/chat.jsonl" --out "$OUT/chat-prepared" --jsonl-out "$OUT/gift-chat-ids.jsonl"
t1=$(date +%s.%N)
GIFT_S=$(echo "$t1 - $t0" | bc)
"$PY" - "$OUT" "$GIFT_S" <<'PYEOF'
import json, sys, time
out, gift_s = sys.argv[1], float(sys.argv[2])
from transformers import PreTrainedTokenizerFast
tok = PreTrainedTokenizerFast.from_pretrained(out + "/model")
s = time.time(); rows = []
for line in open(out + "/chat.jsonl", encoding="utf-8"):
    ms = json.loads(line)["messages"]
    full = tok.apply_chat_template(ms, tokenize=False)
    prompt = tok.apply_chat_template(ms[:-1], tokenize=False, add_generation_prompt=True)
    rows.append((prompt, full[len(prompt):]))
enc = lambda xs: tok(xs, add_special_tokens=False)["input_ids"]
p, r = enc([a for a, _ in rows]), enc([b for _, b in rows])
py_s = time.time() - s
mine = [json.loads(l) for l in open(out + "/gift-chat-ids.jsonl")]
bad = sum(1 for m, a, b in zip(mine, p, r) if m["prompt_ids"] != a or m["response_ids"] != b) + abs(len(mine) - len(p))
print(f"{len(rows)} conversations; examples whose ids differ: {bad}")
print(f"gift data prepare (1 thread, incl. writing the set):      {gift_s:6.2f} s")
print(f"transformers apply_chat_template + fast tokenizer (batch): {py_s:6.2f} s")
PYEOF

echo "== 2. padding and speed with and without --group-by-length (tiny preset, $N examples, one epoch)"
"$PY" - "$OUT" "$N" <<'PYEOF'
import json, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(2)
with open(out + "/lengths.jsonl", "w") as f:
    for i in range(n):
        L = int(min(2000, max(20, rng.lognormvariate(5.7, 0.9))))   # median ~300, tail to 2000
        P = max(1, int(L * rng.uniform(0.1, 0.5)))
        ids = [rng.randrange(0, 62) for _ in range(L)]
        f.write(json.dumps({"prompt_ids": ids[:P], "response_ids": ids[P:]}) + "\n")
PYEOF
for g in off on; do
  flag=(); [ $g = on ] && flag=(--group-by-length)
  "$GIFT" train --model tiny --data "$OUT/lengths.jsonl" --objective sft --micro-batch 8 --epochs 1 \
      --max-length 2048 --lr 1e-3 --seed 1 --validation-fraction 0 --out "$OUT/train-$g" "${flag[@]}" > "$OUT/train-$g.log" 2>&1
  "$PY" - "$OUT/train-$g" "$g" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
tok = sum(r["tokens"] for r in rows); pad = sum(r["pad_fraction"] * r["tokens"] for r in rows)
secs = sum(r["tokens"] / r["tokens_per_s"] for r in rows)
print(f"group-by-length {sys.argv[2]:3}: padding {100*pad/tok:5.1f}% of {tok} tokens; {tok/secs:8.0f} tokens/s, "
      f"{(tok-pad)/secs:8.0f} useful (non-padding) tokens/s, {secs:6.1f} s for {len(rows)} steps")
PYEOF
done
