import ArgumentParser
import Foundation
import GiftCore

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Side-by-side table of training runs: objective, final loss, accuracy with error bars, speed.",
        discussion: """
        Reads each run folder's config.json, metrics.jsonl and eval.json (written when the run had
        --eval-task). The paper's comparison in one command: train SFT and GIFT on the same data and seed
        with --eval-task, then compare them.
        Example: gift compare runs/sft runs/gift
        """)

    @Argument(help: "Two or more run folders.") var runs: [String]

    func run() throws {
        guard runs.count >= 2 else { throw ValidationError("give at least two run folders") }
        print(RunReport.table(try runs.map(RunReport.load)))
    }
}
