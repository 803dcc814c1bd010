import Foundation

/// Reads the four benchmarks' test files as users have them and lays the problems out as d1's eval code
/// does (its `__getitem__` of GSM8KDataset, MATH500Dataset, CTDDataset, SudokuDataset):
///
/// | benchmark | file | question | ground truth |
/// |---|---|---|---|
/// | gsm8k | JSONL with `question`, `answer` (the HF `gsm8k`/`main` test split, one object a line) | `question` | the number after `####` in `answer` (`Parser.extract_answer_gsm8k`), nil where none |
/// | math500 | JSONL with `problem`, `answer` (HuggingFaceH4/MATH-500 `test.jsonl`) | `problem` | `answer` |
/// | countdown | JSONL with `input` "a,b,c" and `output` the target (d1's `dataset/countdown_cd3_test.jsonl`) | `Numbers: [a, b, c]\nTarget: T` | numbers and target |
/// | sudoku | CSV with header `Puzzle,Solution` (d1's `dataset/4x4_test_sudoku.csv`) | `Solve the following Sudoku puzzle: PUZZLE\n` | the solution |
///
/// Problem order: GSM8K and MATH500 in file order, all of them. Countdown and Sudoku: d1 evaluates 256
/// problems drawn by `np.random.choice(N, 256, replace=False)` right after `np.random.seed(42)`, in the
/// drawn order (see `d1Order`).
///
/// Bad input is a `GiftError(.data)` whose message starts with `FILE:LINE:` and names the field: a
/// malformed JSON line, a missing or ill-typed field, a file of another benchmark, a Sudoku row whose
/// puzzle is not 16 digits, an empty file. Blank lines are skipped (their numbers still count); a UTF-8
/// byte order mark and CRLF line ends are accepted.
public enum BenchmarkData {
    /// The seed d1's eval.py sets before the draw.
    public static let d1Seed: UInt32 = 42

    /// The problems of `file` as d1 evaluates them: read, drawn (Countdown, Sudoku) and cut to the first
    /// `limit`.
    public static func load(_ b: Benchmark, file: URL, limit: Int? = nil) throws -> [BenchmarkProblem] {
        if let limit, limit < 1 { throw GiftError(.usage, "limit must be at least 1, got \(limit)") }
        let all = try read(b, file: file)
        var out = d1Order(count: all.count, draw: b.d1Subsample).map { all[$0] }
        if let limit, out.count > limit { out = Array(out.prefix(limit)) }
        return out
    }

    /// Every problem of `file` in file order (no draw, no limit).
    public static func read(_ b: Benchmark, file: URL) throws -> [BenchmarkProblem] {
        let path = file.path
        let lines = try readLines(path)
        let problems: [BenchmarkProblem]
        switch b {
        case .gsm8k, .math500, .countdown: problems = try readJSONL(b, lines: lines, path: path)
        case .sudoku: problems = try readSudokuCSV(lines: lines, path: path)
        }
        return problems
    }

    /// The file rows d1 evaluates, in its order, for a file of `count` problems of which d1 draws `draw`
    /// (nil: all in file order).
    ///
    /// d1's eval.py runs `init_seed(42)` first thing in `__main__` (random.seed, PYTHONHASHSEED,
    /// `np.random.seed(42)`, torch seeds), and the next use of numpy's global generator is the dataset
    /// constructor's `np.random.choice(len(self.dataset), subsample, replace=False)`: in between come
    /// setup_ddp, argparse, `AutoModel.from_pretrained`, `AutoTokenizer.from_pretrained`, the optional
    /// PeftModel, and in the constructor `load_test_dataset` (json / pandas reads) and
    /// `create_few_shot_prompt`, which for Countdown and Sudoku returns [] (their dataset is not a
    /// GSM8KDataset) and for MATH500 uses Python's `random`, not numpy, none of which draws from numpy's
    /// global generator. So the draw is the first one after `np.random.seed(42)`. Checked against d1's own
    /// outputs: eval/eval_baselines/{countdown,sudoku}_instruct_256_128_{0..6}_generations.json (7 ranks;
    /// rank r evaluates items r, r+7, ... of the dataset, CustomDistributedSampler without shuffle) list
    /// exactly the questions of this order, for both files.
    ///
    /// A file with fewer problems than d1 draws (where numpy would refuse) is taken whole, in file order.
    public static func d1Order(count: Int, draw: Int?) -> [Int] {
        guard let draw, count >= draw else { return Array(0..<count) }
        var rng = NumpyLegacyRandom(seed: d1Seed)
        return rng.choiceWithoutReplacement(count, draw)
    }

    // MARK: file and lines

    struct Line { var number: Int; var text: String }

    /// The non-blank lines of `path` with their 1-based numbers; an empty file is an error.
    static func readLines(_ path: String) throws -> [Line] {
        var out: [Line] = []
        for l in try TextLines.read(path, what: "benchmark file", kind: "a file") {
            guard let text = String(validating: l.bytes, as: UTF8.self) else {
                throw GiftError(.data, "\(path):\(l.number): invalid UTF-8")
            }
            out.append(Line(number: l.number, text: text))
        }
        if out.isEmpty { throw GiftError(.data, "\(path): the file is empty (no problems)") }
        return out
    }

    // MARK: JSONL benchmarks

    /// The fields each JSONL benchmark needs (and that tell the files apart).
    static func requiredFields(_ b: Benchmark) -> [String] {
        switch b {
        case .gsm8k: return ["question", "answer"]
        case .math500: return ["problem", "answer"]
        case .countdown: return ["input", "output"]
        case .sudoku: return ["Puzzle", "Solution"]
        }
    }

    static func fileDescription(_ b: Benchmark) -> String {
        switch b {
        case .gsm8k: return "a GSM8K file (JSONL with \"question\" and \"answer\")"
        case .math500: return "a MATH-500 file (JSONL with \"problem\" and \"answer\")"
        case .countdown: return "a Countdown file (d1's JSONL with \"input\" and \"output\")"
        case .sudoku: return "a Sudoku file (CSV with the header Puzzle,Solution)"
        }
    }

    static func readJSONL(_ b: Benchmark, lines: [Line], path: String) throws -> [BenchmarkProblem] {
        var out: [BenchmarkProblem] = []
        out.reserveCapacity(lines.count)
        for line in lines {
            func fail(_ what: String) -> GiftError { GiftError(.data, "\(path):\(line.number): \(what)") }
            let value: StrictJSON
            do { value = try StrictJSON.parse(Array(line.text.utf8)) } catch let e as StrictJSON.ParseError {
                var what = "invalid JSON: \(e.message) at column \(e.offset + 1)"
                if line.number == lines[0].number, isSudokuHeader(line.text) {
                    what += "; this is a CSV with the header Puzzle,Solution: a Sudoku file, not \(fileDescription(b))"
                } else {
                    what += " (expected \(fileDescription(b)), one JSON object a line)"
                }
                throw fail(what)
            }
            guard case .object(let fields) = value else {
                throw fail("expected a JSON object with \(requiredFields(b).map { "\"\($0)\"" }.joined(separator: " and ")), found \(value.kind)")
            }
            for key in requiredFields(b) where fields[key] == nil {
                var what = "missing field \"\(key)\" (expected \(fileDescription(b)))"
                let present = fields.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
                if let other = [Benchmark.gsm8k, .math500, .countdown].first(where: { o in
                    o != b && requiredFields(o).allSatisfy { fields[$0] != nil }
                }) {
                    what += "; the line has \(present): \(fileDescription(other))?"
                } else {
                    what += "; the line has \(present.isEmpty ? "no fields" : present)"
                }
                throw fail(what)
            }
            func string(_ key: String) throws -> String {
                guard case .string(let s)? = fields[key] else {
                    throw fail("field \"\(key)\" must be a string, found \(fields[key]?.kind ?? "nothing")")
                }
                return s
            }
            let index = out.count
            switch b {
            case .gsm8k:
                let question = try string("question"), answer = try string("answer")
                out.append(BenchmarkProblem(index: index, line: line.number, question: question,
                                            groundTruth: .number(gsm8kAnswer(answer))))
            case .math500:
                let problem = try string("problem"), answer = try string("answer")
                out.append(BenchmarkProblem(index: index, line: line.number, question: problem, groundTruth: .text(answer)))
            case .countdown:
                let input = try string("input")
                var numbers: [Int] = []
                for (k, part) in input.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                    guard let n = pythonInt(String(part)) else {
                        throw fail("field \"input\" must be integers separated by commas (\"a,b,c\"); item \(k + 1) is \(StrictJSON.quote(String(part)))")
                    }
                    numbers.append(n)
                }
                let target: Int
                switch fields["output"]! {
                case .string(let s):
                    guard let t = pythonInt(s) else { throw fail("field \"output\" must be an integer (the target), found \(StrictJSON.quote(s))") }
                    target = t
                case .number(let raw):
                    guard let t = Int(raw) else { throw fail("field \"output\" must be an integer (the target), found the number \(raw)") }
                    target = t
                case let v:
                    throw fail("field \"output\" must be an integer or a string of one (the target), found \(v.kind)")
                }
                // Python's f"Numbers: {numbers}\nTarget: {target}" of a list of ints
                let question = "Numbers: [" + numbers.map(String.init).joined(separator: ", ") + "]\nTarget: \(target)"
                out.append(BenchmarkProblem(index: index, line: line.number, question: question,
                                            groundTruth: .countdown(numbers: numbers, target: target)))
            case .sudoku:
                fatalError("unreachable: sudoku is a CSV")
            }
        }
        return out
    }

    /// d1's `Parser.extract_answer_gsm8k`: the first match of `####\s*\$?([\d,]+(?:\.\d+)?)` (Python `re`
    /// on str: `\s` and `\d` are Unicode whitespace and decimal digits), commas removed, as a float; nil
    /// where there is no match or the match is commas only (Python's float() fails, d1 returns None).
    public static func gsm8kAnswer(_ text: String) -> Double? {
        let s = Array(text.unicodeScalars)
        let hash: Unicode.Scalar = "#"
        var start = 0
        while start + 4 <= s.count {
            defer { start += 1 }
            guard s[start] == hash, s[start + 1] == hash, s[start + 2] == hash, s[start + 3] == hash else { continue }
            var i = start + 4
            while i < s.count, isPythonSpace(s[i]) { i += 1 }
            if i < s.count, s[i] == "$" { i += 1 }
            var digits = ""
            var matched = 0
            while i < s.count, s[i] == "," || isPythonDigit(s[i]) {
                if s[i] != "," { digits += asciiDigit(s[i]) }
                matched += 1; i += 1
            }
            guard matched > 0 else { continue }
            if i + 1 < s.count, s[i] == ".", isPythonDigit(s[i + 1]) {
                digits += "."
                i += 1
                while i < s.count, isPythonDigit(s[i]) { digits += asciiDigit(s[i]); i += 1 }
            }
            // float("") (a match of commas only) raises; d1 catches it and returns None
            guard !digits.isEmpty, digits != "." else { return nil }
            return Double(digits)
        }
        return nil
    }

    /// Python's `str.isspace()` (what `\s` matches in a str pattern): Unicode White_Space plus the
    /// information separators U+001C–U+001F.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    /// `\d` in a Python str pattern: a Unicode decimal digit (category Nd).
    static func isPythonDigit(_ c: Unicode.Scalar) -> Bool {
        c.properties.numericType == .decimal
    }

    static func asciiDigit(_ c: Unicode.Scalar) -> String {
        if c.isASCII { return String(Character(c)) }
        return String(Int(c.properties.numericValue ?? 0))
    }

    /// Python's `int(s)` of a string, for ASCII digits: surrounding whitespace, an optional sign, digits
    /// with single underscores between them; nil where Python raises (or the value exceeds Int).
    static func pythonInt(_ raw: String) -> Int? {
        let scalars = Array(raw.unicodeScalars)
        var lo = 0, hi = scalars.count
        while lo < hi, isPythonSpace(scalars[lo]) { lo += 1 }
        while hi > lo, isPythonSpace(scalars[hi - 1]) { hi -= 1 }
        var body = Array(scalars[lo..<hi])
        var negative = false
        if let first = body.first, first == "+" || first == "-" { negative = first == "-"; body.removeFirst() }
        guard let f = body.first, let l = body.last, f != "_", l != "_" else { return nil }
        var digits = ""
        var previousUnderscore = false
        for c in body {
            if c == "_" {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard c.isASCII, ("0"..."9").contains(c) else { return nil }
            previousUnderscore = false
            digits.unicodeScalars.append(c)
        }
        return Int((negative ? "-" : "") + digits)
    }

    // MARK: Sudoku CSV

    static func isSudokuHeader(_ text: String) -> Bool {
        guard let cells = try? csvFields(text) else { return false }
        return cells.contains("Puzzle") && cells.contains("Solution")
    }

    /// One CSV record of one line (pandas' default dialect: comma separated, `"` quoting with `""` inside).
    static func csvFields(_ text: String) throws -> [String] {
        var fields: [String] = []
        var cur = ""
        var quoted = false, wasQuoted = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { it.removeFirst(); cur.unicodeScalars.append("\"") } else { quoted = false }
                } else {
                    cur.unicodeScalars.append(c)
                }
            } else if c == "," {
                fields.append(cur); cur = ""; wasQuoted = false
            } else if c == "\"" && cur.isEmpty && !wasQuoted {
                quoted = true; wasQuoted = true
            } else {
                cur.unicodeScalars.append(c)
            }
        }
        if quoted { throw GiftError(.data, "unterminated quoted field") }
        fields.append(cur)
        return fields
    }

    static func readSudokuCSV(lines: [Line], path: String) throws -> [BenchmarkProblem] {
        let header = lines[0]
        func fail(_ n: Int, _ what: String) -> GiftError { GiftError(.data, "\(path):\(n): \(what)") }
        let names: [String]
        do { names = try csvFields(header.text) } catch let e as GiftError { throw fail(header.number, e.message) }
        guard let pc = names.firstIndex(of: "Puzzle"), let sc = names.firstIndex(of: "Solution") else {
            var what = "expected the CSV header Puzzle,Solution (\(fileDescription(.sudoku))), found \(StrictJSON.quote(String(header.text.prefix(80))))"
            if header.text.hasPrefix("{"), case .object(let fields)? = try? StrictJSON.parse(Array(header.text.utf8)),
               let other = [Benchmark.gsm8k, .math500, .countdown].first(where: { o in requiredFields(o).allSatisfy { fields[$0] != nil } }) {
                what += ": \(fileDescription(other))?"
            } else if header.text.hasPrefix("{") {
                what += ": a JSONL file?"
            }
            throw fail(header.number, what)
        }
        if lines.count == 1 { throw fail(header.number, "the CSV has its header and no problems") }
        var out: [BenchmarkProblem] = []
        out.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            let cells: [String]
            do { cells = try csvFields(line.text) } catch let e as GiftError { throw fail(line.number, e.message) }
            guard cells.count == names.count else {
                throw fail(line.number, "expected \(names.count) fields (as the header \(names.joined(separator: ","))), found \(cells.count)")
            }
            let puzzle = cells[pc], solution = cells[sc]
            func check(_ field: String, _ v: String) throws {
                guard v.unicodeScalars.count == 16, v.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else {
                    throw fail(line.number, "field \"\(field)\" must be 16 digits (a 4x4 grid, row by row\(field == "Puzzle" ? ", 0 for an empty cell" : "")), found \(StrictJSON.quote(v))")
                }
            }
            try check("Puzzle", puzzle)
            try check("Solution", solution)
            out.append(BenchmarkProblem(index: out.count, line: line.number,
                                        question: "Solve the following Sudoku puzzle: \(puzzle)\n",
                                        groundTruth: .sudoku(solution: solution)))
        }
        return out
    }
}
