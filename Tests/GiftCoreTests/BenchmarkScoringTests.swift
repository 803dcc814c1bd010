import Foundation
import XCTest
@testable import GiftCore

/// d1's answer scorers (eval/parse_and_get_acc.py, eval/parser_helper.py): hand-written outputs for each
/// rule and quirk, with the verdict argued from the rules; then d1's own generations files rescored
/// against the verdicts d1's code gave them (Fixtures/d1/README.md).
final class BenchmarkScoringTests: XCTestCase {
    // MARK: helpers

    func gsm(_ out: String, _ gt: Double?) -> Verdict {
        BenchmarkScorer.score(.gsm8k, output: out, question: "", groundTruth: .number(gt))
    }
    func math(_ out: String, _ gt: String) -> Verdict {
        BenchmarkScorer.score(.math500, output: out, question: "", groundTruth: .text(gt))
    }
    func cd(_ out: String, _ numbers: [Int], _ target: Int) -> Verdict {
        BenchmarkScorer.score(.countdown, output: out, question: "", groundTruth: .countdown(numbers: numbers, target: target))
    }
    func sudoku(_ out: String, question: String = "Solve the following Sudoku puzzle: 4320004330100004\n",
                solution: String = "4321124334122134") -> Verdict {
        BenchmarkScorer.score(.sudoku, output: out, question: question, groundTruth: .sudoku(solution: solution))
    }
    func number(_ v: Verdict) -> Double? { if case .number(let d) = v.extracted { return d }; return nil }
    func text(_ v: Verdict) -> String? { if case .text(let s) = v.extracted { return s }; return nil }

    // MARK: GSM8K

    func testGSM8KFirstUsableBox() {
        // The first box wins; later boxes and the answer tag are not looked at.
        XCTAssertEqual(gsm("\\boxed{12} then \\boxed{13} <answer>14</answer>", 12), Verdict(extracted: .number(12), correct: 1))
        // Empty, "..." and only-dots boxes are skipped, as is a box with no number at all.
        XCTAssertEqual(number(gsm("\\boxed{} \\boxed{...} \\boxed{ .. } \\boxed{x} \\boxed{7}", 7)), 7)
        // float() fails on the content: its first -?\d+\.?\d* counts.
        XCTAssertEqual(number(gsm("\\boxed{x = -3.5 cm, or 4}", nil)), -3.5)
        // Non-greedy up to the first "}": \frac{1}{2} gives "\frac{1" and so 1.
        XCTAssertEqual(number(gsm("\\boxed{\\frac{1}{2}}", 0.5)), 1)
        // The box may not span a line break: this one is no box, so the answer tag decides.
        XCTAssertEqual(number(gsm("\\boxed{1\n2} <answer>5</answer>", 5)), 5)
        // Exact float equality; None is never equal.
        XCTAssertEqual(gsm("\\boxed{109}", 109).correct, 1)
        XCTAssertEqual(gsm("\\boxed{109.00000000000002}", 109).correct, 0)
        XCTAssertEqual(gsm("\\boxed{109}", nil), Verdict(extracted: .number(109), correct: 0))
        XCTAssertEqual(gsm("no answer", 3), Verdict(extracted: .none, correct: 0))
    }

    func testGSM8KPythonFloat() {
        // float(): surrounding whitespace, underscores between digits, exponents, a leading +, words.
        XCTAssertEqual(number(gsm("\\boxed{ 1_000 }", nil)), 1000)
        XCTAssertEqual(number(gsm("\\boxed{+1e3}", nil)), 1000)
        XCTAssertEqual(number(gsm("\\boxed{1.}", nil)), 1)
        XCTAssertEqual(number(gsm("\\boxed{.5}", nil)), 0.5)
        XCTAssertEqual(number(gsm("\\boxed{-Infinity}", nil)), -.infinity)
        XCTAssertEqual(number(gsm("\\boxed{1e400}", nil)), .infinity)
        XCTAssertTrue(number(gsm("\\boxed{nan}", nil))!.isNaN)
        // A double underscore is not a float: the first number of "1__0" is 1.
        XCTAssertEqual(number(gsm("\\boxed{1__0}", nil)), 1)
        // "0x10" is no float; its first number is 0.
        XCTAssertEqual(number(gsm("\\boxed{0x10}", nil)), 0)
        // Unicode decimal digits are \d and float() reads them; superscripts are neither, so that box is
        // skipped.
        XCTAssertEqual(number(gsm("\\boxed{١٢}", 12)), 12)
        XCTAssertEqual(number(gsm("\\boxed{²} \\boxed{٣.٥}", nil)), 3.5)
        // Unicode whitespace is stripped by strip() and float().
        XCTAssertEqual(number(gsm("\\boxed{\u{3000}42\u{a0}}", 42)), 42)
    }

    func testGSM8KAnswerTag() {
        // Without a usable box: float() of the whole stripped tag, else its last number.
        XCTAssertEqual(number(gsm("<answer>\n 18 \n</answer>", 18)), 18)
        XCTAssertEqual(number(gsm("<answer>3 apples and 4 pears</answer>", 4)), 4)
        XCTAssertEqual(number(gsm("<answer>3-5</answer>", nil)), -5)
        // Thousands separators: the last number of "12,000" is 000.
        XCTAssertEqual(gsm("<answer>12,000</answer>", 12000), Verdict(extracted: .number(0), correct: 0))
        // First "<answer>" to the first "</answer>", across lines; no closing tag, no answer.
        XCTAssertEqual(number(gsm("<answer>\n1\n2</answer> <answer>3</answer>", nil)), 2)
        XCTAssertEqual(gsm("<answer>5", 5).extracted, .none)
        // The tag is only read when no box gave a number.
        XCTAssertEqual(number(gsm("\\boxed{...} <answer>6</answer>", 6)), 6)
    }

    // MARK: MATH500

    func testMATHExtraction() {
        XCTAssertEqual(math("so \\boxed{\\frac{1}{4}}.", "\\frac{1}{4}"), Verdict(extracted: .text("\\frac{1}{4}"), correct: 1))
        // The last box counts, braces balanced.
        XCTAssertEqual(text(math("\\boxed{1} then \\boxed{{2}+1}", "")), "{2}+1")
        // "\boxed " (a space): everything after its last occurrence up to the first "$".
        XCTAssertEqual(math("$\\boxed 5$ and more", "5"), Verdict(extracted: .text("5"), correct: 1))
        // \fbox{...} keeps its wrapper (remove_boxed only unwraps "\boxed{").
        XCTAssertEqual(math("\\fbox{5}", "5"), Verdict(extracted: .text("\\fbox{5}"), correct: 0))
        // No box at all: the whole output is the answer; the answer tag is not looked at.
        XCTAssertEqual(math("<answer>5</answer>", "5"), Verdict(extracted: .text("<answer>5</answer>"), correct: 0))
        XCTAssertEqual(math("5", "5").correct, 1)
        // An unbalanced box is None: then the answer tag, else nothing.
        XCTAssertEqual(math("\\boxed{5 <answer> 5 </answer>", "5"), Verdict(extracted: .text("5"), correct: 1))
        XCTAssertEqual(math("\\boxed{5", "5"), Verdict(extracted: .none, correct: 0))
        // An empty box falls back to the tag; with no tag it stays "".
        XCTAssertEqual(text(math("\\boxed{} <answer>7</answer>", "7")), "7")
        XCTAssertEqual(math("\\boxed{}", ""), Verdict(extracted: .text(""), correct: 1))
    }

    func testMATHEquivalence() {
        XCTAssertEqual(math("\\boxed{\\frac12}", "\\frac{1}{2}").correct, 1)        // fix_fracs
        XCTAssertEqual(math("\\boxed{\\dfrac{3}{4}}", "\\frac34").correct, 1)       // dfrac, fix_fracs
        XCTAssertEqual(math("\\boxed{0.5}", "\\frac{1}{2}").correct, 1)              // 0.5 rule
        XCTAssertEqual(math("\\boxed{.5}", "\\frac12").correct, 1)                   // leading "." gets a 0
        XCTAssertEqual(math("\\boxed{1/2}", "\\frac{1}{2}").correct, 1)              // fix_a_slash_b
        XCTAssertEqual(math("\\boxed{01/2}", "\\frac{1}{2}").correct, 0)             // not "{int}/{int}"
        XCTAssertEqual(math("\\boxed{k = 3}", "3").correct, 1)                       // short "k =" dropped
        XCTAssertEqual(math("\\boxed{abc = 3}", "3").correct, 0)                     // left side too long
        XCTAssertEqual(math("\\boxed{5\\text{ cm}}", "5").correct, 1)                // right units
        XCTAssertEqual(math("\\boxed{90^\\circ}", "90").correct, 1)
        XCTAssertEqual(math("\\boxed{\\$5}", "5").correct, 1)
        XCTAssertEqual(math("\\boxed{50\\%}", "50").correct, 1)
        XCTAssertEqual(math("\\boxed{\\left(1,2\\right)}", "(1, 2)").correct, 1)
        XCTAssertEqual(math("\\boxed{\\sqrt3}", "\\sqrt{3}").correct, 1)              // fix_sqrt
        // Exceptions inside strip_string make is_equiv compare the raw strings:
        // a ValueError from int() in fix_a_slash_b ...
        XCTAssertEqual(math("\\boxed{x/2}", "\\frac{x}{2}").correct, 0)
        XCTAssertEqual(math("\\boxed{x/2}", "x/2").correct, 1)
        XCTAssertEqual(math("\\boxed{x / 2}", "x/2").correct, 0)
        // ... two "\text{ " (AssertionError), "\sqrt" or "\frac" at the end (IndexError).
        XCTAssertEqual(math("\\boxed{1\\text{ a}\\text{ b}}", "1").correct, 0)
        XCTAssertEqual(math("\\boxed{2\\sqrt}", "2\\sqrt").correct, 1)
        XCTAssertEqual(math("\\boxed{2\\frac}", "2 \\frac").correct, 0)
        // fix_fracs' assertion returns its input unchanged: "\frac1" stays.
        XCTAssertEqual(math("\\boxed{\\frac1}", "\\frac1").correct, 1)
        // Code points, not Swift's canonical equivalence: é (U+00E9) is not e + U+0301.
        XCTAssertEqual(math("\\boxed{é}", "e\u{301}").correct, 0)
        XCTAssertEqual(math("\\boxed{é}", "é").correct, 1)
    }

    // MARK: Countdown

    func testCountdownExtraction() {
        XCTAssertEqual(cd("<answer>\n\\boxed{55 - 53}\n</answer>", [55, 53], 2), Verdict(extracted: .text("55 - 53"), correct: 1))
        // Every number exactly once: a missing or extra number fails.
        XCTAssertEqual(cd("\\boxed{55 - 53}", [49, 55, 53], 2).correct, 0)
        XCTAssertEqual(cd("\\boxed{55 - 53 + 0}", [55, 53], 2).correct, 0)
        // LaTeX operators and "= result".
        XCTAssertEqual(cd("\\boxed{(6 \\times 4) \\div 2 = 12}", [6, 4, 2], 12), Verdict(extracted: .text("(6 * 4) / 2"), correct: 1))
        // No box: the equation is the whole output, and the first "expr = number" is taken from it.
        XCTAssertEqual(cd("so 3 + 4 = 7, done", [3, 4], 7), Verdict(extracted: .text("3 + 4"), correct: 1))
        XCTAssertEqual(cd("<answer>3 + 4</answer>", [3, 4], 7), Verdict(extracted: .text("<answer>3 + 4</answer>"), correct: 0))
        // An unbalanced box: the answer tag, else the whole output.
        XCTAssertEqual(cd("\\boxed{3 + 4 <answer> 3 + 4 </answer>", [3, 4], 7), Verdict(extracted: .text("3 + 4"), correct: 1))
        XCTAssertEqual(cd("\\boxed{3 + 4", [3, 4], 7), Verdict(extracted: .text("\\boxed{3 + 4"), correct: 0))
        // Only digits, whitespace and +-*/(). may appear.
        XCTAssertEqual(cd("\\boxed{2^3}", [2, 3], 8).correct, 0)
        XCTAssertEqual(cd("\\boxed{2 ** 3}", [2, 3], 8).correct, 1)
    }

    func testCountdownPythonEvaluation() {
        XCTAssertEqual(cd("\\boxed{10 / 3 * 3}", [10, 3, 3], 10).correct, 1)   // 10.0, within 1e-5
        XCTAssertEqual(cd("\\boxed{1 / 3}", [1, 3], 0).correct, 0)
        XCTAssertEqual(cd("\\boxed{7 // 2}", [7, 2], 3).correct, 1)
        XCTAssertEqual(cd("\\boxed{-7 // 2}", [7, 2], -4).correct, 1)          // floor
        XCTAssertEqual(cd("\\boxed{2 ** -1 * 4}", [2, 1, 4], 2).correct, 1)     // 0.5 * 4
        XCTAssertEqual(cd("\\boxed{-2 ** 2 + 8}", [2, 2, 8], 4).correct, 1)      // -(2**2) + 8
        XCTAssertEqual(cd("\\boxed{2 ** 3 ** 2 // 64}", [2, 3, 2, 64], 8).correct, 1)  // right-assoc: 512 // 64
        // Tokenization: 05 is a SyntaxError, 05. is the float 5.0, 1..2 is invalid.
        XCTAssertEqual(cd("\\boxed{05 + 3}", [5, 3], 8).correct, 0)
        XCTAssertEqual(cd("\\boxed{05. + 3}", [5, 3], 8).correct, 1)
        XCTAssertEqual(cd("\\boxed{1..2}", [1, 2], 1).correct, 0)
        // Division by zero is inf; a call 2(3) is a TypeError; () is a tuple; ... is Ellipsis.
        XCTAssertEqual(cd("\\boxed{5 / 0 + 1}", [5, 0, 1], 1).correct, 0)
        XCTAssertEqual(cd("\\boxed{2(3 + 4)}", [2, 3, 4], 14).correct, 0)
        XCTAssertEqual(cd("\\boxed{()*3}", [3], 3).correct, 0)
        // Line breaks: fine inside parentheses, a SyntaxError outside.
        XCTAssertEqual(cd("\\boxed{(3 +\n4)}", [3, 4], 7).correct, 1)
        XCTAssertEqual(cd("\\boxed{3 +\n4}", [3, 4], 7).correct, 0)
        // Unicode digits pass validation and the character check but not Python's tokenizer.
        XCTAssertEqual(cd("\\boxed{٣ + 4}", [3, 4], 7).correct, 0)
        // Exact big ints, and int / int correctly rounded.
        XCTAssertEqual(cd("\\boxed{(100 ** 100) // (100 ** 99)}", [100, 100, 100, 99], 100).correct, 1)
        XCTAssertEqual(cd("\\boxed{100 ** 200 / 3}", [100, 200, 3], 1).correct, 0)  // OverflowError
        XCTAssertEqual(cd("\\boxed{(2 ** 60 + 1) / 2 ** 60}", [2, 60, 1, 2, 60], 1).correct, 1)
        // A negative number to a fractional power is complex: |z - target| is its distance.
        XCTAssertEqual(cd("\\boxed{(0 - 8) ** (1 / 3)}", [0, 8, 1, 3], 1).correct, 0)
        // Parentheses: 200 levels compile, 201 do not.
        let deep = { (k: Int) in String(repeating: "(", count: k) + "1 + 2" + String(repeating: ")", count: k) }
        XCTAssertEqual(cd("\\boxed{\(deep(200))}", [1, 2], 3).correct, 1)
        XCTAssertEqual(cd("\\boxed{\(deep(201))}", [1, 2], 3).correct, 0)
        // Runaway powers end quickly (Python would run out of time or memory).
        let start = Date()
        XCTAssertEqual(cd("\\boxed{99 ** 99 ** 99}", [99, 99, 99], 1).correct, 0)
        XCTAssertEqual(cd("\\boxed{(99 ** 99) ** 99 ** 9}", [99, 99, 99, 9], 1).correct, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testPythonArithmeticValues() {
        func ev(_ s: String) -> PythonArithmetic.Value? { PythonArithmetic.evaluate(Array(s.unicodeScalars)) }
        func f(_ s: String) -> Double? { if case .float(let d)? = ev(s) { return d }; return nil }
        XCTAssertEqual(f("1/3"), 1.0 / 3.0)
        XCTAssertEqual(f("9007199254740993/1"), 9007199254740992)          // correctly rounded, ties to even
        XCTAssertEqual(f("-7.5//2"), -4)
        XCTAssertEqual(f("0/-5")?.sign, .minus)
        XCTAssertEqual(f("2**-2"), 0.25)
        XCTAssertNil(ev("0**-1"))                                           // ZeroDivisionError
        XCTAssertNil(ev("2.0**2000"))                                       // OverflowError
        XCTAssertNil(ev("2**2000*1.0"))                                     // int too large for a float
        if case .int(let i)? = ev("-3//2") { XCTAssertEqual(i, BigInt(-2)) } else { XCTFail() }
        if case .complex(let r, let i)? = ev("(-8)**(1/3)") {
            XCTAssertEqual(r, 1.0000000000000002); XCTAssertEqual(i, 1.7320508075688772)
        } else { XCTFail() }
    }

    // MARK: Sudoku

    func testSudokuPatterns() {
        // 2: the answer tag's content (the puzzle has 8 empty cells: indices 3,4,5,9,11,12,13,14).
        XCTAssertEqual(sudoku("<answer>\n4321124334122134\n</answer><|eot_id|>"), Verdict(extracted: .text("4321124334122134"), correct: 8, emptyCells: 8))
        // 1: a fenced block inside the answer, whitespace removed.
        XCTAssertEqual(text(sudoku("<answer>\nx ```\n4321\n1243\n3412\n2134\n``` y</answer>")), "4321124334122134")
        // 2 with <|eot_id|> instead of </answer>; short answers are padded with "0".
        XCTAssertEqual(sudoku("<answer>4321 1243<|eot_id|>"), Verdict(extracted: .text("4321124300000000"), correct: 3, emptyCells: 8))
        // 3: after "</answer>" when the tag itself is empty, up to <|endoftext|> or the end (then cut to 16).
        XCTAssertEqual(text(sudoku("<answer> </answer>\n 4321124334122134 extra<|endoftext|>")), "4321124334122134")
        // 4: 16 digits right before "</answer>" with no "<answer>"; long answers are cut to 16.
        XCTAssertEqual(text(sudoku("reasoning 43211243341221345 \n</answer>")), "3211243341221345")
        // 5: 16 digits between word boundaries ("x" and "é" are word characters, "-" is not).
        XCTAssertEqual(text(sudoku("x4321124334122134 é1111111111111111 -2222222222222222-")), "2222222222222222")
        XCTAssertEqual(sudoku("nothing here"), Verdict(extracted: .text(""), correct: 0, emptyCells: 8))
    }

    func testSudokuPuzzleFromQuestion() {
        XCTAssertEqual(BenchmarkScorer.sudokuPuzzle(question: "4320004330100004\nSolve"), "4320004330100004")
        XCTAssertEqual(BenchmarkScorer.sudokuPuzzle(question: "Sudoku puzzle: 12 Sudoku puzzle: 4320004330100004"), "4320004330100004")
        // str.isdigit admits superscripts in the first 16 characters; only "0" is an empty cell.
        XCTAssertEqual(BenchmarkScorer.sudokuPuzzle(question: "²320004330100004 Sudoku puzzle: 0000000000000000"), "²320004330100004")
        XCTAssertNil(BenchmarkScorer.sudokuPuzzle(question: "no puzzle"))
    }

    func testAggregate() {
        let g = BenchmarkScorer.aggregate(.gsm8k, verdicts: [gsm("\\boxed{1}", 1), gsm("\\boxed{2}", 1), gsm("", 1)])
        XCTAssertEqual(g.correct, 1); XCTAssertEqual(g.total, 3); XCTAssertEqual(g.accuracy, 1.0 / 3.0)
        let s = BenchmarkScorer.aggregate(.sudoku, verdicts: [sudoku("<answer>4321124334122134</answer>"), sudoku("<answer>4321</answer>")])
        XCTAssertEqual(s.correct, 8 + 1); XCTAssertEqual(s.total, 16); XCTAssertEqual(s.accuracy, 9.0 / 16.0)
    }

    // MARK: reading d1's files

    func testReaderErrorsNameTheItem() {
        func err(_ json: String, _ b: Benchmark) -> String {
            do { _ = try D1Generations.parse(Array(json.utf8), benchmark: b, source: "f.json"); return "no error" } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(err("{\"metrics\": {}}", .gsm8k).contains("no \"generations\""))
        XCTAssertTrue(err("{\"generations\": [{\"question\": \"q\", \"generations\": \"o\", \"ground_truth\": \"5\"}]}", .gsm8k)
            .contains("f.json: generations[0]: field \"ground_truth\""))
        XCTAssertTrue(err("{\"generations\": [{\"question\": \"q\", \"generations\": \"o\", \"ground_truth\": [[1, 2.5], 3]}]}", .countdown)
            .contains("generations[0]: ground_truth[0][1] must be an integer"))
        XCTAssertTrue(err("{\"generations\": [{\"question\": \"q\", \"generations\": \"o\", \"ground_truth\": \"4321124334122134\"}]}", .sudoku)
            .contains("holds no 16-digit puzzle"))
        XCTAssertTrue(err("{\"generations\": [{\"question\": \"q\", \"ground_truth\": 1.0}]}", .gsm8k)
            .contains("missing field \"generations\""))
        let ok = try! D1Generations.parse(Array("{\"generations\": [{\"question\": \"q\", \"generations\": \"o\", \"ground_truth\": null}]}".utf8),
                                          benchmark: .gsm8k, source: "f.json")
        XCTAssertEqual(ok, [D1GenerationItem(index: 0, question: "q", output: "o", groundTruth: .number(nil))])
    }

    /// d1's LLaDA-8B-Instruct generations (eval/eval_baselines) rescored: every item's verdict equals the
    /// one d1's parse_*_answers gave it.
    func testD1GenerationsRescoredAsD1Does() throws {
        let dir = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/d1")
        let files = [("gsm8k_instruct_128_64_6", Benchmark.gsm8k), ("math500_instruct_256_128_3", .math500),
                     ("countdown_instruct_512_256_0", .countdown), ("sudoku_instruct_512_256_0", .sudoku)]
        for (name, bench) in files {
            let items = try D1Generations.read(path: dir.appendingPathComponent(name + "_generations.json").path, benchmark: bench)
            let score = D1Generations.score(items, benchmark: bench)
            let data = try Data(contentsOf: dir.appendingPathComponent(name + "_verdicts.json"))
            guard case .object(let ref) = try StrictJSON.parse([UInt8](data)), case .array(let want)? = ref["items"] else {
                return XCTFail("\(name): unreadable verdicts")
            }
            XCTAssertEqual(want.count, items.count, name)
            for (i, (w, got)) in zip(want, score.verdicts).enumerated() {
                guard case .object(let o) = w else { return XCTFail() }
                XCTAssertEqual(o["correct"]?.intValue, got.correct, "\(name) item \(i)")
                switch (o["extracted"], got.extracted) {
                case (.null?, .none): break
                case (.number(let t)?, .number(let d)): XCTAssertEqual(Double(t), d, "\(name) item \(i)")
                case (.string(let s)?, .text(let t)): XCTAssertEqual(Array(s.unicodeScalars), Array(t.unicodeScalars), "\(name) item \(i)")
                default: XCTFail("\(name) item \(i): extracted \(String(describing: o["extracted"])) vs \(got.extracted)")
                }
                if bench == .sudoku { XCTAssertEqual(o["empty_cells"]?.intValue, got.emptyCells, "\(name) item \(i)") }
            }
            XCTAssertEqual(ref["correct"]?.intValue, score.correct, name)
            XCTAssertEqual(ref["total"]?.intValue, score.total, name)
        }
    }
}
