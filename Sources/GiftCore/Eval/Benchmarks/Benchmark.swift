import Foundation

/// The paper's four evaluation benchmarks, prompted, sampled and scored as d1's `eval/` code does
/// (repository dllm-reasoning/d1: eval.py, gsm8k.py, math500.py, countdown.py, sudoku.py,
/// parse_and_get_acc.py, parser_helper.py).
public enum Benchmark: String, CaseIterable, Sendable, Codable {
    case gsm8k, math500, countdown, sudoku

    /// How many problems d1 evaluates: all of GSM8K and MATH500; 256 drawn by
    /// `np.random.seed(42); np.random.choice(N, 256, replace=False)` for Countdown and Sudoku.
    public var d1Subsample: Int? {
        switch self {
        case .gsm8k, .math500: return nil
        case .countdown, .sudoku: return 256
        }
    }
}

/// A problem's answer as d1 carries it in its generations files (`ground_truth`).
public enum GroundTruth: Equatable, Sendable {
    /// GSM8K: the float after `#### ` (d1's `Parser.extract_answer_gsm8k`); nil where d1 finds none
    /// (its `None`, which no answer equals).
    case number(Double?)
    /// MATH500: the `answer` string.
    case text(String)
    /// Countdown: `[numbers, target]`.
    case countdown(numbers: [Int], target: Int)
    /// Sudoku: the 16-character solution (the puzzle is read back from the question, as d1 does).
    case sudoku(solution: String)
}

/// One problem of a benchmark file: where it came from, the question as d1 lays it out (the text that
/// follows the system prompt and "\n\n" in the user turn) and its answer.
public struct BenchmarkProblem: Equatable, Sendable {
    /// The problem's row in the file (0-based, data rows only).
    public var index: Int
    /// The file's line the problem was read from (1-based), for error messages.
    public var line: Int
    public var question: String
    public var groundTruth: GroundTruth

    public init(index: Int, line: Int, question: String, groundTruth: GroundTruth) {
        self.index = index; self.line = line; self.question = question; self.groundTruth = groundTruth
    }
}
