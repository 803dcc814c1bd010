import ArgumentParser
import Foundation
import GiftCore

/// `gift data`: a built-in task's problems as JSONL (the default), or `gift data prepare`.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Write a built-in task's problems as JSONL, or tokenize a JSONL file once (gift data prepare).",
        discussion: """
        `gift data countdown|sudoku ...` writes a built-in task's generated problems (the default subcommand, \
        `gift help data task`); `gift data prepare ...` tokenizes a JSONL file once with a model folder's \
        tokenizer and chat template into a memory-mapped data set for `gift train --data DIR` \
        (`gift help data prepare`).

        Examples:
          gift data countdown --n 2000 --seed 1 --split train --out countdown-train.jsonl
          gift data prepare --model LLaDA-8B-Instruct --data tulu3-10k.jsonl --out data/tulu3
        """,
        subcommands: [DataTaskCommand.self, DataPrepareCommand.self], defaultSubcommand: DataTaskCommand.self)
}

// The shape every command has (Gift.swift says why it is not shared).
struct DataTaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Write a built-in task's training or test set as JSONL.",
        usage: "gift data <task> --out <out> [<options>]",  // ArgumentParser never wraps USAGE; OPTIONS lists the rest
        discussion: """
        Countdown: three numbers and a target ("7 15 3 to 36:"), the answer an arithmetic expression using \
        each number once ("15+7*3"). Sudoku: a 4x4 puzzle with a unique solution, 0 for blanks \
        ("1004301221034320:"), the answer its 16-digit solution. Training and test sets never share a problem, \
        whatever the seeds.

        Examples:
          gift data countdown --n 2000 --seed 1 --split train --out countdown-train.jsonl
          gift data sudoku --n 256 --split test --out sudoku-test.jsonl
        """)

    @Argument(help: "countdown or sudoku.") var task: String
    @Option(help: "Number of problems.") var n: Int = 1000
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "train or test.") var split: String = "train"
    @Option(help: "Output JSONL file.") var out: String

    func run() throws {
        let t = try BuiltinTask(name: task)
        guard let sp = TaskSplit(rawValue: split) else { throw ValidationError("--split must be train or test") }
        guard n > 0 else { throw ValidationError("--n must be positive") }
        let pairs = t.generate(n: n, seed: seed, split: sp)
        try JSONLReader.write(path: out, pairs: pairs)
        print("wrote \(pairs.count) \(t.name) \(sp.rawValue) problems to \(out)")
    }
}
