import Foundation

/// One item of a d1 generations file: the question, the model's output and the ground truth. (Alike in
/// shape to `BenchmarkProblem`, a question and its ground truth, but another record: d1's files carry the
/// output and no line number.)
public struct D1GenerationItem: Equatable, Sendable {
    /// The item's position in the file's "generations" array (0-based).
    public var index: Int
    public var question: String
    public var output: String
    public var groundTruth: GroundTruth

    public init(index: Int, question: String, output: String, groundTruth: GroundTruth) {
        self.index = index; self.question = question; self.output = output; self.groundTruth = groundTruth
    }
}

/// Reads the generations files d1's eval.py writes (`{"generations": [{"question", "generations",
/// "ground_truth", ...}, ...], "metrics": ..., ...}`), as its parse_and_get_acc.py reads them. The ground
/// truth's form depends on the benchmark: GSM8K a number or null, MATH500 a string, Countdown
/// `[[numbers], target]`, Sudoku the 16-character solution string (and the question must hold the
/// puzzle, which d1 asserts).
public enum D1Generations {
    public static func read(path: String, benchmark: Benchmark) throws -> [D1GenerationItem] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "cannot read \(path): \(error.localizedDescription)")
        }
        return try parse([UInt8](data), benchmark: benchmark, source: path)
    }

    /// Parses the bytes of a generations file; `source` names it in errors.
    public static func parse(_ bytes: [UInt8], benchmark: Benchmark, source: String) throws -> [D1GenerationItem] {
        let root: StrictJSON
        do { root = try StrictJSON.parse(bytes) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(source): not valid JSON at byte \(e.offset): \(e.message)")
        }
        guard case .object(let top) = root else {
            throw GiftError(.format, "\(source): expected a JSON object with a \"generations\" array, found \(root.kind)")
        }
        guard let gens = top["generations"] else {
            throw GiftError(.format, "\(source): no \"generations\" array (not a d1 generations file)")
        }
        guard case .array(let items) = gens else {
            throw GiftError(.format, "\(source): \"generations\" must be an array, found \(gens.kind)")
        }
        var out: [D1GenerationItem] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let at = "\(source): generations[\(i)]"
            guard case .object(let o) = item else { throw GiftError(.format, "\(at): expected an object, found \(item.kind)") }
            func string(_ f: String) throws -> String {
                guard let v = o[f] else { throw GiftError(.format, "\(at): missing field \"\(f)\"") }
                guard case .string(let s) = v else { throw GiftError(.format, "\(at): field \"\(f)\" must be a string, found \(v.kind)") }
                return s
            }
            let question = try string("question")
            let output = try string("generations")
            guard let gt = o["ground_truth"] else { throw GiftError(.format, "\(at): missing field \"ground_truth\"") }
            func bad(_ want: String) -> GiftError {
                GiftError(.format, "\(at): field \"ground_truth\" must be \(want) for \(benchmark.rawValue), found \(gt.kind)")
            }
            let truth: GroundTruth
            switch benchmark {
            case .gsm8k:
                switch gt {
                case .null: truth = .number(nil)
                case .number(let t):
                    guard let d = Double(t), d.isFinite else { throw bad("a finite number or null") }
                    truth = .number(d)
                default: throw bad("a number or null")
                }
            case .math500:
                guard case .string(let s) = gt else { throw bad("a string") }
                truth = .text(s)
            case .countdown:
                guard case .array(let pair) = gt, pair.count == 2, case .array(let nums) = pair[0],
                      let target = pair[1].intValue else { throw bad("[[numbers], target] of integers") }
                var numbers: [Int] = []
                for (k, v) in nums.enumerated() {
                    guard let x = v.intValue else {
                        throw GiftError(.format, "\(at): ground_truth[0][\(k)] must be an integer, found \(v.kind)")
                    }
                    numbers.append(x)
                }
                truth = .countdown(numbers: numbers, target: target)
            case .sudoku:
                guard case .string(let s) = gt, s.unicodeScalars.count == 16 else { throw bad("a 16-character string") }
                guard BenchmarkScorer.sudokuPuzzle(question: question) != nil else {
                    throw GiftError(.format, "\(at): field \"question\" holds no 16-digit puzzle (d1's scorer asserts one)")
                }
                truth = .sudoku(solution: s)
            }
            out.append(D1GenerationItem(index: i, question: question, output: output, groundTruth: truth))
        }
        return out
    }

    /// Scores every item of a file as d1 does.
    public static func score(_ items: [D1GenerationItem], benchmark: Benchmark) -> BenchmarkScore {
        BenchmarkScorer.aggregate(benchmark, verdicts: items.map {
            BenchmarkScorer.score(benchmark, output: $0.output, question: $0.question, groundTruth: $0.groundTruth)
        })
    }
}
