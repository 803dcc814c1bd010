import Foundation

/// What a scorer read out of an output: nothing (Python's None), a number (GSM8K) or text.
public enum Extracted: Equatable, Sendable {
    case none
    case number(Double)
    case text(String)
}

/// One output's verdict, as d1's eval/parse_and_get_acc.py records it per item.
public struct Verdict: Equatable, Sendable {
    /// GSM8K: the parsed float or none; MATH: the answer string or none; Countdown: the equation string
    /// (possibly the whole output); Sudoku: the 16-character solution read ("" when none).
    public var extracted: Extracted
    /// 1 or 0; Sudoku: the number of empty cells filled correctly.
    public var correct: Int
    /// Sudoku only: the puzzle's empty cells.
    public var emptyCells: Int?

    public init(extracted: Extracted, correct: Int, emptyCells: Int? = nil) {
        self.extracted = extracted; self.correct = correct; self.emptyCells = emptyCells
    }
}

/// A benchmark's total over its verdicts, as d1 computes its accuracy.
public struct BenchmarkScore: Sendable {
    public var benchmark: Benchmark
    /// Problems solved; Sudoku: cells filled correctly.
    public var correct: Int
    /// Problems; Sudoku: empty cells over all puzzles.
    public var total: Int
    /// correct / total (0 when total is 0). d1 prints this times 100.
    public var accuracy: Double
    public var verdicts: [Verdict]

    public init(benchmark: Benchmark, correct: Int, total: Int, accuracy: Double, verdicts: [Verdict]) {
        self.benchmark = benchmark; self.correct = correct; self.total = total
        self.accuracy = accuracy; self.verdicts = verdicts
    }
}

/// d1's answer scorers (eval/parse_and_get_acc.py with eval/parser_helper.py of dllm-reasoning/d1),
/// reimplemented from their rules with the same verdict on every output, their quirks included; every
/// step is bounded in time and memory on any input. See the documentation of each `score*` function.
public enum BenchmarkScorer {
    /// The verdict d1 gives `output` on a problem of `benchmark`. `question` matters for Sudoku only
    /// (the puzzle is read back from it). A ground truth of another benchmark's kind scores 0.
    public static func score(_ benchmark: Benchmark, output: String, question: String,
                             groundTruth: GroundTruth) -> Verdict {
        switch benchmark {
        case .gsm8k:
            if case .number(let gt) = groundTruth { return scoreGSM8K(output: output, groundTruth: gt) }
            return Verdict(extracted: scoreGSM8K(output: output, groundTruth: nil).extracted, correct: 0)
        case .math500:
            if case .text(let gt) = groundTruth { return scoreMATH(output: output, groundTruth: gt) }
            return Verdict(extracted: scoreMATH(output: output, groundTruth: "").extracted, correct: 0)
        case .countdown:
            if case .countdown(let numbers, let target) = groundTruth {
                return scoreCountdown(output: output, numbers: numbers, target: target)
            }
            return Verdict(extracted: scoreCountdown(output: output, numbers: [], target: nil).extracted, correct: 0)
        case .sudoku:
            if case .sudoku(let solution) = groundTruth {
                return scoreSudoku(output: output, question: question, solution: solution)
            }
            return scoreSudoku(output: output, question: question, solution: "")
        }
    }

    /// Sums verdicts as d1's `aggregate_results` does: problems solved over problems for GSM8K, MATH500
    /// and Countdown; cells filled correctly over empty cells for Sudoku.
    public static func aggregate(_ benchmark: Benchmark, verdicts: [Verdict]) -> BenchmarkScore {
        let correct = verdicts.reduce(0) { $0 + $1.correct }
        let total = benchmark == .sudoku ? verdicts.reduce(0) { $0 + ($1.emptyCells ?? 0) } : verdicts.count
        return BenchmarkScore(benchmark: benchmark, correct: correct, total: total,
                              accuracy: total > 0 ? Double(correct) / Double(total) : 0, verdicts: verdicts)
    }

    // MARK: shared pieces

    static let answerOpen = PyText.str("<answer>")
    static let answerClose = PyText.str("</answer>")

    /// `re.search(r"<answer>(.*?)</answer>", s, re.DOTALL).group(1)`: from the first "<answer>" to the
    /// first "</answer>" after it (a later "<answer>" cannot do better), or nil.
    static func answerTagContent(_ s: PyStr) -> ArraySlice<Unicode.Scalar>? {
        guard let i = PyText.find(s, answerOpen) else { return nil }
        let start = i + answerOpen.count
        guard let j = PyText.find(s, answerClose, from: start) else { return nil }
        return s[start..<j]
    }

    /// `re.findall(r"-?\d+\.?\d*", s)` (`\d` is any Unicode decimal digit).
    static func numberMatches(_ s: PyStr) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        let n = s.count
        while i < n {
            var j = i
            if s[j] == "-", j + 1 < n, PyText.isDecimal(s[j + 1]) { j += 1 }
            guard PyText.isDecimal(s[j]) else { i += 1; continue }
            while j < n, PyText.isDecimal(s[j]) { j += 1 }
            if j < n, s[j] == "." { j += 1 }
            while j < n, PyText.isDecimal(s[j]) { j += 1 }
            out.append(s[i..<j])
            i = j
        }
        return out
    }

    // MARK: GSM8K

    /// `re.findall(r"\\boxed{(.*?)}", s)`: for each "\boxed{" (left to right, resuming after each
    /// match), the text up to the first "}" when no line break comes before it.
    static func boxedContents(_ s: PyStr) -> [ArraySlice<Unicode.Scalar>] {
        let n = s.count
        // nextStop[i]: the first index >= i holding "}" or "\n" (n if none).
        var nextStop = [Int](repeating: n, count: n + 1)
        if n > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                nextStop[i] = (s[i] == "}" || s[i] == "\n") ? i : nextStop[i + 1]
            }
        }
        let open = PyText.str("\\boxed{")
        var out: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        while i + open.count <= n {
            if s[i] == "\\", PyText.hasAt(s, i, open) {
                let c = nextStop[i + open.count]
                if c < n, s[c] == "}" {
                    out.append(s[(i + open.count)..<c])
                    i = c + 1
                    continue
                }
            }
            i += 1
        }
        return out
    }

    /// GSM8K (`parse_gsm_answers`): the first `\boxed{...}` (on one line, up to the first "}") whose
    /// stripped content is neither empty nor only dots and gives a number: Python's `float()` of the
    /// whole content, else its first `-?\d+\.?\d*`; failing every box, the `<answer>` tag's stripped
    /// content: `float()` of it, else its last such number. Correct when the number equals the ground
    /// truth exactly (no ground truth is never equal). `float()` accepts surrounding whitespace,
    /// underscores between digits, any Unicode decimal digits, "inf", "infinity" and "nan".
    public static func scoreGSM8K(output: String, groundTruth: Double?) -> Verdict {
        let s = PyText.str(output)
        var parsed: Double?
        for raw in boxedContents(s) {
            let c = PyText.strip(raw)
            if c.isEmpty || c.allSatisfy({ $0 == "." }) { continue }
            if let f = PyText.pyFloat(c) { parsed = f; break }
            if let first = numberMatches(c).first, let f = PyText.pyFloat(first) { parsed = f; break }
        }
        if parsed == nil, let tag = answerTagContent(s) {
            let t = PyText.strip(tag)
            if !t.isEmpty {
                if let f = PyText.pyFloat(t) {
                    parsed = f
                } else if let last = numberMatches(t).last, let f = PyText.pyFloat(last) {
                    parsed = f
                }
            }
        }
        let correct = parsed != nil && groundTruth != nil && parsed! == groundTruth!
        return Verdict(extracted: parsed.map { .number($0) } ?? .none, correct: correct ? 1 : 0)
    }

    // MARK: MATH500

    /// MATH500 (`parse_math_answers`): `remove_boxed(last_boxed_only_string(output))` (see
    /// `MathEquivalence`; an unbalanced box is None), and when that is None or empty the `<answer>`
    /// tag's stripped content if there is one. Note that an output with no "\boxed" and no "\fbox" gives
    /// the whole output, and an "\fbox{...}" is kept with its wrapper. Correct when `is_equiv` holds
    /// against the ground truth.
    public static func scoreMATH(output: String, groundTruth: String) -> Verdict {
        let s = PyText.str(output)
        var parsed: PyStr? = try? MathEquivalence.removeBoxed(MathEquivalence.lastBoxedOnly(s))
        if parsed == nil || parsed!.isEmpty, let tag = answerTagContent(s) {
            parsed = PyText.strip(tag)
        }
        guard let p = parsed else { return Verdict(extracted: .none, correct: 0) }
        let ok = MathEquivalence.isEquiv(p, PyText.str(groundTruth))
        return Verdict(extracted: .text(PyText.string(p)), correct: ok ? 1 : 0)
    }

    // MARK: Countdown

    /// `re.search(r"([0-9+\-*/() ]+)=[0-9. ]+", s)`, group 1 stripped: the run of those ASCII characters
    /// before the first "=" that has one before it and a digit, "." or space after it.
    static func equationBeforeEquals(_ s: PyStr) -> PyStr? {
        func inSet(_ c: Unicode.Scalar) -> Bool {
            switch c {
            case "0"..."9", "+", "-", "*", "/", "(", ")", " ": return true
            default: return false
            }
        }
        var j = 0
        while j < s.count {
            if s[j] == "=", j > 0, inSet(s[j - 1]), j + 1 < s.count,
               PyText.isASCIIDigit(s[j + 1]) || s[j + 1] == "." || s[j + 1] == " " {
                var start = j - 1
                while start > 0, inSet(s[start - 1]) { start -= 1 }
                return PyText.strip(s[start..<j])
            }
            j += 1
        }
        return nil
    }

    /// `validate_equation`: the ints of every `\d+` run (Unicode digits; more than 4300 digits is
    /// Python's ValueError, so False), sorted, equal the sorted numbers.
    static func usesExactly(_ eq: PyStr, _ numbers: [Int]) -> Bool {
        var found: [Int] = []
        var i = 0
        while i < eq.count {
            guard PyText.isDecimal(eq[i]) else { i += 1; continue }
            var j = i
            var value = 0
            var overflow = false
            while j < eq.count, let d = PyText.decimalValue(eq[j]) {
                if !overflow {
                    let (m, o1) = value.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(d)
                    if o1 || o2 { overflow = true } else { value = a }
                }
                j += 1
            }
            if j - i > 4300 { return false }
            if overflow { return false }  // larger than any Int: equals none of the numbers
            found.append(value)
            i = j
        }
        return found.sorted() == numbers.sorted()
    }

    /// Countdown (`parse_countdown_answers`): the equation is `remove_boxed(last_boxed_only_string(
    /// output))` (so the whole output when it has no box), or, when the box is unbalanced, the `<answer>`
    /// tag's stripped content or else the whole output; "\div", "\times", "\cdot" become "/", "*", "*";
    /// an `expr = number` inside keeps only `expr`. Correct when the equation's digit runs are exactly
    /// the numbers (as multisets), it consists of digits, whitespace and `+-*/().` only, and Python
    /// evaluates it to within 1e-5 of the target (see `PythonArithmetic`).
    public static func scoreCountdown(output: String, numbers: [Int], target: Int?) -> Verdict {
        let s = PyText.str(output)
        var equation: PyStr
        if let boxed = MathEquivalence.lastBoxedOnly(s), let inner = try? MathEquivalence.removeBoxed(boxed) {
            equation = inner
        } else if let tag = answerTagContent(s) {
            equation = PyText.strip(tag)
        } else {
            equation = s
        }
        equation = PyText.replace(equation, "\\div", "/")
        equation = PyText.replace(equation, "\\times", "*")
        equation = PyText.replace(equation, "\\cdot", "*")
        if let e = equationBeforeEquals(equation) { equation = e }

        var correct = false
        if usesExactly(equation, numbers), let target {
            let allowed = !equation.isEmpty && equation.allSatisfy {
                PyText.isDecimal($0) || PyText.isSpace($0) || "+-*/().".unicodeScalars.contains($0)
            }
            if allowed, let v = PythonArithmetic.evaluate(PyText.strip(equation)) {
                correct = PythonArithmetic.isClose(v, to: target)
            }
        }
        return Verdict(extracted: .text(PyText.string(equation)), correct: correct ? 1 : 0)
    }

    // MARK: Sudoku

    /// The puzzle d1 reads from a Sudoku question: its first 16 characters when they are all digits
    /// (`str.isdigit`, which admits superscripts and other digits; only "0" marks an empty cell), else
    /// the 16 ASCII digits after the first "Sudoku puzzle: " followed by 16 of them; nil where d1's
    /// assertion fails.
    public static func sudokuPuzzle(question: String) -> String? {
        let q = PyText.str(question)
        if q.count >= 16, q[0..<16].allSatisfy({ PyText.isDigit($0) || $0 == "0" }) {
            return PyText.string(q[0..<16])
        }
        let marker = PyText.str("Sudoku puzzle: ")
        var from = 0
        while let i = PyText.find(q, marker, from: from) {
            let d = i + marker.count
            if d + 16 <= q.count, q[d..<(d + 16)].allSatisfy(PyText.isASCIIDigit) {
                return PyText.string(q[d..<(d + 16)])
            }
            from = i + 1
        }
        return nil
    }

    static let eotID = PyText.str("<|eot_id|>")
    static let endOfText = PyText.str("<|endoftext|>")
    static let fence = PyText.str("```")

    /// d1's five solution patterns, tried in order (all with re.DOTALL); the first whose group is
    /// non-empty after `strip()` gives the solution.
    static func sudokuSolutionText(_ s: PyStr) -> PyStr? {
        let n = s.count
        // runEnd[i]: end of the run of decimal digits and whitespace from i; decEnd/wsEnd likewise.
        var runEnd = [Int](repeating: n, count: n + 1)
        var decEnd = [Int](repeating: n, count: n + 1)
        var wsEnd = [Int](repeating: n, count: n + 1)
        if n > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                let d = PyText.isDecimal(s[i]), w = PyText.isSpace(s[i])
                runEnd[i] = d || w ? runEnd[i + 1] : i
                decEnd[i] = d ? decEnd[i + 1] : i
                wsEnd[i] = w ? wsEnd[i + 1] : i
            }
        }
        func terminator(at q: Int) -> Bool {
            PyText.hasAt(s, q, eotID) || PyText.hasAt(s, q, endOfText)
        }
        let firstOpen = PyText.find(s, answerOpen)

        // 1. <answer>.*?```\s*([\d\s]+)```  — the first fence after "<answer>" directly followed by a
        //    run of digits/whitespace that a fence closes; the group is that run without its leading
        //    whitespace (one whitespace character when the run is only whitespace).
        if let i = firstOpen {
            var p = i + answerOpen.count
            while let f = PyText.find(s, fence, from: p) {
                let j = f + 3
                let k = runEnd[j]
                if k > j, PyText.hasAt(s, k, fence) {
                    let g = PyText.strip(s[j..<k])
                    if !g.isEmpty { return g }
                    break
                }
                p = f + 1
            }
        }
        // 2. <answer>(.*?)(?:<|eot_id|>|<|endoftext|>|</answer>)
        if let i = firstOpen {
            let start = i + answerOpen.count
            var q = start
            while q < n {
                if terminator(at: q) || PyText.hasAt(s, q, answerClose) {
                    let g = PyText.strip(s[start..<q])
                    if !g.isEmpty { return g }
                    break
                }
                q += 1
            }
        }
        // 3. </answer>\s*(.*?)(?:<|eot_id|>|<|endoftext|>|$)  — `$` is the end or before a final "\n".
        if let i = PyText.find(s, answerClose) {
            let w = wsEnd[i + answerClose.count]
            var q = w
            while q < n, !terminator(at: q), !(q == n - 1 && s[q] == "\n") { q += 1 }
            let g = PyText.strip(s[w..<q])
            if !g.isEmpty { return g }
        }
        // 4. .*?(\d{16})\s*</answer>  — the first 16 digits followed by whitespace and "</answer>".
        var j = 0
        while j + 16 <= n {
            if decEnd[j] - j >= 16, PyText.hasAt(s, wsEnd[j + 16], answerClose) { return Array(s[j..<(j + 16)]) }
            j += 1
        }
        // 5. \b(\d{16})\b
        j = 0
        while j + 16 <= n {
            if decEnd[j] - j >= 16, j == 0 || !PyText.isWord(s[j - 1]),
               j + 16 == n || !PyText.isWord(s[j + 16]) {
                return Array(s[j..<(j + 16)])
            }
            j += 1
        }
        return nil
    }

    /// Sudoku (`parse_sudoku_answers`): the solution text (see `sudokuSolutionText`) without any
    /// whitespace, padded with "0" or cut to 16 characters; correct cells are the puzzle's "0" cells
    /// where it equals the ground truth. A question without a puzzle (where d1 stops on an assertion)
    /// has no empty cells here.
    public static func scoreSudoku(output: String, question: String, solution: String) -> Verdict {
        let puzzle = sudokuPuzzle(question: question).map(PyText.str) ?? []
        let empty = puzzle.indices.filter { puzzle[$0] == "0" }
        guard var sol = sudokuSolutionText(PyText.str(output)) else {
            return Verdict(extracted: .text(""), correct: 0, emptyCells: empty.count)
        }
        sol.removeAll(where: PyText.isSpace)
        if sol.count < 16 { sol += Array(repeating: "0", count: 16 - sol.count) }
        if sol.count > 16 { sol = Array(sol[0..<16]) }
        let truth = PyText.str(solution)
        let correct = empty.filter { $0 < truth.count && sol[$0] == truth[$0] }.count
        return Verdict(extracted: .text(PyText.string(sol)), correct: correct, emptyCells: empty.count)
    }
}
