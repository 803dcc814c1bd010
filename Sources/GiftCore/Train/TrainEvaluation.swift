import Foundation

/// What the trainer measures besides the training loss: the validation loss (every rank its chunks, a
/// sum over ranks) and a built-in task's accuracy (sampled with LLaDA's sampler). Under ZeRO-3 the
/// sampler reads the weights block by block through the same gathers as training, on every rank (the
/// gathers are collective), so no rank ever holds the whole model; otherwise rank 0 evaluates alone.
final class TrainEvaluation {
    let cfg: RunConfig
    let comm: Communicator
    let model: Transformer
    let runner: ObjectiveRunner
    let batches: TrainBatches
    /// The weights to evaluate: the model's buffer, under LoRA base and adapters merged, under ZeRO-3 the
    /// gathered view with its source.
    let weights: () -> FloatBuffer
    let stage: any ParallelStrategy
    var source: ShardedParameters? { stage.weights }
    let task: BuiltinTask?
    /// `--eval-benchmark`.
    let benchmark: TrainBenchmark?

    init(config: RunConfig, comm: Communicator, model: Transformer, runner: ObjectiveRunner, batches: TrainBatches,
         stage: any ParallelStrategy, benchmark: TrainBenchmark?, weights: @escaping () -> FloatBuffer) {
        self.benchmark = benchmark
        cfg = config; self.comm = comm; self.model = model; self.runner = runner; self.batches = batches
        self.stage = stage; self.weights = weights
        task = try? BuiltinTask(name: config.evalTask)
    }

    /// Loss of the run's objective on the validation split with fixed draws (the same masks every time,
    /// so the curve shows the model, not the draws); no gradient. Collective.
    func validationLoss(params: FloatBuffer, fixedPadLength: Int?, betas: [[Float]]) throws -> Double? {
        let data = batches.data.validation, n = data.count
        if n == 0 { return nil }
        var loss = 0.0
        // rank r takes every size-th chunk; the normaliser is over the whole split
        // one padded length for the whole split, so the loss does not depend on the micro-batch size
        let padTo = fixedPadLength ?? (data.map(\.length).max()! + cfg.extraEOS)
        let chunks = stride(from: 0, to: n, by: cfg.microBatch).map { Array($0..<min(n, $0 + cfg.microBatch)) }
        let norm = LossNormalizer.of(data, padTo: padTo, padLoss: cfg.padLoss, minEOS: cfg.extraEOS)
        // ZeRO-3's gathers are collective: every rank runs as many batches (a rank without a chunk of its
        // own in the last round runs chunk 0 again and drops the loss)
        let rounds = source == nil ? 0 : (chunks.count + comm.size - 1) / comm.size
        for c in 0..<max(chunks.count, rounds * comm.size) where c % comm.size == comm.rank {
            let chunk = c < chunks.count ? chunks[c] : chunks[0]
            try batches.checkIDs(chunk, of: data)
            let seqs = batches.sequences(chunk, from: data, padTo: padTo, betas: betas)
            let (st, _) = runner.run(params.pointer, grads: nil, seqs, seed: cfg.seed ^ 0x5EED_0F_7A1, step: 0, normalizer: norm)
            if c < chunks.count { loss += st.loss }
        }
        try stage.drain()   // the main thread's MPI call next
        var v = [loss]
        try comm.allreduceSum(&v)
        return v[0]
    }

    /// The task's accuracy (`--eval-task`), on rank 0 (nil elsewhere, and without a task): one seed during
    /// training, three at the end. Collective under ZeRO-3.
    func accuracy(seeds: Int) throws -> EvalResult? {
        guard let task, comm.rank == 0 || source != nil else { return nil }
        let r = try Evaluate.run(config: model.config, params: weights(), task: task, n: cfg.evalN, seeds: seeds, seed: cfg.seed,
                                 weightSource: source)
        try stage.drain()
        return comm.rank == 0 ? r : nil
    }

    /// The benchmark's score after `stepsDone` steps, on rank 0 (nil elsewhere and without one). Every rank
    /// samples its batches; under ZeRO-3 through the block gathers. Collective.
    func benchmarkScore(stepsDone: Int, runDir: String, log: @escaping (String) -> Void) throws -> BenchmarkScore? {
        guard let benchmark else { return nil }
        let w: EvalWeights = source.map { .gathered(weights(), $0) } ?? .fp32(weights())   // ZeRO-3: the view, never materialized
        let r = try benchmark.run(config: model.config, weights: w, comm: comm, runDir: runDir, stepsDone: stepsDone, log: log)
        try stage.drain()
        return r
    }

    /// The untrained model's accuracy on the same problems and seeds as the final evaluation, measured
    /// before the first step of a fresh run (RUN_DIR/eval-untrained.json, kept for resumed parts).
    func measureUntrained(outDir: String) throws {
        guard let u = try accuracy(seeds: 3) else { return }
        try Data(u.jsonLine.utf8).write(to: URL(fileURLWithPath: outDir + "/eval-untrained.json"), options: .atomic)
    }

    /// eval.json (with the untrained model's accuracy beside the trained one's) and eval.jsonl (every
    /// problem's outcome, for McNemar's test in `gift compare`).
    static func write(_ acc: EvalResult, outDir: String) throws {
        var o = try JSONSerialization.jsonObject(with: Data(acc.jsonLine.utf8)) as! [String: Any]
        if let d = FileManager.default.contents(atPath: outDir + "/eval-untrained.json"),
           let u = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
            o["untrained_accuracy"] = u["accuracy"]; o["untrained_stderr"] = u["stderr"]; o["untrained_per_seed"] = u["per_seed"]
        }
        try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]).write(to: URL(fileURLWithPath: outDir + "/eval.json"), options: .atomic)
        try Evaluate.writeJSONL(acc.records, to: outDir + "/eval.jsonl")
    }

    static func untrainedAccuracy(outDir: String) -> Double? {
        guard let d = FileManager.default.contents(atPath: outDir + "/eval-untrained.json"),
              let u = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return (u["accuracy"] as? NSNumber)?.doubleValue
    }
}
