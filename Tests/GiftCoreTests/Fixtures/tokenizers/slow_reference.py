# The reference side of SlowTokenizerTests: Qwen2/Dream slow tokenizer files (vocab.json + merges.txt +
# tokenizer_config.json, no tokenizer.json) as Dream-org/Dream-v0-Instruct-7B ships them, and what
# transformers and a Python port of Dream's slow tokenizer make of them.
#
#   python slow_reference.py make DIR CLASS WORK    trains a byte-level BPE with Qwen2's pipeline on
#       WORK/corpus.json's "train" lines and writes DIR's three files (CLASS: the tokenizer_class; the
#       chat template from WORK/template.jinja); prints {"vocab": size of vocab.json}
#   python slow_reference.py check DIR WORK          writes WORK/reference.json: for WORK/corpus.json's
#       "eval" texts the ids and decoded text of transformers' tokenizer (AutoTokenizer for Qwen2Tokenizer,
#       Qwen2Tokenizer itself for DreamTokenizer, whose remote code is not loaded) and of the slow port;
#       for its "chats" apply_chat_template's ids with and without the generation prompt
import json
import sys
import unicodedata

QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# Dream's added tokens as its tokenizer_config.json lists them (a subset: Qwen2.5's ChatML and tool tokens,
# Dream's <|beginoftext|> and <|mask|>); <tool_call> is not special there.
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<|beginoftext|>", "<|mask|>"]


def make(d, cls, work):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    corpus = json.load(open(work + "/corpus.json", encoding="utf-8"))
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.train_from_iterator(corpus["train"], trainers.BpeTrainer(
        vocab_size=900, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.model.save(d)  # vocab.json, and merges.txt with its "#version: 0.2" header
    n = tok.get_vocab_size()
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    cfg = {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(n + i): dict(flags, content=t, special="tool_call" not in t) for i, t in enumerate(ADDED)},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|beginoftext|>", "chat_template": open(work + "/template.jinja", encoding="utf-8").read(),
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
        "mask_token": "<|mask|>", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": cls, "unk_token": None,
    }
    if cls == "DreamTokenizer":
        cfg["auto_map"] = {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}
    json.dump(cfg, open(d + "/tokenizer_config.json", "w", encoding="utf-8"), indent=2, ensure_ascii=False)
    print(json.dumps({"vocab": n}))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class DreamSlowPort:
    """A port of Dream's slow DreamTokenizer (tokenization_dream.py, itself transformers' slow
    Qwen2Tokenizer): merges.txt read line by line (a first "#version:" line and blank lines skipped), NFC
    on the whole text, added tokens split out (leftmost, longest), Qwen2's regex, GPT-2's byte-to-unicode
    map and its lowest-rank-pair-first BPE; decoding joins added tokens' content with the byte-decoded
    runs between them (errors="replace", no spaces between special tokens)."""

    def __init__(self, d):
        import regex
        self.re = regex
        self.encoder = json.load(open(d + "/vocab.json", encoding="utf-8"))
        merges = []
        with open(d + "/merges.txt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                line = line.strip()
                if (i == 0 and line.startswith("#version:")) or not line:
                    continue
                merges.append(tuple(line.split()))
        self.ranks = dict(zip(merges, range(len(merges))))
        cfg = json.load(open(d + "/tokenizer_config.json", encoding="utf-8"))
        self.added = {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}
        self.added_by_id = {i: c for c, i in self.added.items()}
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.pat = regex.compile(QWEN2)
        alts = sorted(self.added, key=len, reverse=True)
        self.split = regex.compile("(" + "|".join(regex.escape(a) for a in alts) + ")")

    def bpe(self, token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def encode(self, text):
        ids = []
        for piece in self.split.split(unicodedata.normalize("NFC", text)):
            if piece in self.added:
                ids.append(self.added[piece])
                continue
            for t in self.pat.findall(piece):
                mapped = "".join(self.byte_encoder[b] for b in t.encode("utf-8"))
                ids += [self.encoder[s] for s in self.bpe(mapped)]
        return ids

    def decode(self, ids):
        out, run = [], []

        def flush():
            if run:
                out.append(bytearray(self.byte_decoder[c] for c in "".join(run)).decode("utf-8", errors="replace"))
                run.clear()
        for i in ids:
            if i in self.added_by_id:
                flush()
                out.append(self.added_by_id[i])
            else:
                run.append(self.decoder[i])
        flush()
        return "".join(out)


def check(d, work):
    from transformers import AutoTokenizer, Qwen2Tokenizer
    cls = json.load(open(d + "/tokenizer_config.json", encoding="utf-8"))["tokenizer_class"]
    tok = Qwen2Tokenizer.from_pretrained(d) if cls == "DreamTokenizer" else AutoTokenizer.from_pretrained(d)
    slow = DreamSlowPort(d)
    corpus = json.load(open(work + "/corpus.json", encoding="utf-8"))
    texts = []
    for s in corpus["eval"]:
        ids = tok(s)["input_ids"]
        slow_ids = slow.encode(s)
        texts.append({"ids": ids, "text": tok.decode(ids), "slow_ids": slow_ids, "slow_text": slow.decode(slow_ids)})
    chats = []
    for c in corpus["chats"]:
        ids = {}
        for gen in (False, True):
            r = tok.apply_chat_template(c, tokenize=True, add_generation_prompt=gen)
            ids["gen" if gen else "plain"] = r["input_ids"] if hasattr(r, "keys") else r
        chats.append(ids)
    json.dump({"texts": texts, "chats": chats}, open(work + "/reference.json", "w", encoding="utf-8"))
    print(json.dumps({"texts": len(texts), "chats": len(chats)}))


if sys.argv[1] == "make":
    make(sys.argv[2], sys.argv[3], sys.argv[4])
else:
    check(sys.argv[2], sys.argv[3])
