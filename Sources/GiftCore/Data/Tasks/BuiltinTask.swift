import Foundation

/// Which side of a built-in task's problem space: the two are disjoint whatever the seeds.
public enum TaskSplit: String, Sendable, CaseIterable {
    case train, test

    /// The class (0 for train, 1 for test) of a problem whose canonical text is `key`: a fixed hash,
    /// independent of any seed, so a problem belongs to one split forever.
    static func of(key: String) -> TaskSplit {
        stableHash(key) & 1 == 0 ? .train : .test
    }
}

/// FNV-1a over the UTF-8 bytes, then a SplitMix finaliser: stable across processes and platforms
/// (unlike Swift's Hasher, which is seeded per process).
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return CounterRNG.mix(h)
}

/// Uniform integer in 0..<n from 64 random bits (multiply-high).
@inline(__always) func uniformIndex(_ bits: UInt64, _ n: Int) -> Int {
    Int(bits.multipliedFullWidth(by: UInt64(n)).high)
}

/// The built-in tasks: generators of (prompt, answer) text pairs and their scorers.
/// (Not named `Task`: that would shadow Swift concurrency's `Task` in GiftCore and its importers.)
public enum BuiltinTask: String, CaseIterable, Sendable {
    case countdown, sudoku

    public static var names: [String] { allCases.map(\.rawValue) }

    /// Parses a task name ("countdown", "sudoku"); anything else is a usage error listing the known ones.
    public init(name: String) throws {
        guard let t = BuiltinTask(rawValue: name.lowercased()) else {
            throw GiftError(.usage, "unknown task '\(name)'; known tasks: \(Self.names.joined(separator: ", "))")
        }
        self = t
    }

    public var name: String { rawValue }

    /// `n` distinct problems of `split`, deterministic in (seed, split); see Countdown/Sudoku.generate.
    public func generate(n: Int, seed: UInt64, split: TaskSplit) -> [(prompt: String, answer: String)] {
        switch self {
        case .countdown: return Countdown.generate(n: n, seed: seed, split: split)
        case .sudoku: return Sudoku.generate(n: n, seed: seed, split: split)
        }
    }

    /// Score of a model's output (decoded text, EOS already stripped) in [0, 1]: Countdown 1 or 0
    /// (`Countdown.verify`), Sudoku the fraction of blanks filled correctly (`Sudoku.score`).
    public func score(prompt: String, output: String) -> Double {
        switch self {
        case .countdown: return Countdown.verify(prompt: prompt, output: output) ? 1 : 0
        case .sudoku: return Sudoku.score(prompt: prompt, output: output)
        }
    }

    /// Longest prompt, in characters (= tokens of the character tokenizer).
    public var maxPromptLength: Int {
        switch self {
        case .countdown: return Countdown.maxPromptLength
        case .sudoku: return Sudoku.promptLength
        }
    }

    /// Longest answer, in characters (= tokens of the character tokenizer).
    public var maxAnswerLength: Int {
        switch self {
        case .countdown: return Countdown.maxAnswerLength
        case .sudoku: return 16
        }
    }

    /// Generated pairs as examples (line 0) through `tokenizer`: prompt and answer encoded as they are,
    /// no EOS added (padding adds it; see `Batching.pad`'s minEOS).
    public static func examples(_ pairs: [(prompt: String, answer: String)],
                                tokenizer: CharTokenizer) throws -> [Example] {
        try pairs.map { Example(prompt: try tokenizer.encode($0.prompt), response: try tokenizer.encode($0.answer), line: 0) }
    }
}
