import Foundation
import XCTest
@testable import GiftCore

/// A tiny LLaDA-layout folder (`preset`: another family's tiny preset, e.g. dream-tiny): tokenizer.json
/// (trained here), tokenizer_config.json with LLaDA's template, config.json whose vocab covers the
/// tokenizer, mask = <|mdm_mask|>, eos = <|endoftext|>.
func makeChatModelFolder(_ dir: URL, vocabSize: Int = 400, preset: String = "tiny") throws -> (vocab: Int, mask: Int, eos: Int) {
    let template = try String(contentsOf: goldenDir.deletingLastPathComponent()
        .appendingPathComponent("chat-templates/llada-8b-instruct.jinja"), encoding: .utf8)
    let py = #"""
    import json, sys
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
    d, template = sys.argv[1], open(sys.argv[2]).read()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|mdm_mask|>"]
    corpus = ["The quick brown fox jumps over the lazy dog.", "What is 2 + 3? It is 5.", "user assistant system reasoning answer",
              "Respond in the following format: <reasoning> </reasoning> <answer> </answer>", "Ünïcödé 日本語 🙂 code: x = f(y)\n\tz"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=int(sys.argv[3]), special_tokens=special,
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(d + "/tokenizer.json")
    json.dump({"bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>", "__type": "AddedToken"},
               "pad_token": "<|endoftext|>", "chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"},
              open(d + "/tokenizer_config.json", "w"))
    print(json.dumps({"vocab": tok.get_vocab_size(), "mask": tok.token_to_id("<|mdm_mask|>"), "eos": tok.token_to_id("<|endoftext|>")}))
    """#
    let tpl = dir.appendingPathComponent("template.jinja")
    try template.write(to: tpl, atomically: true, encoding: .utf8)
    let r = try runPython(py, [dir.path, tpl.path, "\(vocabSize)"])
    try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python tokenizers missing: launch/test.sh installs it")
    XCTAssertEqual(r.status, 0, r.stderr)
    let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Int]
    let init_ = try runGift(["init", "--preset", preset, "--vocab", "\(o["vocab"]!)", "--mask-id", "\(o["mask"]!)",
                             "--eos-id", "\(o["eos"]!)", "--out", dir.path])
    XCTAssertEqual(init_.status, 0, init_.stderr)
    return (o["vocab"]!, o["mask"]!, o["eos"]!)
}
