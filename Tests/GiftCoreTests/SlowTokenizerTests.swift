import Foundation
import XCTest
@testable import GiftCore

/// Qwen2's and Dream's slow tokenizer files (vocab.json + merges.txt + tokenizer_config.json, no
/// tokenizer.json; SlowBPEFiles): ids and decoded text equal to transformers' and to a Python port of
/// Dream's slow tokenizer (Fixtures/tokenizers/slow_reference.py), chat renderings equal to
/// apply_chat_template's; the prepared data's hash covers the three files; bad files are refused naming
/// the file and line or field.
final class SlowTokenizerTests: XCTestCase {
    static let script = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/tokenizers/slow_reference.py").path

    /// TokenizerTests' texts (many scripts, contractions, digits, whitespace runs, emoji, random strings)
    /// and Dream's added tokens inline.
    static let texts = TokenizerTests.evalLines + [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
        "<|mask|><|mask|>x <|mask|> y<|mask|>", "<|beginoftext|>text<|endoftext|><|endoftext|>",
        "<tool_call>{\"name\": \"f\"}</tool_call> <tool_call>x", "a<|im_end|>b <|im_start|> c", "<|im_start", "<|mask|",
    ]

    static let chats: [[[String: String]]] = [
        [["role": "user", "content": "What is 2 + 3?"]],
        [["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi  there\n"], ["role": "assistant", "content": "Hello 🙂"],
         ["role": "user", "content": "日本語? I'll see 12345 <|mask|> things."]],
    ]

    /// A trained slow folder of `cls` in `dir`, the corpus and template in `work`.
    func makeFolder(_ cls: String, _ dir: URL, work: URL) throws {
        let corpus: [String: Any] = ["train": TokenizerTests.trainLines, "eval": Self.texts, "chats": Self.chats]
        try JSONSerialization.data(withJSONObject: corpus).write(to: work.appendingPathComponent("corpus.json"))
        let template = goldenDir.deletingLastPathComponent().appendingPathComponent("chat-templates/dream-v0-instruct-7b.jinja")
        try FileManager.default.copyItem(at: template, to: work.appendingPathComponent("template.jinja"))
        let made = try runPythonCheck("slow tokenizer files", try String(contentsOfFile: Self.script, encoding: .utf8),
                                      ["make", dir.path, cls, work.path])
        XCTAssertGreaterThan(made["vocab"] ?? 0, 500)
    }

    func testDreamFilesGiveTheIdsOfTransformersAndOfDreamsSlowTokenizer() throws { try checkAgainstReference("DreamTokenizer") }
    func testQwen2FilesGiveTheIdsOfAutoTokenizer() throws { try checkAgainstReference("Qwen2Tokenizer") }

    func checkAgainstReference(_ cls: String) throws {
        let root = try temporaryDirectory(self)
        let dir = root.appendingPathComponent("model"), work = root.appendingPathComponent("work")
        for d in [dir, work] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        try makeFolder(cls, dir, work: work)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path))
        XCTAssertEqual(TextModel.tokenizerFiles(in: dir.path), SlowBPEFiles.files(in: dir.path))
        let counts = try runPythonCheck("transformers on slow tokenizer files", try String(contentsOfFile: Self.script, encoding: .utf8),
                                        ["check", dir.path, work.path])
        XCTAssertEqual(counts["texts"].map(Int.init), Self.texts.count)
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("reference.json"))) as! [String: Any]
        let texts = ref["texts"] as! [[String: Any]], chats = ref["chats"] as! [[String: [Int]]]

        let tm = try TextModel.load(dir.path)
        for (s, r) in zip(Self.texts, texts) {
            let ids = try tm.tokenizer.encode(s).map(Int.init)
            XCTAssertEqual(ids, r["ids"] as? [Int], "transformers' ids of \(StrictJSON.quote(s))")
            XCTAssertEqual(ids, r["slow_ids"] as? [Int], "the slow port's ids of \(StrictJSON.quote(s))")
            let text = try tm.tokenizer.decode(ids.map(Int32.init))
            XCTAssertEqual(text, r["text"] as? String, "transformers' decoding of \(StrictJSON.quote(s))")
            XCTAssertEqual(text, r["slow_text"] as? String, "the slow port's decoding of \(StrictJSON.quote(s))")
        }
        // the chat template through gift's pipeline, in process and through `gift tokenize --chat`
        let template = try XCTUnwrap(tm.template)
        let convs = work.appendingPathComponent("convs.jsonl")
        let lines = try Self.chats.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(to: convs, atomically: true, encoding: .utf8)
        for gen in [false, true] {
            let want = chats.map { $0[gen ? "gen" : "plain"]! }
            for (line, w) in zip(lines, want) {
                guard case .array(let ms) = try StrictJSON.parse(Array(line.utf8)) else { return XCTFail("not a list") }
                let rendered = try template.render(messages: ms, addGenerationPrompt: gen, variables: tm.variables)
                XCTAssertEqual(try tm.tokenizer.encode(rendered, addSpecialTokens: false).map(Int.init), w, "generation prompt \(gen): \(line)")
            }
            let r = try runGift(["tokenize", "--model", dir.path, "--chat", "--file", convs.path] + (gen ? ["--generation-prompt"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            let got = r.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [Int] }
            XCTAssertEqual(got, want, "gift tokenize --chat, generation prompt \(gen)")
        }
    }

    // MARK: files written by hand

    /// A hand-made Qwen2 folder: "ab" and "abc" merged, <|endoftext|> added.
    static let vocab = #"{"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5}"#
    static let merges = "#version: 0.2\na b\nab c\n"
    static let config = #"{"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>", "added_tokens_decoder": {"6": {"content": "<|endoftext|>", "special": true}}}"#

    func writeFolder(_ dir: URL, vocab: String = vocab, merges: String = merges, config: String = config) throws {
        try Self.writeFolder(dir, vocab: vocab, merges: merges, config: config)
    }

    /// The hand-made folder (FuzzTests' seed too).
    static func writeFolder(_ dir: URL, vocab: String = vocab, merges: String = merges, config: String = config) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try vocab.write(to: dir.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try merges.write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
    }

    func testHandMadeFolderEncodesAndIsFoundBesideTokenizerJSON() throws {
        let dir = try temporaryDirectory(self)
        try writeFolder(dir)
        let tok = try TextModel.load(dir.path).tokenizer
        XCTAssertEqual(try tok.encode("abc ab<|endoftext|>abab"), [4, 5, 3, 6, 3, 3])
        XCTAssertEqual(try tok.decode([4, 5, 3, 6]), "abc ab<|endoftext|>")
        XCTAssertEqual(try tok.decode([4, 6], skipSpecialTokens: true), "abc")
        XCTAssertEqual(tok.vocabSize, 7)
        // CRLF line ends and no header read the same
        try writeFolder(dir, merges: "a b\r\nab c\r\n")
        XCTAssertEqual(try TextModel.load(dir.path).tokenizer.encode("abc"), [4])
        // all three files are needed; a tokenizer.json beside them is read instead
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer_config.json"))
        XCTAssertFalse(TextModel.present(in: dir.path))
        XCTAssertThrowsError(try TextModel.load(dir.path)) { e in
            XCTAssertTrue("\(e)".contains("vocab.json + merges.txt + tokenizer_config.json"), "\(e)")
        }
        try writeFolder(dir)
        try "{}".write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        XCTAssertEqual(TextModel.tokenizerFiles(in: dir.path), [dir.path + "/tokenizer.json"])
        // an export copies the slow files beside the weights
        XCTAssertTrue(Set(["vocab.json", "merges.txt", "tokenizer_config.json"]).isSubset(of: ModelCompanions.files(in: dir.path)))
    }

    /// Prepared data records a hash of all three files: a change in any one changes it.
    func testPreparedDataHashCoversTheThreeFiles() throws {
        let dir = try temporaryDirectory(self)
        try writeFolder(dir)
        let base = try PreparedDataset.Provenance.of(modelDir: dir.path)
        XCTAssertEqual(base.tokenizerFile, SlowBPEFiles.files(in: dir.path).joined(separator: " + "))
        XCTAssertEqual(base.templateHash, "none")
        let changed = [
            { try self.writeFolder(dir, vocab: Self.vocab.replacingOccurrences(of: ", ", with: ",")) },
            { try self.writeFolder(dir, merges: "a b\nab c\n") },
            { try self.writeFolder(dir, config: Self.config.replacingOccurrences(of: "\"special\": true", with: "\"special\": false")) },
        ]
        var hashes = [base.tokenizerHash]
        for change in changed {
            try change()
            hashes.append(try PreparedDataset.Provenance.of(modelDir: dir.path).tokenizerHash)
            try writeFolder(dir)
            XCTAssertEqual(try PreparedDataset.Provenance.of(modelDir: dir.path).tokenizerHash, base.tokenizerHash)
        }
        XCTAssertEqual(Set(hashes).count, hashes.count, "\(hashes)")
    }

    /// The refusal's text for a folder written with these files.
    func refusal(vocab: String = vocab, merges: String = merges, config: String = config, mergesBytes: [UInt8]? = nil,
                 file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let dir = try temporaryDirectory(self)
        try writeFolder(dir, vocab: vocab, merges: merges, config: config)
        if let mergesBytes { try Data(mergesBytes).write(to: dir.appendingPathComponent("merges.txt")) }
        do {
            _ = try TextModel.load(dir.path)
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch let e as GiftError {
            return e.message.replacingOccurrences(of: dir.path + "/", with: "")
        }
    }

    func testBadFilesAreRefusedNamingFileAndLine() throws {
        let cases: [(String, [String])] = [
            (try refusal(merges: "#version: 0.2\na b\nab c d\n"), ["merges.txt: line 3", "two tokens"]),
            (try refusal(merges: "a b\n\nab c\n"), ["merges.txt: line 2", "two tokens"]),
            (try refusal(merges: "a\tb\n"), ["merges.txt: line 1"]),
            (try refusal(merges: "a b\nab x\n"), ["merges.txt: line 2", "\"x\" is not in the vocabulary"]),
            (try refusal(merges: "a b\nb c\n"), ["merges.txt: line 2", "merged token \"bc\""]),
            (try refusal(mergesBytes: Array("a b\n".utf8) + [0xFF, 0x20, 0x62, 0x0A]), ["merges.txt: line 2", "not valid UTF-8"]),
            (try refusal(vocab: #"{"a": 0, "b": 1"#), ["vocab.json: not valid JSON"]),
            (try refusal(vocab: #"{"a": 0, "b": 0, "ab": 2}"#), ["vocab.json", "\"a\" and \"b\" both have id 0"]),
            (try refusal(vocab: #"{"a": 0, "b": 1, "ab": 9}"#), ["vocab.json", "\"ab\" has id 9, out of range"]),
            (try refusal(vocab: #"{"a": 0, "b": -1, "ab": 2}"#), ["vocab.json", "\"b\" is not a valid token id"]),
            (try refusal(config: #"{"tokenizer_class": "GPT2Tokenizer"}"#), ["tokenizer_config.json: tokenizer_class", "\"GPT2Tokenizer\" is not supported"]),
            (try refusal(config: #"{"eos_token": "x"}"#), ["tokenizer_config.json", "no tokenizer_class"]),
            (try refusal(config: #"{"tokenizer_class": "DreamTokenizer", "errors": "strict"}"#), ["tokenizer_config.json: errors"]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "add_bos_token": true}"#), ["tokenizer_config.json: add_bos_token"]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "split_special_tokens": true}"#), ["tokenizer_config.json: split_special_tokens"]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": {"3": {"content": "<x>"}}}"#),
             ["tokenizer_config.json: added_tokens_decoder.3", "vocab.json's token \"ab\""]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": {"x": {"content": "<x>"}}}"#),
             ["tokenizer_config.json: added_tokens_decoder.x", "token id"]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": {"7": {"content": "<x>"}}}"#),
             ["tokenizer_config.json: added_tokens_decoder", "\"<x>\" has id 7 where 6 was expected"]),
            (try refusal(config: #"{"tokenizer_class": "Qwen2Tokenizer", "pad_token": "<pad>"}"#),
             ["tokenizer_config.json: pad_token", "neither in added_tokens_decoder nor in vocab.json"]),
        ]
        for (message, parts) in cases {
            for p in parts { XCTAssertTrue(message.contains(p), "\(p) missing from: \(message)") }
        }
    }
}
