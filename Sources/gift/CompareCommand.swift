import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Does GIFT beat SFT, and by how much: runs grouped by objective, accuracy ± s.e. over seeds, paired tests.",
        usage: "gift compare <runs> ... [<options>]",  // ArgumentParser never wraps USAGE; OPTIONS lists the rest
        discussion: """
        Reads each run folder's config.json, metrics.jsonl, eval.json and eval.jsonl (written when the run had \
        --eval-task). Runs are grouped by objective and by every other setting that differs among them (runs \
        of one group differ only in --seed).

        Per group: accuracy mean ± standard error over its runs' seeds (one run: over its eval repetitions), \
        the untrained model's accuracy on the same problems. Per pair of groups: the accuracy difference per \
        shared seed, a paired t-test on those differences (two-sided), and McNemar's exact test on the \
        per-problem outcomes of the runs that share a seed (same seed = same test problems). Then the per-run \
        table (final loss, accuracy, speed).

        Benchmark eval folders (`gift eval --benchmark ... --out DIR`) compare the same way: each takes the \
        objective, seed and settings of the gift run folder its --model named (another model folder: its name \
        stands for the objective), its accuracy and per-problem outcomes from generations.jsonl, scored again \
        with d1's scorer (Sudoku: per empty cell), so GIFT and SFT runs of the same seeds pair by problem.

        Outputs: a terminal table (default), --markdown, --json (per group the per-seed accuracies, mean and \
        standard error; per pair the differences, t, df, p and the McNemar counts and p), --svg FILE (accuracy \
        with error bars per group, training-loss curves overlaid).

        Examples:
          gift compare runs/sft-s1 runs/sft-s2 runs/sft-s3 runs/gift-s1 runs/gift-s2 runs/gift-s3 --svg cmp.svg
          gift compare --markdown --ignore model runs/miniature/ft-*
          gift compare evals/sft-s1-gsm8k evals/gift-s1-gsm8k evals/sft-s2-gsm8k evals/gift-s2-gsm8k
        """)

    @Argument(help: "Two or more run folders (or benchmark eval folders).") var runs: [String]
    @Flag(help: "Markdown tables instead of the terminal ones.") var markdown = false
    @Flag(help: "One JSON object instead of tables.") var json = false
    @Option(help: "Also write an SVG chart (accuracy per group, training curves) to this file.") var svg: String?
    @Option(help: "Config keys that do not set groups apart, comma-separated (e.g. model: pool runs over several bases; pairs still match by seed).")
    var ignore: String = ""
    @Option(help: "Keep only the comparisons with this group (e.g. sft: every objective against SFT).") var against: String?

    func run() throws {
        guard runs.count >= 2 else { throw ValidationError("give at least two run folders") }
        let reports = try runs.map { RunReport.isBenchmarkEval($0) ? try RunReport.loadBenchmarkEval($0) : try RunReport.load($0) }
        let report = CompareReport.build(reports, ignore: ignore.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) },
                                         against: against)
        if let against, !report.groups.contains(where: { $0.label == against }) {
            throw ValidationError("--against \(against): no such group (groups: \(report.groups.map(\.label).joined(separator: ", ")))")
        }
        if json { print(report.json(), terminator: "") }
        else if markdown { print(report.markdown()) }
        else { print(report.text()); print("per run:\n" + RunReport.table(reports)) }
        if let svg {
            do { try report.svg().write(toFile: svg, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(svg): \(error.localizedDescription)")
            }
        }
    }
}
