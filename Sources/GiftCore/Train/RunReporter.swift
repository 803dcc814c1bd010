import Foundation

/// What a run tells its user, on rank 0: a metrics.jsonl line and the progress line per step, the
/// padding per epoch, and at the end loss.svg and the summary's prose. Other ranks report nothing.
final class RunReporter {
    let cfg: RunConfig
    let outDir: String
    let log: (String) -> Void
    let stepsPerEpoch: Int
    private let metrics: MetricsWriter?
    /// `--report-to tensorboard`: the same scalars as TensorBoard events.
    private let tensorboard: TensorBoardWriter?
    private var progress: ProgressReporter?
    private(set) var losses: [(Double, Double)] = [], vals: [(Double, Double)] = [], accs: [(Double, Double)] = []
    private(set) var firstLoss = Double.nan, lastLoss = Double.nan, lastVal: Double?, lastAcc: EvalResult?
    private(set) var benchmarkAccs: [(Double, Double)] = [], lastBenchmark: BenchmarkScore?
    private var epochTokens = 0, epochPad = 0

    /// `resumedAt`: the step a resumed run continues from (its metrics lines up to it are kept).
    init(config: RunConfig, outDir: String, isRoot: Bool, resumedAt: Int?, stepsPerEpoch: Int, totalSteps: Int,
         log: @escaping (String) -> Void) throws {
        cfg = config; self.outDir = outDir; self.log = log; self.stepsPerEpoch = stepsPerEpoch
        let path = outDir + "/metrics.jsonl"
        if isRoot, let s = resumedAt { try TrainCheckpoints.truncateMetrics(path, toStep: s) }
        metrics = isRoot ? try MetricsWriter(path: path, truncate: resumedAt == nil) : nil
        tensorboard = isRoot && config.reportTo == .tensorboard ? try TensorBoardWriter(directory: outDir + "/tensorboard") : nil
        if isRoot { progress = ProgressReporter(total: totalSteps, isTerminal: ProgressReporter.stderrIsTerminal) }
    }

    /// A step's tokens and padding; at the end of an epoch (or of the run: `last`) the epoch's padding line.
    func count(_ s: Int, _ r: Trainer.StepResult, last: Bool) {
        epochTokens += r.tokens; epochPad += r.padTokens
        if (s + 1) % stepsPerEpoch == 0 || last, metrics != nil {
            log(String(format: "epoch %.2f: padding %.1f%% of %d tokens%@", Double(s + 1) / Double(stepsPerEpoch),
                       100 * Double(epochPad) / Double(max(1, epochTokens)), epochTokens, cfg.groupByLength ? " (grouped by length)" : ""))
            epochTokens = 0; epochPad = 0
        }
    }

    /// One finished step (`s` counted from 0), with its evaluations.
    func step(_ s: Int, _ r: Trainer.StepResult, seconds dt: Double, val: Double?, acc: EvalResult?, benchmark: BenchmarkScore? = nil,
              commWaitReported: Bool) throws {
        if !r.skipped {
            if firstLoss.isNaN { firstLoss = r.stats.loss }
            lastLoss = r.stats.loss
            losses.append((Double(s + 1), r.stats.loss))
        }
        if let val { vals.append((Double(s + 1), val)); lastVal = val }
        if let acc { accs.append((Double(s + 1), acc.accuracy)); lastAcc = acc }
        if let benchmark { benchmarkAccs.append((Double(s + 1), benchmark.accuracy)); lastBenchmark = benchmark }
        guard let metrics else { return }
        var f: [(String, Any)] = [
            ("step", s + 1), ("epoch", Double(s + 1) / Double(stepsPerEpoch)), ("loss", r.stats.loss),
            ("lr", r.lr), ("grad_norm", r.gradNorm), ("tokens", r.tokens), ("tokens_per_s", Double(r.tokens) / dt),
            ("pad_fraction", Double(r.padTokens) / Double(max(1, r.tokens))),
            ("mask_rate", r.stats.maskRate), ("mean_weight", r.stats.meanWeight), ("masked_tokens", r.stats.maskedTokens),
        ]
        if cfg.objective.kind.usesBetas { f.append(("mean_beta", r.stats.meanBeta)) }
        if commWaitReported { f.append(("comm_wait_s", r.commWait)) }
        if r.skipped {
            // the values that made it skip, as text (JSON has no nan or inf: their fields above are null)
            f.append(("skipped", true))
            f.append(("skipped_reason", !r.stats.loss.isFinite ? "non-finite loss (\(r.stats.loss))"
                      : "non-finite gradient norm (\(r.gradNorm))"))
        }
        if let val { f.append(("val_loss", val)) }
        if let acc { f.append(("accuracy", acc.accuracy)); f.append(("accuracy_stderr", acc.stderr)); f.append(("accuracy_task", acc.task.name)) }
        if let b = benchmark {
            f.append(("benchmark", b.benchmark.rawValue)); f.append(("benchmark_accuracy", b.accuracy))
            f.append(("benchmark_correct", b.correct)); f.append(("benchmark_total", b.total))
        }
        metrics.write(f)
        // every number of the line (not the step: it is the event's), as a scalar named like its field
        try tensorboard?.write(step: s + 1, wallTime: Date().timeIntervalSince1970, scalars: f.compactMap { k, v in
            guard k != "step", !(v is Bool) else { return nil }
            return (v as? Int).map { (k, Double($0)) } ?? (v as? Double).map { (k, $0) }
        })
        var shown = [("loss", String(format: "%.4f", r.stats.loss))]
        if let lv = lastVal { shown.append(("val", String(format: "%.4f", lv))) }
        if let la = lastAcc { shown.append(("acc", String(format: "%.3f", la.accuracy))) }
        if let lb = lastBenchmark { shown.append((lb.benchmark.rawValue, String(format: "%.3f", lb.accuracy))) }
        progress?.update(step: s + 1, fields: shown)
    }

    func finishProgress() { progress?.finish(); tensorboard?.close() }

    /// loss.svg and the summary's text (rank 0).
    func finish(summary: inout TrainSummary, endStep: Int, trainCount: Int, globalBatch: Int, loraDir: Bool) throws {
        let untrained = TrainEvaluation.untrainedAccuracy(outDir: outDir)
        let plot = LossPlot.svg(series: [LossPlot.Series(name: "train loss", points: losses.map { (x: $0.0, y: $0.1) }),
                                         LossPlot.Series(name: "validation loss", points: vals.map { (x: $0.0, y: $0.1) })]
                                + (accs.isEmpty ? [] : [LossPlot.Series(name: "\(cfg.evalTask) accuracy (test split)",
                                                                        points: accs.map { (x: $0.0, y: $0.1) })])
                                + (benchmarkAccs.isEmpty ? [] : [LossPlot.Series(name: "\(cfg.evalBenchmark) accuracy (\(URL(fileURLWithPath: cfg.evalData).lastPathComponent))",
                                                                                 points: benchmarkAccs.map { (x: $0.0, y: $0.1) })])
                                + (accs.isEmpty ? [] : untrained.map { u in
                                    [LossPlot.Series(name: "untrained accuracy", points: [(x: 1, y: u), (x: Double(endStep), y: u)])] } ?? []),
                                title: "gift train: \(cfg.objective.kind.rawValue) on \(URL(fileURLWithPath: cfg.data).lastPathComponent)",
                                xLabel: "optimizer step", yLabel: accs.isEmpty && benchmarkAccs.isEmpty ? "loss" : "loss / accuracy")
        try plot.write(toFile: outDir + "/loss.svg", atomically: true, encoding: .utf8)
        let head = Array(losses.prefix(max(1, losses.count / 10))).map(\.1), tail = Array(losses.suffix(max(1, losses.count / 10))).map(\.1)
        let h = head.reduce(0, +) / Double(max(1, head.count)), t = tail.reduce(0, +) / Double(max(1, tail.count))
        summary.text = String(format: """
            Trained %@ with %@ for %d steps (%.1f epochs of %d examples, global batch %d) in %.0f s at %.0f tokens/s. \
            Training loss %@ from %.4f (mean of the first tenth of the steps) to %.4f (last tenth), %.0f%% %@%@%@. \
            The %@, the metrics in metrics.jsonl and the curves in loss.svg.
            """, cfg.model, cfg.objective.kind.rawValue, summary.steps, Double(endStep) / Double(stepsPerEpoch), trainCount,
            globalBatch, summary.seconds, summary.tokensPerS, t <= h ? "fell" : "rose", h, t, 100 * abs(1 - t / h),
            t <= h ? "lower" : "higher",
            (lastVal.map { String(format: "; validation loss %.4f", $0) } ?? "")
                + (lastAcc.map { String(format: "; %@ test accuracy %.3f ± %.3f (%d problems × %d seeds)", $0.task.name, $0.accuracy, $0.stderr, $0.n, $0.seeds.count) } ?? "")
                + (untrained.map { String(format: ", untrained %.3f", $0) } ?? "")
                + (lastBenchmark.map { String(format: "; %@ accuracy %.4f (%d of %d%@)", $0.benchmark.rawValue, $0.accuracy, $0.correct, $0.total,
                                              $0.benchmark == .sudoku ? " empty cells" : "") } ?? ""),
            summary.skippedSteps > 0 ? "; \(summary.skippedSteps) non-finite steps were skipped" : "",
            !loraDir ? "model is in \(outDir)/model" : "LoRA adapter (r \(cfg.lora.r), PEFT format) is in \(outDir)/adapter (`gift export \(outDir) --merge --out DIR` writes the merged model)")
        if let f = summary.failure { summary.text = f + " " + summary.text }
        try summary.text.write(toFile: outDir + "/summary.txt", atomically: true, encoding: .utf8)
    }
}
