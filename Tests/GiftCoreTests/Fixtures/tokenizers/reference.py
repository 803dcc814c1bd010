# The reference side of TokenizerTests: trains a small tokenizer with the `tokenizers` package in one
# configuration, writes its tokenizer.json, and prints (as one JSON object) what `tokenizers` makes of the
# corpus: ids with and without special tokens, decoded text with and without skip_special_tokens, the
# decoding of random id lists, and every id's token.
#
#   python reference.py CONFIG WORKDIR          (WORKDIR/corpus.json: {"train": [...], "eval": [...]})
#   python reference.py speed TOKENIZER_JSON TEXT_FILE
import json
import random
import re
import sys
import time

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def poly_hash(seqs):
    h = 0
    for ids in seqs:
        for i in ids:
            h = (h * 1000003 + i + 1) % 2305843009213693951
        h = (h * 1000003 + 7) % 2305843009213693951
    return h


if sys.argv[1] == "speed":
    tok = Tokenizer.from_file(sys.argv[2])
    lines = open(sys.argv[3], encoding="utf-8", newline="").read().split("\n")  # no newline translation
    chars = sum(len(l) for l in lines)
    t0 = time.perf_counter()
    out = [tok.encode(l, add_special_tokens=False).ids for l in lines]
    dt = time.perf_counter() - t0
    print(json.dumps({"chars": chars, "seconds": dt, "hash": poly_hash(out), "lines": [len(x) for x in out],
                      "count": sum(len(x) for x in out)}))
    sys.exit(0)

cfg, work = sys.argv[1], sys.argv[2]
corpus = json.load(open(work + "/corpus.json", encoding="utf-8"))
train, lines = corpus["train"], corpus["eval"]


def byte_trainer(n, specials):
    return trainers.BpeTrainer(vocab_size=n, show_progress=False, special_tokens=specials,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def train_byte_fallback(tok, vocab_size, limit_alphabet):
    """Trains `tok` with <unk>, <s>, </s> and the 256 byte-fallback tokens <0xXX>; returns it with the byte
    tokens kept in the vocabulary but not among the added tokens, as a SentencePiece-style Llama has them."""
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                       limit_alphabet=limit_alphabet,
                                                       special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens))
    d = json.loads(tok.to_str())
    d["added_tokens"] = [t for t in d["added_tokens"] if not re.fullmatch(r"<0x[0-9A-F]{2}>", t["content"])]
    return Tokenizer.from_str(json.dumps(d))


if cfg == "llama3":
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train, byte_trainer(1500, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
elif cfg == "qwen2":
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(train, byte_trainer(1000, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
elif cfg == "gpt2":
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(train, byte_trainer(800, ["<|endoftext|>"]))
    tok.add_tokens([AddedToken("<lstrip>", lstrip=True), AddedToken("<rstrip>", rstrip=True),
                    AddedToken("<both>", lstrip=True, rstrip=True), AddedToken("hello", single_word=True),
                    AddedToken("wor", single_word=False), AddedToken("world!", normalized=False)])
    tok.add_special_tokens([AddedToken("<|sep|>", special=True, normalized=False),
                            AddedToken("<|sep|>x", special=True, lstrip=True)])
elif cfg == "sentencepiece":
    # Llama 2 style: no pre-tokenizer, spaces become ▁ in the normalizer, byte fallback for unseen characters
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok = train_byte_fallback(tok, 900, 150)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
elif cfg == "metaspace":
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="first")])
    tok = train_byte_fallback(tok, 900, 120)
    tok.add_tokens([AddedToken("<rstrip>", rstrip=True, normalized=False), AddedToken("Zebra", normalized=True)])
elif cfg == "normseq":
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace("``", '"'),
                                           normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=700, show_progress=False, limit_alphabet=70,
                                                       special_tokens=["[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.add_tokens([AddedToken("Zebra", normalized=True), AddedToken("[Mixed]", normalized=False),
                    AddedToken("wörld", normalized=True, single_word=True)])
    tok.add_special_tokens([AddedToken("[MASK]", special=True, normalized=False, lstrip=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
elif cfg == "splits":
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.NFD()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split("-", behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"[0-9]"), behavior="merged_with_previous"),
        pre_tokenizers.Split(".", behavior="merged_with_next"),
        pre_tokenizers.Split(",", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[A-Z]+"), behavior="isolated", invert=True),
        pre_tokenizers.Punctuation(behavior="contiguous")])
    tok.decoder = decoders.Fuse()
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=600, show_progress=False, limit_alphabet=80,
                                                       special_tokens=["<unk>"]))
elif cfg == "subword":
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.NFKD()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=700, show_progress=False, limit_alphabet=90,
                                                       special_tokens=["[UNK]"], continuing_subword_prefix="##",
                                                       end_of_word_suffix="</w>"))
elif cfg == "metaspace_always":
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="_", prepend_scheme="always", split=False)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="_", prepend_scheme="always")])
    tok = train_byte_fallback(tok, 900, 100)
elif cfg == "bytelevel_pieces":
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[,;]"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"(?i)[a-z]+(?=[0-9])"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[^|]+"), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train, byte_trainer(700, ["<|endoftext|>"]))
    tok.add_special_tokens([AddedToken("<|sep|>", special=True, normalized=False, rstrip=True, lstrip=True)])
else:
    raise SystemExit("unknown configuration " + cfg)

path = work + "/" + cfg + ".json"
tok.save(path)
tok = Tokenizer.from_file(path)  # what is compared is what the file holds

with_special = [tok.encode(l).ids for l in lines]
rng = random.Random(1234)
n = tok.get_vocab_size(with_added_tokens=True)
rand = [[rng.randrange(0, n + 3) for _ in range(rng.randrange(1, 12))] for _ in range(60)]
print(json.dumps({
    "path": path,
    "vocab_size": n,
    "encode": with_special,
    "encode_plain": [tok.encode(l, add_special_tokens=False).ids for l in lines],
    "decode": [tok.decode(ids, skip_special_tokens=False) for ids in with_special],
    "decode_skip": [tok.decode(ids, skip_special_tokens=True) for ids in with_special],
    "random": rand,
    "random_decode": [tok.decode(ids, skip_special_tokens=False) for ids in rand],
    "random_decode_skip": [tok.decode(ids, skip_special_tokens=True) for ids in rand],
    "tokens": [tok.id_to_token(i) for i in range(n + 2)],
}))
