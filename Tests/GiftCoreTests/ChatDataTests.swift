import Foundation
import XCTest
@testable import GiftCore

/// Chat data end to end against the PyTorch stack: a byte-level BPE tokenizer trained on the fly with
/// PyPI's `tokenizers`, LLaDA-8B-Instruct's chat template, and transformers' apply_chat_template +
/// dllm's prompt/response split computing the ids gift must produce for messages, prompt/response and
/// s1K records; then `gift tokenize` against apply_chat_template, and a few training steps on the folder.
/// The same for Dream: Qwen2.5's tokenizer (NFC, Qwen2's regex split, ChatML specials, <|mask|>) and Dream's
/// chat template on a dream-tiny folder.
final class ChatDataTests: XCTestCase {
    func makeFolder(_ dir: URL, family: ModelFamily = .llada) throws -> (vocab: Int, mask: Int, eos: Int) {
        try makeChatModelFolder(dir, family: family)
    }

    static let records = [
        #"{"messages": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "It is 5."}]}"#,
        #"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi  there\n"}, {"role": "assistant", "content": "Hello 🙂"}, {"role": "user", "content": "日本語?"}, {"role": "assistant", "content": " x = f(y)\n\tz "}]}"#,
        #"{"prompt": "The quick brown fox", "response": "jumps over the lazy dog."}"#,
        #"{"question": "What is 2 + 3?", "thinking_trajectories": ["2 plus 3 is 5"], "attempt": "5"}"#,
        #"{"question": "Ünïcödé?", "deepseek_thinking_trajectory": "code", "deepseek_attempt": "x"}"#,
    ]

    /// The split with transformers: prompt = template(messages[:-1], generation prompt), response = the
    /// text template(messages) adds after it, each tokenized without special tokens; s1K laid out as d1 does.
    static let reference = #"""
    import json, sys
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast.from_pretrained(sys.argv[1])
    SYS = "\nRespond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n...\n</answer>\n"
    for line in open(sys.argv[2]):
        r = json.loads(line)
        if "messages" in r: ms = r["messages"]
        elif "question" in r:
            th = r.get("thinking_trajectories", [None])[0] if "thinking_trajectories" in r else r["deepseek_thinking_trajectory"]
            at = r.get("attempt", r.get("deepseek_attempt"))
            ms = [{"role": "user", "content": SYS + "\n\n" + r["question"]},
                  {"role": "assistant", "content": f"<reasoning>{th}</reasoning>\n<answer>{at}</answer>"}]
        else: ms = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        full = tok.apply_chat_template(ms, tokenize=False, add_generation_prompt=False)
        prompt = tok.apply_chat_template(ms[:-1], tokenize=False, add_generation_prompt=True)
        assert full.startswith(prompt)
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
        print(json.dumps({"prompt_ids": enc(prompt), "response_ids": enc(full[len(prompt):])}))
    """#

    func testRecordsGiveTheIdsOfTransformers() throws { try checkRecordsGiveTheIdsOfTransformers(.llada) }
    func testDreamRecordsGiveTheIdsOfTransformers() throws { try checkRecordsGiveTheIdsOfTransformers(.dream) }

    func checkRecordsGiveTheIdsOfTransformers(_ family: ModelFamily) throws {
        let dir = try temporaryDirectory(self)
        let (vocab, _, _) = try makeFolder(dir, family: family)
        let data = dir.appendingPathComponent("data.jsonl")
        try (Self.records.joined(separator: "\n") + "\n").write(to: data, atomically: true, encoding: .utf8)
        let r = try runPython(Self.reference, [dir.path, data.path])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python transformers missing: launch/test.sh installs it")
        XCTAssertEqual(r.status, 0, r.stderr)
        let want = r.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: [Int]] }
        let chat = try TextModel.load(dir.path).formatter(.auto)
        let (got, report) = try JSONLReader.read(path: data.path, tokenizer: nil, vocabSize: vocab, skipBadLines: false, chat: chat)
        XCTAssertEqual(report.examples, Self.records.count)
        XCTAssertEqual(got.count, want.count)
        for (i, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g.prompt.map(Int.init), w["prompt_ids"], "record \(i + 1) prompt")
            XCTAssertEqual(g.response.map(Int.init), w["response_ids"], "record \(i + 1) response")
            XCTAssertEqual(g.line, i + 1)
        }
    }

    func testTokenizeCommandMatchesTransformers() throws { try checkTokenizeCommandMatchesTransformers(.llada) }
    func testDreamTokenizeCommandMatchesTransformers() throws { try checkTokenizeCommandMatchesTransformers(.dream) }

    /// `gift tokenize --chat` prints apply_chat_template(tokenize=True)'s ids, with and without the
    /// generation prompt; --decode inverts plain encoding.
    func checkTokenizeCommandMatchesTransformers(_ family: ModelFamily) throws {
        let dir = try temporaryDirectory(self)
        _ = try makeFolder(dir, family: family)
        let convs = dir.appendingPathComponent("convs.jsonl")
        let lines = [#"[{"role": "user", "content": "What is 2 + 3?"}]"#,
                     #"[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 🙂"}, {"role": "assistant", "content": "Hello"}]"#]
        try (lines.joined(separator: "\n") + "\n").write(to: convs, atomically: true, encoding: .utf8)
        let py = #"""
        import json, sys
        from transformers import PreTrainedTokenizerFast
        tok = PreTrainedTokenizerFast.from_pretrained(sys.argv[1])
        for line in open(sys.argv[2]):
            ids = tok.apply_chat_template(json.loads(line), tokenize=True, add_generation_prompt=sys.argv[3] == "1")
            print(json.dumps(ids["input_ids"] if hasattr(ids, "keys") else ids))
        """#
        let norm = { (s: String) in s.split(separator: "\n").map { $0.replacingOccurrences(of: " ", with: "") } }
        for generationPrompt in [true, false] {
            let ref = try runPython(py, [dir.path, convs.path, generationPrompt ? "1" : "0"])
            try XCTSkipIf(ref.status != 0 && ref.stderr.contains("No module named"), "python transformers missing")
            XCTAssertEqual(ref.status, 0, ref.stderr)
            let mine = try runGift(["tokenize", "--model", dir.path, "--chat", "--file", convs.path] + (generationPrompt ? ["--generation-prompt"] : []))
            XCTAssertEqual(mine.status, 0, mine.stderr)
            XCTAssertEqual(norm(mine.stdout), norm(ref.stdout), "generation prompt \(generationPrompt)")
        }
        // plain text round trip through --decode
        let text = dir.appendingPathComponent("text.txt")
        try "The quick brown fox\nÜnïcödé 日本語 🙂\n".write(to: text, atomically: true, encoding: .utf8)
        let enc = try runGift(["tokenize", "--model", dir.path, "--file", text.path])
        XCTAssertEqual(enc.status, 0, enc.stderr)
        let idsFile = dir.appendingPathComponent("ids.txt")
        try enc.stdout.write(to: idsFile, atomically: true, encoding: .utf8)
        let dec = try runGift(["tokenize", "--model", dir.path, "--decode", "--file", idsFile.path])
        XCTAssertEqual(dec.status, 0, dec.stderr)
        XCTAssertEqual(dec.stdout, "\"The quick brown fox\"\n\"Ünïcödé 日本語 🙂\"\n")
        // a bad line is named
        try "[1, 2\n".write(to: idsFile, atomically: true, encoding: .utf8)
        let bad = try runGift(["tokenize", "--model", dir.path, "--decode", "--file", idsFile.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("ids.txt:1"), bad.stderr)
    }

    /// Bad records are errors naming the file and line; training on chat data runs and learns.
    func testBadRecordsAndTraining() throws {
        let dir = try temporaryDirectory(self)
        let (vocab, _, _) = try makeFolder(dir)
        let chat = try TextModel.load(dir.path).formatter(.auto)
        let cases: [(String, String)] = [
            (#"{"messages": [{"role": "user", "content": "no answer"}]}"#, "does not end with an assistant turn"),
            (#"{"question": "q", "attempt": "a"}"#, "thinking_trajectories"),
            (#"{"text": "x"}"#, "no known fields"),
        ]
        for (line, expect) in cases {
            let f = dir.appendingPathComponent("bad.jsonl")
            try (Self.records[0] + "\n" + line + "\n").write(to: f, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try JSONLReader.read(path: f.path, tokenizer: nil, vocabSize: vocab, skipBadLines: false, chat: chat)) { e in
                XCTAssertTrue("\(e)".contains("bad.jsonl:2") && "\(e)".contains(expect), "\(e)")
            }
        }
        let data = dir.appendingPathComponent("train.jsonl")
        try (Array(repeating: Self.records, count: 8).flatMap { $0 }.joined(separator: "\n") + "\n")
            .write(to: data, atomically: true, encoding: .utf8)
        let run = dir.appendingPathComponent("run")
        let r = try runGift(["train", "--model", dir.path, "--data", data.path, "--max-steps", "4", "--micro-batch", "4",
                             "--lr", "1e-3", "--max-length", "128", "--out", run.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("40 examples") || r.stderr.contains("examples"), r.stderr)
        XCTAssertEqual(try stepLosses(run).count, 4)
    }
}

/// s1K's layout is d1's by default and set by flags (system prompt, tag names), in training and prepare.
final class S1KLayoutFlagTests: XCTestCase {
    func testLayoutFromTheRunConfig() throws {
        var c = RunConfig()
        XCTAssertEqual(c.s1kLayout, S1KLayout())
        try c.set("s1k_system_prompt", "Think first.", source: "--s1k-system-prompt")
        try c.set("s1k_reasoning_tag", "think", source: "--s1k-reasoning-tag")
        try c.set("s1k_answer_tag", "final", source: "--s1k-answer-tag")
        let rec: [String: StrictJSON] = ["question": .string("Q?"), "thinking_trajectories": .array([.string("T")]),
                                         "attempt": .string("A")]
        let m = try c.s1kLayout.messages(rec)
        guard case .object(let user) = m[0], case .object(let asst) = m[1] else { return XCTFail("\(m)") }
        XCTAssertEqual(user["content"]?.brief.contains("Think first.\n\nQ?"), true, "\(user)")
        guard case .string(let resp)? = asst["content"] else { return XCTFail("\(asst)") }
        XCTAssertEqual(resp, "<think>T</think>\n<final>A</final>")
        XCTAssertThrowsError(try c.set("s1k_answer_tag", "", source: "--s1k-answer-tag"))
    }
}
