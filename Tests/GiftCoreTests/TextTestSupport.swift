import Foundation
import XCTest
@testable import GiftCore

/// A tiny model folder with a text pipeline: tokenizer.json (a byte-level BPE trained here with PyPI's
/// `tokenizers`), tokenizer_config.json with the family's chat template, config.json (preset tiny or
/// dream-tiny) whose vocab covers the tokenizer.
/// - LLaDA: LLaDA-8B-Instruct's template, mask = <|mdm_mask|>, eos = <|endoftext|>.
/// - Dream: Qwen2.5's tokenizer as Dream ships it (NFC, Qwen2's pre-tokenizer regex split before the
///   byte-level step; specials <|endoftext|>, <|im_start|>, <|im_end|> and Dream's mask <|mask|>), Dream's
///   ChatML template, eos = pad = <|endoftext|> (Dream's config: 151643), mask = <|mask|> (151666).
/// `preset`: the config's preset in place of the family's tiny one (e.g. LLaDA's text pipeline on dream-tiny).
func makeChatModelFolder(_ dir: URL, vocabSize: Int = 400, family: ModelFamily = .llada, preset: String? = nil) throws -> (vocab: Int, mask: Int, eos: Int) {
    let templateFile = family == .llada ? "llada-8b-instruct.jinja" : "dream-v0-instruct-7b.jinja"
    let template = try String(contentsOf: goldenDir.deletingLastPathComponent()
        .appendingPathComponent("chat-templates/" + templateFile), encoding: .utf8)
    let py = #"""
    import json, sys
    from tokenizers import Tokenizer, Regex, models, normalizers, trainers, pre_tokenizers, processors, decoders
    d, template, family = sys.argv[1], open(sys.argv[2]).read(), sys.argv[4]
    tok = Tokenizer(models.BPE())
    tok.decoder = decoders.ByteLevel()
    corpus = ["The quick brown fox jumps over the lazy dog.", "What is 2 + 3? It is 5.", "user assistant system reasoning answer",
              "Respond in the following format: <reasoning> </reasoning> <answer> </answer>", "Ünïcödé 日本語 🙂 code: x = f(y)\n\tz"] * 20
    config = {"bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>", "__type": "AddedToken"},
              "pad_token": "<|endoftext|>", "chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"}
    if family == "llada":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        special, mask = ["<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|mdm_mask|>"], "<|mdm_mask|>"
    else:
        # Qwen2's tokenizer.json (Dream's vocabulary is Qwen2.5's plus <|mask|>): NFC, the regex split, byte-level
        QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        special, mask = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"], "<|mask|>"
        corpus += ["You are a helpful assistant.", "I'll say 12345 words, don't you?\r\n\n  spaces"] * 20
        config.update(bos_token=None, mask_token=mask)
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=int(sys.argv[3]), special_tokens=special,
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(d + "/tokenizer.json")
    json.dump(config, open(d + "/tokenizer_config.json", "w"))
    print(json.dumps({"vocab": tok.get_vocab_size(), "mask": tok.token_to_id(mask), "eos": tok.token_to_id("<|endoftext|>")}))
    """#
    let tpl = dir.appendingPathComponent("template.jinja")
    try template.write(to: tpl, atomically: true, encoding: .utf8)
    let r = try runPython(py, [dir.path, tpl.path, "\(vocabSize)", family.rawValue])
    try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python tokenizers missing: launch/test.sh installs it")
    XCTAssertEqual(r.status, 0, r.stderr)
    let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Int]
    let init_ = try runGift(["init", "--preset", preset ?? (family == .llada ? "tiny" : "dream-tiny"), "--vocab", "\(o["vocab"]!)", "--mask-id", "\(o["mask"]!)",
                             "--eos-id", "\(o["eos"]!)", "--out", dir.path])
    XCTAssertEqual(init_.status, 0, init_.stderr)
    return (o["vocab"]!, o["mask"]!, o["eos"]!)
}
