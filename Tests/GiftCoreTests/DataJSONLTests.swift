import Foundation
import XCTest
@testable import GiftCore

final class DataJSONLTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try temporaryDirectory(self) }

    func file(_ lines: [String], _ name: String = "data.jsonl") throws -> String {
        let p = dir.appendingPathComponent(name).path
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    var tok: CharTokenizer { try! CharTokenizer(vocabSize: 64, eosId: 62, maskId: 63) }

    /// The GiftError of reading `lines`, asserting one is thrown.
    func readError(_ lines: [String], tokenizer: CharTokenizer? = nil, skip: Bool = false,
                   file f: StaticString = #filePath, line: UInt = #line) throws -> GiftError? {
        let p = try file(lines)
        do {
            _ = try JSONLReader.read(path: p, tokenizer: tokenizer ?? tok, vocabSize: 64, skipBadLines: skip)
            XCTFail("no error", file: f, line: line)
            return nil
        } catch let e as GiftError { return e }
    }

    func testTextAndIdForms() throws {
        let p = try file([
            #"{"prompt": "2+2=", "response": "4"}"#,
            "",
            #"  {"prompt_ids": [1, 2, 3], "response_ids": [4, 62], "source": "x"}  "#,
            #"{"prompt": "a\"b\/c\u0021", "response_ids": [5]}"#,
            "   ",
            #"{"response": "ok", "prompt": ""}"#,
        ])
        let (ex, rep) = try JSONLReader.read(path: p, tokenizer: tok, vocabSize: 64, skipBadLines: false)
        XCTAssertEqual(rep, DatasetReport(examples: 4, skippedBadLines: 0, skippedEmptyResponse: 0, truncated: 0))
        XCTAssertEqual(ex.count, 4)
        XCTAssertEqual(ex[0], Example(prompt: try tok.encode("2+2="), response: try tok.encode("4"), line: 1))
        XCTAssertEqual(ex[1], Example(prompt: [1, 2, 3], response: [4, 62], line: 3))
        XCTAssertEqual(tok.decode(ex[2].prompt), "a\"b/c!")
        XCTAssertEqual(ex[2].line, 4)
        XCTAssertEqual(ex[3].prompt, [])
        XCTAssertEqual(ex[3].line, 6)

        // Id form without a tokenizer works; text form without one is an error pointing to *_ids.
        let q = try file([#"{"prompt_ids": [1], "response_ids": [2, 3]}"#], "ids.jsonl")
        let (ex2, _) = try JSONLReader.read(path: q, tokenizer: nil, vocabSize: 64, skipBadLines: false)
        XCTAssertEqual(ex2, [Example(prompt: [1], response: [2, 3], line: 1)])
        XCTAssertThrowsError(try JSONLReader.read(path: p, tokenizer: nil, vocabSize: 64, skipBadLines: true)) { e in
            let m = (e as! GiftError).message
            XCTAssertTrue(m.hasPrefix("\(p):1:") && m.contains("needs a tokenizer") && m.contains("prompt_ids"), m)
        }
    }

    func testBadJSONNamesPathAndLine() throws {
        let lines = [#"{"prompt": "a", "response": "b"}"#, "", #"{"prompt": "a", "response": "b""#]
        let e = try XCTUnwrap(try readError(lines))
        XCTAssertEqual(e.kind, .data)
        XCTAssertTrue(e.message.hasPrefix(dir.appendingPathComponent("data.jsonl").path + ":3: invalid JSON"), e.message)
        for bad in ["{prompt: 1}", "{\"prompt\": \"a\",}", "[1, 2]", "\"text\"", "{\"prompt\": \"a\", \"response\": \"b\"} x",
                    "{\"prompt_ids\": [01], \"response_ids\": [1]}", "{\"prompt\": \"\\x\", \"response\": \"b\"}"] {
            let e = try XCTUnwrap(try readError([bad]), bad)
            XCTAssertTrue(e.message.contains("data.jsonl:1: "), "\(bad): \(e.message)")
        }
        let arr = try XCTUnwrap(try readError(["[1, 2]"]))
        XCTAssertTrue(arr.message.contains("expected a JSON object"), arr.message)
    }

    func testMissingAndIllTypedFields() throws {
        let e1 = try XCTUnwrap(try readError([#"{"prompt": "a"}"#]))
        XCTAssertTrue(e1.message.contains(":1: missing field \"response\""), e1.message)
        let e2 = try XCTUnwrap(try readError([#"{"response": "a"}"#]))
        XCTAssertTrue(e2.message.contains("missing field \"prompt\""), e2.message)
        let e3 = try XCTUnwrap(try readError([#"{"prompt": 5, "response": "a"}"#]))
        XCTAssertTrue(e3.message.contains("\"prompt\" must be a string, found the number 5"), e3.message)
        let e4 = try XCTUnwrap(try readError([#"{"prompt_ids": "1 2", "response_ids": [1]}"#]))
        XCTAssertTrue(e4.message.contains("\"prompt_ids\" must be an array"), e4.message)
        let e5 = try XCTUnwrap(try readError([#"{"prompt": "a", "prompt_ids": [1], "response": "b"}"#]))
        XCTAssertTrue(e5.message.contains("both \"prompt\" and \"prompt_ids\""), e5.message)
        let e6 = try XCTUnwrap(try readError([#"{"prompt": "Hello", "response": "b"}"#]))
        XCTAssertTrue(e6.message.contains(":1: field \"prompt\": character 'H'"), e6.message)
    }

    func testNonIntegerIds() throws {
        for (bad, shown) in [("1.5", "1.5"), ("2e1", "2e1"), ("\"3\"", "a string"), ("true", "true"), ("null", "null"), ("[1]", "an array")] {
            let e = try XCTUnwrap(try readError(["", #"{"prompt_ids": [1, "# + bad + #"], "response_ids": [2]}"#]), bad)
            XCTAssertTrue(e.message.contains(":2: prompt_ids[1] is not an integer token id: \(shown)"), "\(bad): \(e.message)")
        }
    }

    func testIdOutOfVocabIsAlwaysAnError() throws {
        for skip in [false, true] {
            let e = try XCTUnwrap(try readError([#"{"prompt_ids": [1], "response_ids": [2]}"#,
                                                 #"{"prompt_ids": [1], "response_ids": [2, 64]}"#], skip: skip))
            XCTAssertTrue(e.message.contains("data.jsonl:2: token id 64 (response_ids[1])"), e.message)
            XCTAssertTrue(e.message.contains("[0, 64)"), e.message)
            let n = try XCTUnwrap(try readError([#"{"prompt_ids": [-3], "response_ids": [2]}"#], skip: skip))
            XCTAssertTrue(n.message.contains(":1: token id -3"), n.message)
            let big = try XCTUnwrap(try readError([#"{"prompt_ids": [99999999999999999999999], "response_ids": [2]}"#], skip: skip))
            XCTAssertTrue(big.message.contains("token id 99999999999999999999999"), big.message)
        }
    }

    func testEmptyResponseAndSkipBadLines() throws {
        let lines = [
            #"{"prompt": "a", "response": "b"}"#,
            #"{"prompt": "a", "response": ""}"#,
            "not json",
            #"{"prompt_ids": [1], "response_ids": []}"#,
            #"{"prompt": "a"}"#,
            #"{"prompt_ids": [1.5], "response_ids": [3]}"#,
            #"{"prompt": "Zz", "response": "b"}"#,
            #"{"prompt_ids": [7], "response_ids": [8, 9]}"#,
        ]
        let p = try file(lines)
        let (ex, rep) = try JSONLReader.read(path: p, tokenizer: tok, vocabSize: 64, skipBadLines: true)
        XCTAssertEqual(rep, DatasetReport(examples: 2, skippedBadLines: 4, skippedEmptyResponse: 2, truncated: 0))
        XCTAssertEqual(ex.map(\.line), [1, 8])
        XCTAssertEqual(rep.summary, "2 examples (4 bad lines skipped, 2 empty responses skipped)")
        // Without skipping: the empty response on line 2 is no error; the first bad line (3) is.
        let e = try XCTUnwrap(try readError(lines))
        XCTAssertTrue(e.message.contains("data.jsonl:3: invalid JSON"), e.message)
    }

    func testTruncationCountedAndCRLF() throws {
        let p = dir.appendingPathComponent("crlf.jsonl").path
        let text = "\u{FEFF}{\"prompt_ids\": [1, 2, 3], \"response_ids\": [4, 5, 6]}\r\n{\"prompt_ids\": [1], \"response_ids\": [2]}\r\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        let (ex, rep) = try JSONLReader.read(path: p, tokenizer: nil, vocabSize: 64, skipBadLines: false, maxLength: 4)
        XCTAssertEqual(rep.truncated, 1)
        XCTAssertEqual(ex[0], Example(prompt: [1, 2, 3], response: [4], line: 1))
        XCTAssertEqual(ex[1], Example(prompt: [1], response: [2], line: 2))
    }

    func testMissingFile() {
        let p = dir.appendingPathComponent("nope.jsonl").path
        XCTAssertThrowsError(try JSONLReader.read(path: p, tokenizer: nil, vocabSize: 64, skipBadLines: true)) { e in
            let g = e as! GiftError
            XCTAssertEqual(g.kind, .io)
            XCTAssertTrue(g.message.contains(p) && g.message.contains("does not exist"), g.message)
        }
        XCTAssertThrowsError(try JSONLReader.read(path: dir.path, tokenizer: nil, vocabSize: 64, skipBadLines: true)) { e in
            XCTAssertEqual((e as! GiftError).kind, .io)
        }
    }

    func testWriteRoundTrip() throws {
        let pairs = BuiltinTask.countdown.generate(n: 30, seed: 9, split: .train)
            + [(prompt: "say \"hi\"\n/", answer: "ok")]
        let p = dir.appendingPathComponent("pairs.jsonl").path
        try JSONLReader.write(path: p, pairs: pairs)
        let (ex, rep) = try JSONLReader.read(path: p, tokenizer: tok, vocabSize: 64, skipBadLines: false)
        XCTAssertEqual(rep.examples, 31)
        let expected = try BuiltinTask.examples(pairs, tokenizer: tok)
        XCTAssertEqual(ex.map(\.prompt), expected.map(\.prompt))
        XCTAssertEqual(ex.map(\.response), expected.map(\.response))
        for form in [tok, nil] as [CharTokenizer?] {
            let q = dir.appendingPathComponent("ex.jsonl").path
            try JSONLReader.write(path: q, examples: ex, tokenizer: form)
            let (back, _) = try JSONLReader.read(path: q, tokenizer: tok, vocabSize: 64, skipBadLines: false)
            XCTAssertEqual(back, ex)
        }
    }
}
