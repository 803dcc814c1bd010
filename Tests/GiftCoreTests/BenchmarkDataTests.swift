import Foundation
import XCTest
@testable import GiftCore

/// The benchmark readers, d1's problem draw and the prompts: numpy's legacy generator against numpy (and
/// against draws numpy made once, written down here), each reader on the fixture heads of the real files
/// (Fixtures/benchmarks/README.md) and on every kind of bad input, the system prompts against d1's, and
/// the rendered prompts and their ids against transformers on LLaDA's chat template.
final class BenchmarkDataTests: XCTestCase {
    static let fixtures = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/benchmarks")
    static let lladaTemplate = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/chat-templates/llada-8b-instruct.jinja")

    func fixture(_ name: String) -> URL { Self.fixtures.appendingPathComponent(name) }

    // MARK: numpy's legacy generator

    /// Outputs numpy 2.4.6 gave once (the legacy RandomState stream is frozen across numpy versions):
    /// `np.random.seed(S)` then the call named.
    func testNumpyDrawsComputedOnceByNumpy() {
        // np.random.seed(42); np.random.randint(0, 2**32, size=4, dtype=np.uint64): raw MT19937 words
        var r = NumpyLegacyRandom(seed: 42)
        XCTAssertEqual((0..<4).map { _ in r.nextUInt32() }, [1608637542, 3421126067, 4083286876, 787846414])
        // np.random.seed(0); np.random.permutation(10)
        r = NumpyLegacyRandom(seed: 0)
        XCTAssertEqual(r.permutation(10), [2, 8, 4, 9, 1, 6, 7, 3, 0, 5])
        // np.random.seed(4294967295); np.random.permutation(12)
        r = NumpyLegacyRandom(seed: 4_294_967_295)
        XCTAssertEqual(r.permutation(12), [11, 8, 5, 9, 1, 10, 6, 0, 4, 7, 2, 3])
        // np.random.seed(42); np.random.choice(N, K, replace=False): first 16 and last 4
        let draws: [(n: Int, k: Int, head: [Int], tail: [Int])] = [
            (500, 256, [361, 73, 374, 155, 104, 394, 377, 124, 68, 450, 9, 194, 406, 84, 371, 388], [474, 198, 297, 416]),
            (256, 256, [228, 6, 79, 206, 117, 185, 242, 167, 9, 30, 180, 222, 230, 217, 136, 68], [14, 92, 179, 102]),
            (300, 256, [203, 266, 152, 9, 233, 226, 196, 109, 5, 175, 237, 57, 218, 45, 182, 221], [133, 1, 131, 103]),
            (1319, 256, [677, 1046, 610, 49, 1284, 486, 548, 939, 78, 506, 210, 184, 485, 451, 1158, 886], [1031, 514, 778, 275]),
            (5, 5, [1, 4, 2, 0, 3], [4, 2, 0, 3]),
            (10, 3, [8, 1, 5], [8, 1, 5]),
        ]
        for d in draws {
            var g = NumpyLegacyRandom(seed: 42)
            let got = g.choiceWithoutReplacement(d.n, d.k)
            XCTAssertEqual(got.count, d.k)
            XCTAssertEqual(Array(got.prefix(d.head.count)), d.head, "choice(\(d.n), \(d.k))")
            XCTAssertEqual(Array(got.suffix(d.tail.count)), d.tail, "choice(\(d.n), \(d.k))")
            XCTAssertEqual(Set(got).count, d.k, "choice(\(d.n), \(d.k)) repeats an index")
        }
        // d1's draws: the countdown file has 256 problems (a permutation), the sudoku file 500
        XCTAssertEqual(Array(BenchmarkData.d1Order(count: 500, draw: 256).prefix(4)), [361, 73, 374, 155])
        XCTAssertEqual(Array(BenchmarkData.d1Order(count: 256, draw: 256).prefix(4)), [228, 6, 79, 206])
        XCTAssertEqual(BenchmarkData.d1Order(count: 100, draw: 256), Array(0..<100), "fewer than drawn: whole, in file order")
        XCTAssertEqual(BenchmarkData.d1Order(count: 7, draw: nil), Array(0..<7))
    }

    /// The same draws here and in numpy itself, over seeds and sizes (skipped without numpy).
    func testNumpyDrawsAgainstNumpy() throws {
        let cases: [(seed: UInt32, n: Int, k: Int)] = [
            (42, 500, 256), (42, 256, 256), (42, 1319, 256), (42, 5000, 256), (0, 1, 1), (1, 2, 2), (7, 10, 3),
            (123_456_789, 100_000, 40), (4_294_967_295, 70_000, 7), (42, 3, 3), (5, 0, 0), (42, 65_537, 10), (3, 2, 1),
            (2_147_483_648, 1_000, 1_000),
        ]
        let script = #"""
import json, sys
try:
    import numpy as np
except ImportError as e:
    sys.stderr.write("No module named numpy (%s)\n" % e); sys.exit(3)
out = []
for s, n, k in json.loads(sys.argv[1]):
    np.random.seed(s)
    out.append(np.random.choice(n, k, replace=False).tolist())
np.random.seed(42)
out.append([int(x) for x in np.random.randint(0, 2**32, size=2000, dtype=np.uint64)])
print(json.dumps(out))
"""#
        let arg = "[" + cases.map { "[\($0.seed), \($0.n), \($0.k)]" }.joined(separator: ", ") + "]"
        let r = try runPython(script, [arg])
        if r.stderr.contains("No module named") { throw XCTSkip("numpy not available to the test Python (set GIFT_PYTHON): \(r.stderr.prefix(200))") }
        XCTAssertEqual(r.status, 0, r.stderr)
        let ref = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[Int]]
        XCTAssertEqual(ref.count, cases.count + 1)
        for (c, want) in zip(cases, ref) {
            var g = NumpyLegacyRandom(seed: c.seed)
            XCTAssertEqual(g.choiceWithoutReplacement(c.n, c.k), want, "np.random.seed(\(c.seed)); choice(\(c.n), \(c.k), replace=False)")
        }
        var g = NumpyLegacyRandom(seed: 42)
        XCTAssertEqual((0..<2000).map { _ in Int(g.nextUInt32()) }, ref.last!, "raw MT19937 words across a state refill")
    }

    // MARK: readers on the real files' heads

    func testGSM8K() throws {
        let ps = try BenchmarkData.load(.gsm8k, file: fixture("gsm8k-test-head.jsonl"))
        XCTAssertEqual(ps.count, 3)
        XCTAssertEqual(ps.map(\.index), [0, 1, 2])
        XCTAssertEqual(ps.map(\.line), [1, 2, 3])
        XCTAssertEqual(ps[0].question, "Janet\u{2019}s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?")
        XCTAssertEqual(ps[1].question, "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?")
        XCTAssertEqual(ps.map(\.groundTruth), [.number(18), .number(3), .number(70000)])
        XCTAssertEqual(try BenchmarkData.load(.gsm8k, file: fixture("gsm8k-test-head.jsonl"), limit: 2).map(\.index), [0, 1])
    }

    /// d1's `Parser.extract_answer_gsm8k` on awkward answers: values Python gave once.
    static let gsm8kAnswers: [(String, Double?)] = [
        ("#### 18", 18), ("#### $18", 18), ("#### 18.0", 18), ("####1,234.5", 1234.5), ("#### ,,,", nil),
        ("#### ,.5", 0.5), ("##### 5", 5), ("no answer", nil), ("#### 1.2.3", 1.2), ("####\n 72", 72), ("#### 10.", 10),
        ("####$ 5", nil), ("#### $$5", nil), ("#### 3,000,000", 3_000_000), ("#### -5", nil), ("#### \u{661}\u{662}", 12),
        ("x #### y #### 7", 7), ("####\u{a0}\u{2003}9", 9), ("####\u{1c}4", 4), ("####\u{200b}4", nil), ("#### 0.25,5", 0.25),
        ("#### 7\n#### 8", 7), ("", nil),
    ]

    func testGSM8KAnswerExtraction() throws {
        for (text, want) in Self.gsm8kAnswers {
            XCTAssertEqual(BenchmarkData.gsm8kAnswer(text), want, StrictJSON.quote(text))
        }
        // and against Python's re itself, when there is a Python
        let script = #"""
import json, re, sys
def ex(t):
    try:
        m = re.search(r"####\s*\$?([\d,]+(?:\.\d+)?)", t)
        if m:
            return float(m.group(1).replace(",", ""))
    except Exception:
        pass
    return None
print(json.dumps([ex(t) for t in json.load(open(sys.argv[1], encoding="utf-8"))]))
"""#
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("answers.json")
        try ("[" + Self.gsm8kAnswers.map { StrictJSON.quote($0.0) }.joined(separator: ",") + "]").write(to: path, atomically: true, encoding: .utf8)
        let r = try runPython(script, [path.path])
        guard r.status == 0 else { throw XCTSkip("no Python to check against: \(r.stderr.prefix(200))") }
        let ref = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [Any]
        for ((text, _), want) in zip(Self.gsm8kAnswers, ref) {
            XCTAssertEqual(BenchmarkData.gsm8kAnswer(text), (want as? NSNumber)?.doubleValue, "Python differs on \(StrictJSON.quote(text))")
        }
    }

    func testMATH500() throws {
        let ps = try BenchmarkData.load(.math500, file: fixture("math500-test-head.jsonl"))
        XCTAssertEqual(ps.count, 4)
        XCTAssertEqual(ps[0].question, "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$")
        XCTAssertEqual(ps.map(\.groundTruth), [.text("\\left( 3, \\frac{\\pi}{2} \\right)"), .text("p - q"), .text("\\frac{14}{3}"), .text("9")])
        XCTAssertEqual(ps[3].question, "How many positive whole-number divisors does 196 have?")
    }

    func testCountdown() throws {
        // 8 problems: fewer than d1 draws, so all of them in file order
        let ps = try BenchmarkData.load(.countdown, file: fixture("countdown_cd3_test-head.jsonl"))
        XCTAssertEqual(ps.count, 8)
        XCTAssertEqual(ps.map(\.index), Array(0..<8))
        XCTAssertEqual(ps[0].question, "Numbers: [30, 100, 93]\nTarget: 23")
        XCTAssertEqual(ps[0].groundTruth, .countdown(numbers: [30, 100, 93], target: 23))
        XCTAssertEqual(ps[7].question, "Numbers: [91, 2, 52]\nTarget: 37")
        XCTAssertEqual(ps[7].line, 8)
        XCTAssertEqual(try BenchmarkData.load(.countdown, file: fixture("countdown_cd3_test-head.jsonl"), limit: 3).count, 3)
    }

    func testSudoku() throws {
        let ps = try BenchmarkData.load(.sudoku, file: fixture("4x4_test_sudoku-head.csv"))
        XCTAssertEqual(ps.count, 8)
        XCTAssertEqual(ps.map(\.index), Array(0..<8))
        XCTAssertEqual(ps.map(\.line), Array(2...9))
        XCTAssertEqual(ps[0].question, "Solve the following Sudoku puzzle: 3102200002100320\n")
        XCTAssertEqual(ps[0].groundTruth, .sudoku(solution: "3142243142131324"))
        XCTAssertEqual(ps[1].question, "Solve the following Sudoku puzzle: 0140432014020000\n", "leading zeros kept (pandas' dtype str)")
    }

    /// Files of d1's sizes (generated): Countdown and Sudoku come in numpy's drawn order, GSM8K in file order;
    /// the limit keeps the first of the drawn order; lenient inputs int() accepts.
    func testD1DrawOnFullSizeFiles() throws {
        let dir = try temporaryDirectory(self)
        var cd = "", sd = "Puzzle,Solution\r\n", gsm = ""
        for i in 0..<300 { cd += "{\"input\": \"\(i),\(i + 1), \(i + 2)\", \"output\": \(i % 2 == 0 ? "\"\(i)\"" : "\(i)")}\n" }
        for i in 0..<500 { let p = String(format: "%016ld", i); sd += "\(p),\(String(p.reversed()))\r\n" }
        for i in 0..<300 { gsm += "{\"question\": \"q\(i)\", \"answer\": \"#### \(i)\"}\n" }
        let cdURL = dir.appendingPathComponent("cd.jsonl"), sdURL = dir.appendingPathComponent("sd.csv"), gURL = dir.appendingPathComponent("g.jsonl")
        try cd.write(to: cdURL, atomically: true, encoding: .utf8)
        try ("\u{feff}" + sd).write(to: sdURL, atomically: true, encoding: .utf8)
        try gsm.write(to: gURL, atomically: true, encoding: .utf8)

        let c = try BenchmarkData.load(.countdown, file: cdURL)
        XCTAssertEqual(c.count, 256)
        XCTAssertEqual(Array(c.prefix(4).map(\.index)), [203, 266, 152, 9], "np.random.seed(42); choice(300, 256, replace=False)")
        XCTAssertEqual(c[0].question, "Numbers: [203, 204, 205]\nTarget: 203")
        XCTAssertEqual(c[0].line, 204)
        XCTAssertEqual(c[3].groundTruth, .countdown(numbers: [9, 10, 11], target: 9))

        let s = try BenchmarkData.load(.sudoku, file: sdURL)
        XCTAssertEqual(s.count, 256)
        XCTAssertEqual(Array(s.prefix(4).map(\.index)), [361, 73, 374, 155], "np.random.seed(42); choice(500, 256, replace=False)")
        XCTAssertEqual(s[0].question, "Solve the following Sudoku puzzle: 0000000000000361\n")
        XCTAssertEqual(s[0].line, 363)
        XCTAssertEqual(try BenchmarkData.load(.sudoku, file: sdURL, limit: 3).map(\.index), [361, 73, 374])

        let g = try BenchmarkData.load(.gsm8k, file: gURL)
        XCTAssertEqual(g.map(\.index), Array(0..<300))
        XCTAssertEqual(g[299].groundTruth, .number(299))
        XCTAssertEqual(try BenchmarkData.read(.countdown, file: cdURL).map(\.index), Array(0..<300))
    }

    // MARK: bad input

    /// Writes `content` and expects `load` to fail with a message naming the file and `line`, containing `parts`.
    func expectError(_ b: Benchmark, _ content: String, line: Int?, _ parts: [String], name: String = "bad.txt",
                     file: StaticString = #filePath, at: UInt = #line) throws {
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent(name)
        try Data(content.utf8).write(to: url)
        do {
            let ps = try BenchmarkData.load(b, file: url)
            XCTFail("expected an error, read \(ps.count) problems", file: file, line: at)
        } catch let e as GiftError {
            let want = line.map { "\(url.path):\($0): " } ?? url.path
            XCTAssertTrue(e.message.hasPrefix(want), "'\(e.message)' does not start with '\(want)'", file: file, line: at)
            for p in parts {
                XCTAssertTrue(e.message.contains(p), "'\(e.message)' lacks '\(p)'", file: file, line: at)
            }
        }
    }

    func testBadJSONL() throws {
        let good = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n"
        try expectError(.gsm8k, good + "{\"question\": \"q\", \"answer\": \n", line: 2, ["invalid JSON"])
        try expectError(.gsm8k, good + "\n\n" + "{\"question\": \"q\"}\n", line: 4, ["missing field \"answer\""])
        try expectError(.gsm8k, "{\"question\": 5, \"answer\": \"#### 1\"}\n", line: 1, ["field \"question\" must be a string", "the number 5"])
        try expectError(.gsm8k, "[1, 2]\n", line: 1, ["expected a JSON object", "\"question\""])
        try expectError(.gsm8k, "{\"question\": \"q\", \"answer\": \"#### 1\", \"question\": \"r\"}\n", line: 1, ["duplicate key"])
        try expectError(.math500, "{\"problem\": \"p\", \"answer\": 9}\n", line: 1, ["field \"answer\" must be a string"])
        try expectError(.math500, good, line: 1, ["missing field \"problem\"", "GSM8K"])
        try expectError(.countdown, "{\"input\": \"1,x,3\", \"output\": \"4\"}\n", line: 1, ["field \"input\"", "item 2", "\"x\""])
        try expectError(.countdown, "{\"input\": \"1,,3\", \"output\": \"4\"}\n", line: 1, ["field \"input\""])
        try expectError(.countdown, "{\"input\": [1, 2], \"output\": \"4\"}\n", line: 1, ["field \"input\" must be a string"])
        try expectError(.countdown, "{\"input\": \"1,2\", \"output\": \"four\"}\n", line: 1, ["field \"output\"", "\"four\""])
        try expectError(.countdown, "{\"input\": \"1,2\", \"output\": 4.5}\n", line: 1, ["field \"output\"", "4.5"])
        try expectError(.countdown, "{\"input\": \"1,2\", \"output\": true}\n", line: 1, ["field \"output\""])
        let invalidUTF8 = String(decoding: [0x7B, 0xFF, 0x7D], as: UTF8.self)   // becomes U+FFFD, still bad JSON
        try expectError(.countdown, invalidUTF8 + "\n", line: 1, ["invalid JSON"])
    }

    func testInvalidUTF8() throws {
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("bytes.jsonl")
        try Data(Array("{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"".utf8) + [0xC3, 0x28] + Array("\", \"answer\": \"a\"}\n".utf8)).write(to: url)
        XCTAssertThrowsError(try BenchmarkData.load(.gsm8k, file: url)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(url.path):2: invalid UTF-8"), "\(e)")
        }
    }

    /// A file of one benchmark given as another says which it looks like.
    func testWrongBenchmarkFile() throws {
        let gsm = try String(contentsOf: fixture("gsm8k-test-head.jsonl"), encoding: .utf8)
        let cd = try String(contentsOf: fixture("countdown_cd3_test-head.jsonl"), encoding: .utf8)
        let math = try String(contentsOf: fixture("math500-test-head.jsonl"), encoding: .utf8)
        let sd = try String(contentsOf: fixture("4x4_test_sudoku-head.csv"), encoding: .utf8)
        try expectError(.countdown, gsm, line: 1, ["missing field \"input\"", "a GSM8K file"])
        try expectError(.gsm8k, cd, line: 1, ["missing field \"question\"", "a Countdown file"])
        try expectError(.gsm8k, math, line: 1, ["missing field \"question\"", "a MATH-500 file"])
        try expectError(.math500, cd, line: 1, ["missing field \"problem\"", "a Countdown file"])
        try expectError(.gsm8k, sd, line: 1, ["invalid JSON", "a Sudoku file"])
        try expectError(.countdown, sd, line: 1, ["a Sudoku file"])
        try expectError(.sudoku, cd, line: 1, ["expected the CSV header Puzzle,Solution", "a Countdown file"])
        try expectError(.sudoku, gsm, line: 1, ["Puzzle,Solution", "a GSM8K file"])
        try expectError(.sudoku, "{\"a\": 1}\n", line: 1, ["Puzzle,Solution", "JSONL"])
    }

    func testBadSudoku() throws {
        let head = "Puzzle,Solution\n3102200002100320,3142243142131324\n"
        try expectError(.sudoku, head + "310220000210032,3142243142131324\n", line: 3, ["field \"Puzzle\"", "16 digits", "\"310220000210032\""])
        try expectError(.sudoku, head + "31022000021003200,3142243142131324\n", line: 3, ["field \"Puzzle\"", "16 digits"])
        try expectError(.sudoku, head + "31022000021003x0,3142243142131324\n", line: 3, ["field \"Puzzle\""])
        try expectError(.sudoku, head + "3102200002100320,31422431421313\n", line: 3, ["field \"Solution\"", "16 digits"])
        try expectError(.sudoku, head + "3102200002100320\n", line: 3, ["expected 2 fields", "found 1"])
        try expectError(.sudoku, head + "3102200002100320,3142243142131324,9\n", line: 3, ["expected 2 fields", "found 3"])
        try expectError(.sudoku, head + "\"3102200002100320,3142243142131324\n", line: 3, ["unterminated"])
        try expectError(.sudoku, "3102200002100320,3142243142131324\n", line: 1, ["expected the CSV header Puzzle,Solution"])
        try expectError(.sudoku, "Puzzle,Answer\n3102200002100320,3142243142131324\n", line: 1, ["Puzzle,Solution"])
        try expectError(.sudoku, "Puzzle,Solution\n\n", line: 1, ["no problems"])
        // quoted fields and extra columns are read as pandas reads them
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("q.csv")
        try "Id,Solution,Puzzle\n7,\"3142243142131324\",\"3102200002100320\"\n".write(to: url, atomically: true, encoding: .utf8)
        let ps = try BenchmarkData.load(.sudoku, file: url)
        XCTAssertEqual(ps.map(\.question), ["Solve the following Sudoku puzzle: 3102200002100320\n"])
        XCTAssertEqual(ps.map(\.groundTruth), [.sudoku(solution: "3142243142131324")])
    }

    func testEmptyAndMissingFiles() throws {
        for b in Benchmark.allCases {
            try expectError(b, "", line: nil, ["empty"])
            try expectError(b, "\n  \n\r\n", line: nil, ["empty"])
        }
        let missing = URL(fileURLWithPath: "/nonexistent/gift-benchmark.jsonl")
        XCTAssertThrowsError(try BenchmarkData.load(.gsm8k, file: missing)) { e in
            XCTAssertTrue("\(e)".contains(missing.path), "\(e)")
        }
        XCTAssertThrowsError(try BenchmarkData.load(.gsm8k, file: fixture("gsm8k-test-head.jsonl"), limit: 0)) { e in
            XCTAssertTrue("\(e)".contains("limit"), "\(e)")
        }
    }

    // MARK: prompts

    /// The system prompts are d1's byte for byte: their UTF-8 lengths and XXH64s were taken from d1's
    /// Python constants (GSM_SYSTEM_PROMPT, MATH500_SYSTEM_PROMPT, CTD_SYSTEM_PROMPT, SUDOKU_SYSTEM_PROMPT of
    /// dllm-reasoning/d1 eval/*.py, compared equal to these strings when they were written down).
    func testSystemPromptsAreD1s() {
        let want: [Benchmark: (bytes: Int, xxh64: UInt64)] = [
            .gsm8k: (231, 0xbd0fb81a3cfd952e), .math500: (233, 0xb05f9cd24164db80),
            .countdown: (501, 0x4a1392ec9baa14a1), .sudoku: (658, 0xe48b28f1d4dc64f5),
        ]
        for b in Benchmark.allCases {
            let p = BenchmarkPrompts.systemPrompt(b)
            XCTAssertEqual(p.utf8.count, want[b]!.bytes, "\(b)")
            XCTAssertEqual(XXH64.hash(Array(p.utf8)), want[b]!.xxh64, "\(b)")
            XCTAssertEqual(BenchmarkPrompts.userContent(b, question: "Q?"), p + "\n\nQ?")
        }
        XCTAssertTrue(BenchmarkPrompts.gsm8k.contains("\\boxed{}. \nRespond in the following format:"), "GSM8K's trailing space")
        XCTAssertTrue(BenchmarkPrompts.gsm8k.hasSuffix("\n</answer>"))
        XCTAssertTrue(BenchmarkPrompts.math500.contains("\\boxed{}.\nRespond"))
        XCTAssertTrue(BenchmarkPrompts.math500.hasSuffix("\\boxed{...}\n</answer>\" \n"), "MATH500's stray quote, space and newline")
        XCTAssertTrue(BenchmarkPrompts.countdown.contains("\\boxed{} tags without"))
        XCTAssertTrue(BenchmarkPrompts.countdown.contains("For example: \\boxed{a + b * c}Respond in the following format:\n<reasoning>"))
        XCTAssertTrue(BenchmarkPrompts.sudoku.hasPrefix("\nPlease solve the following 4x4 Sudoku puzzle."))
        XCTAssertTrue(BenchmarkPrompts.sudoku.hasSuffix("separators]\n</answer>\n"))
    }

    /// Every fixture problem of every benchmark, as (benchmark, question).
    func allFixtureQuestions() throws -> [(Benchmark, String)] {
        var out: [(Benchmark, String)] = []
        for (b, f) in [(Benchmark.gsm8k, "gsm8k-test-head.jsonl"), (.math500, "math500-test-head.jsonl"),
                       (.countdown, "countdown_cd3_test-head.jsonl"), (.sudoku, "4x4_test_sudoku-head.csv")] {
            out += try BenchmarkData.load(b, file: fixture(f)).map { (b, $0.question) }
        }
        return out
    }

    /// The rendering on LLaDA's template without Python: `<|startoftext|>`, the user header, the content
    /// trimmed (Jinja's `trim`), the generation prompt, then `<reasoning>`.
    func testPromptTextOnLLaDATemplate() throws {
        let source = try String(contentsOf: Self.lladaTemplate, encoding: .utf8)
        let tok = try HFTokenizer(json: #"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0}, "merges": []}}"#, source: "inline")
        let model = TextModel(tokenizer: tok, template: try ChatTemplate(source: source, name: "llada"), templateName: "llada",
                              variables: ["bos_token": .string("<|startoftext|>"), "eos_token": .string("<|endoftext|>")])
        let builder = try BenchmarkPromptBuilder(model: model)
        for (b, q) in try allFixtureQuestions() {
            let content = BenchmarkPrompts.userContent(b, question: q).trimmingCharacters(in: .whitespacesAndNewlines)
            let want = "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\n" + content
                + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<reasoning>"
            XCTAssertEqual(try builder.text(b, question: q), want, "\(b): \(q.prefix(40))")
        }
        let sudoku = try builder.text(.sudoku, question: "Solve the following Sudoku puzzle: 3102200002100320\n")
        XCTAssertTrue(sudoku.hasPrefix("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nPlease solve"), "the leading newline is trimmed away")
        XCTAssertTrue(sudoku.hasSuffix("3102200002100320<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<reasoning>"))
        let noTemplate = TextModel(tokenizer: tok, template: nil, templateName: "", variables: [:])
        XCTAssertThrowsError(try BenchmarkPromptBuilder(model: noTemplate))
    }

    /// Text and ids against transformers: a small byte-level BPE tokenizer trained on the prompts, with
    /// LLaDA's chat template, once without a post-processor and once with one that adds `<|startoftext|>`
    /// (then `tokenizer(prompt)` gives two BOS, the template's and the post-processor's, and so must gift).
    /// The reference is d1's code path: apply_chat_template(add_generation_prompt=True, tokenize=False) +
    /// "<reasoning>", `tokenizer(prompt).input_ids`, and the left-padded batch call of its collate_fn.
    func testPromptsAgainstTransformers() throws {
        let questions = try allFixtureQuestions()
        let dir = try temporaryDirectory(self)
        let casesURL = dir.appendingPathComponent("cases.json")
        try ("[" + questions.map { "{\"content\": \(StrictJSON.quote(BenchmarkPrompts.userContent($0.0, question: $0.1)))}" }
            .joined(separator: ",\n") + "]").write(to: casesURL, atomically: true, encoding: .utf8)
        for mode in ["plain", "bos"] {
            let folder = dir.appendingPathComponent(mode)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let r = try runPython(Self.transformersScript, [folder.path, Self.lladaTemplate.path, casesURL.path, mode])
            if r.stderr.contains("No module named") {
                throw XCTSkip("tokenizers/transformers not available to the test Python (set GIFT_PYTHON): \(r.stderr.suffix(300))")
            }
            XCTAssertEqual(r.status, 0, r.stderr)
            guard r.status == 0 else { return }
            let ref = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
            XCTAssertEqual(ref.count, questions.count)
            let builder = try BenchmarkPromptBuilder(modelDir: folder.path)
            let bos = builder.model.tokenizer.id(of: "<|startoftext|>")!
            for ((b, q), want) in zip(questions, ref) {
                let text = try builder.text(b, question: q)
                XCTAssertEqual(text, want["text"] as? String, "\(mode) \(b): rendered text differs")
                let ids = try builder.ids(b, question: q).map(Int.init)
                XCTAssertEqual(ids, want["ids"] as? [Int], "\(mode) \(b): ids differ from tokenizer(prompt)")
                XCTAssertEqual(ids, want["batch_ids"] as? [Int], "\(mode) \(b): ids differ from the batch call's")
                XCTAssertEqual(ids.prefix(2).filter { $0 == Int(bos) }.count, mode == "bos" ? 2 : 1, "\(mode) \(b): BOS count")
            }
        }
    }

    static let transformersScript = #"""
import json, sys
try:
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders, processors
    from transformers import AutoTokenizer
except ImportError as e:
    sys.stderr.write("No module named %s (%s)\n" % (getattr(e, "name", None), e))
    sys.exit(3)
d, template_path, cases_path, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
template = open(template_path, encoding="utf-8").read()
cases = json.load(open(cases_path, encoding="utf-8"))
special = ["<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|mdm_mask|>"]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([c["content"] for c in cases] * 3,
                        trainers.BpeTrainer(vocab_size=600, special_tokens=special, show_progress=False,
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
if mode == "bos":
    bos = tok.token_to_id("<|startoftext|>")
    tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A", pair="<|startoftext|> $A <|startoftext|> $B",
                                                       special_tokens=[("<|startoftext|>", bos)])
tok.save(d + "/tokenizer.json")
json.dump({"bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>", "__type": "AddedToken"},
           "pad_token": "<|endoftext|>", "chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"},
          open(d + "/tokenizer_config.json", "w"))
t = AutoTokenizer.from_pretrained(d)
out, prompts = [], []
for c in cases:
    p = t.apply_chat_template([{"role": "user", "content": c["content"]}], add_generation_prompt=True, tokenize=False) + "<reasoning>"
    prompts.append(p)
    out.append({"text": p, "ids": t(p).input_ids})
batch = t(prompts, padding_side="left", padding="longest")
for o, ids, mask in zip(out, batch["input_ids"], batch["attention_mask"]):
    o["batch_ids"] = [i for i, m in zip(ids, mask) if m]
sys.stdout.write(json.dumps(out))
"""#
}
