import Foundation

/// `gift train --eval-benchmark B --eval-data FILE --eval-n N`: one of the paper's benchmarks, prompted,
/// sampled (LLaDA: d1's generate, padding masked; Dream: Dream's sampler, `DreamSettings()`) and scored
/// (d1's scorer) as `gift eval --benchmark` does, at every evaluation of the run. The problems are dealt over the ranks in batches (`BenchmarkEval`); under
/// ZeRO-3 every rank samples through the block gathers of training, so no rank holds the whole model.
/// Each evaluation's generations.jsonl and eval.json go to RUN_DIR/benchmark/step-NNNNNNNN.
final class TrainBenchmark {
    let benchmark: Benchmark
    let problems: [BenchmarkProblem]
    let prompts: [(text: String, ids: [Int32])]
    let settings: BenchmarkEvalSettings
    let text: TextModel

    /// Reads the data and renders the prompts with the model folder's tokenizer and chat template.
    init(config c: RunConfig, model: ModelConfig) throws {
        guard let b = Benchmark(rawValue: c.evalBenchmark) else {
            throw GiftError(.config, "eval_benchmark '\(c.evalBenchmark)' is not one of \(Benchmark.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard !c.evalData.isEmpty else {
            throw GiftError(.config, "--eval-benchmark \(b.rawValue) needs --eval-data FILE (the benchmark's test file, as `gift eval --benchmark` reads it)")
        }
        let dir = Evaluate.modelDirectory(c.model)
        guard TextModel.present(in: dir) else {
            throw GiftError(.config, "--eval-benchmark needs the model's tokenizer and chat template: \(dir) has no \(TextModel.tokenizerFilesWanted) (a preset has none)")
        }
        benchmark = b
        text = try TextModel.load(dir)
        problems = try BenchmarkData.load(b, file: URL(fileURLWithPath: c.evalData), limit: c.evalN)
        let builder = try BenchmarkPromptBuilder(model: text)
        prompts = try problems.map { try builder.prompt(b, $0) }
        var opts = SamplerOptions(genLength: c.evalGenLength, blockLength: min(32, c.evalGenLength))
        opts.maxBatch = 8
        try opts.validate()
        let checksum = XXH64.hash([UInt8](FileManager.default.contents(atPath: c.evalData) ?? Data()))
        var settings = BenchmarkEvalSettings(benchmark: b, data: c.evalData, dataChecksum: checksum, limit: c.evalN,
                                             problems: problems.count, model: c.model, adapter: nil, sampler: opts,
                                             attendPadding: false, padId: text.padId(modelDefault: model.padTokenId),
                                             precision: c.precision.rawValue)
        // a Dream model: Dream's sampler with its defaults (one step per generated token)
        settings.dream = model.family == .dream ? DreamSettings() : nil
        self.settings = settings
    }

    /// One evaluation after `stepsDone` steps (collective: every rank calls it). The score on rank 0.
    func run(config: ModelConfig, weights: EvalWeights, comm: Communicator, runDir: String, stepsDone: Int,
             log: @escaping (String) -> Void) throws -> BenchmarkScore? {
        let out = runDir + String(format: "/benchmark/step-%08d", stepsDone)
        // the weights of this step only: a folder left by an earlier run into the same RUN_DIR is not resumed
        if comm.rank == 0 { try? FileManager.default.removeItem(atPath: out) }
        try comm.barrier()
        let eval = BenchmarkEval(settings: settings, problems: problems, prompts: prompts, out: out, comm: comm,
                                 decode: { [text] in try text.tokenizer.decode($0, skipSpecialTokens: false) }, log: { _ in })
        let r = try eval.run(config: config, weights: weights)
        guard comm.rank == 0 else { return nil }
        log(String(format: "%@ after step %d: accuracy %.4f (%d of %d), %.1f s; %@", benchmark.rawValue, stepsDone,
                   r.score.accuracy, r.score.correct, r.score.total, r.seconds, out))
        return r.score
    }
}
