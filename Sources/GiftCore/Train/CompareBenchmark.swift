import Foundation

extension RunReport {
    /// Whether `dir` is a `gift eval --benchmark` folder (eval-settings.json and generations.jsonl).
    public static func isBenchmarkEval(_ dir: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: dir + "/eval-settings.json") && fm.fileExists(atPath: dir + "/generations.jsonl")
    }

    /// A benchmark eval folder as a run of `gift compare`: objective, seed and settings from the run folder
    /// the eval's --model names (when it is a gift run folder; else the model folder's name stands for the
    /// objective), accuracy and per-problem outcomes from generations.jsonl, scored again with d1's scorer.
    /// Sudoku's outcomes are per empty cell ("index:cell"), the others per problem; runs pair by seed.
    public static func loadBenchmarkEval(_ dir: String) throws -> RunReport {
        let settingsPath = dir + "/eval-settings.json"
        guard let sd = FileManager.default.contents(atPath: settingsPath),
              case .object(let top)? = try? StrictJSON.parse([UInt8](sd)), case .object(let s)? = top["settings"],
              case .string(let bname)? = s["benchmark"], let benchmark = Benchmark(rawValue: bname),
              case .string(let model)? = s["model"] else {
            throw GiftError(.data, "\(settingsPath): not the settings file of a gift eval --benchmark folder")
        }
        let gen = dir + "/generations.jsonl"
        let items = try GenerationsFile.read(gen, benchmark: benchmark)
        var outcomes: [String: Bool] = [:]
        var verdicts: [Verdict] = []
        var index = 0
        for it in items {
            let v = BenchmarkScorer.score(benchmark, output: it.output, question: it.question, groundTruth: it.groundTruth)
            verdicts.append(v)
            if benchmark == .sudoku, case .sudoku(let solution) = it.groundTruth, case .text(let got) = v.extracted {
                let puzzle = Array((BenchmarkScorer.sudokuPuzzle(question: it.question) ?? "").utf8), sol = Array(solution.utf8)
                var g = Array(got.utf8); while g.count < 16 { g.append(UInt8(ascii: "0")) }
                for c in 0..<16 where puzzle.count == 16 && puzzle[c] == UInt8(ascii: "0") {
                    outcomes["\(index):\(c)"] = g[c] == sol[c]
                }
            } else {
                outcomes["\(index)"] = v.correct > 0
            }
            index += 1
        }
        let score = BenchmarkScorer.aggregate(benchmark, verdicts: verdicts)
        // the run behind the model, when the eval was of a gift run folder
        var run: RunReport? = nil
        if FileManager.default.fileExists(atPath: model + "/config.json") && FileManager.default.fileExists(atPath: model + "/metrics.jsonl") {
            run = try? RunReport.load(model)
        }
        var r = run ?? RunReport(path: dir, objective: URL(fileURLWithPath: model).lastPathComponent, data: "-", seed: "-",
                                 steps: 0, finalLoss: .nan, finalValLoss: nil, tokensPerS: 0)
        r.path = dir
        for k in ["benchmark", "data_xxh64", "limit", "gen_length", "block_length", "steps", "batch_size", "attend_padding",
                  "temperature", "remasking", "cfg", "precision"] {
            if let v = s[k] { r.config["eval_" + k] = v.brief }
        }
        r.accuracy = score.accuracy
        // over problems (Sudoku: cells) as independent draws: the binomial standard error
        r.accuracyStderr = score.total > 0 ? (score.accuracy * (1 - score.accuracy) / Double(score.total)).squareRoot() : nil
        r.accuracyNote = "\(benchmark.rawValue), \(items.count) problems (d1's scorer\(benchmark == .sudoku ? ", cells" : ""))"
        r.perSeedAccuracy = [score.accuracy]
        r.evalProblems = items.count
        r.untrainedAccuracy = nil
        r.outcomes = outcomes
        return r
    }
}
