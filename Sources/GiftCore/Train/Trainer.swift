import Foundation

/// What a finished (or stopped) run reports.
public struct TrainSummary: Sendable {
    public var steps: Int
    public var firstLoss: Double, finalLoss: Double
    public var finalValLoss: Double?
    public var tokensPerS: Double
    public var seconds: Double
    public var skippedSteps: Int
    public var text: String
    /// Set when the run ended broken (`RunHealth`): the summary's first sentence; the command exits non-zero.
    public var failure: String? = nil
}

/// The training run of one rank: its shard of every global batch (`TrainBatches`), one `TrainStep` per
/// optimizer step (both GIFT passes and backward locally, the gradient summed by the ZeRO stage, one
/// identical AdamW step everywhere), evaluation (`TrainEvaluation`), checkpoints (`TrainCheckpoints`)
/// and what the user reads (`RunReporter`).
public final class Trainer {
    public let cfg: RunConfig
    public let comm: Communicator
    public let model: Transformer
    /// The model's weights as the model reads them (frozen under LoRA; under ZeRO-3 the gathered view,
    /// resident only block by block while the model runs).
    public let params: FloatBuffer
    /// What the optimizer trains: `params` itself, under LoRA the adapters (`lora`'s table), under ZeRO-3
    /// this rank's shard; the gradients, moments, sync, clipping and checkpoints all follow this buffer.
    public let trainable: FloatBuffer
    public let lora: LoRALayout?
    /// The adapters' identity in checkpoints: their config and the base's fingerprint.
    public let loraIdentity: LoRAIdentity?
    let table: TensorTable
    /// A LoRA run's frozen base in bf16 (`--base-dtype bf16`), or nil.
    public let baseStore: BF16BaseStore?
    public let batches: TrainBatches
    public let stepper: TrainStep
    public var stage: any ParallelStrategy { stepper.stage }
    let evaluation: TrainEvaluation
    let checkpoints: TrainCheckpoints
    public let totalSteps: Int, warmupSteps: Int
    /// gift-ref: every batch is padded to this length (the cached betas are for that form), and the betas.
    let fixedPadLength: Int?
    var reference = ReferenceBetas()
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } {
        didSet { checkpoints.log = log }
    }

    /// `adapters`: LoRA's initial adapters (a PEFT folder's, `gift train --adapter`); nil: PEFT's initialisation.
    /// `baseStore`: the frozen base kept in bf16 (`params` is then its `view`).
    /// ZeRO-3: `params` may be the whole model or only this rank's shard (`shardRanges` of the layout).
    public init(config: RunConfig, comm: Communicator = SingleProcess(), modelConfig: ModelConfig, params: FloatBuffer,
                data: TrainData, adapters: FloatBuffer? = nil, baseStore: BF16BaseStore? = nil) throws {
        cfg = config; self.comm = comm; self.baseStore = baseStore
        if baseStore != nil && !config.lora.enabled { throw GiftError(.config, "a bf16 base store needs LoRA (a frozen base)") }
        if config.zero == 3 && config.lora.enabled {
            throw GiftError(.config, RunConfig.loraZeroThree)
        }
        // the benchmark's data and prompts first: a bad --eval-data stops the run before anything is allocated
        let benchmark = config.evalBenchmark.isEmpty ? nil : try TrainBenchmark(config: config, model: modelConfig)
        let nModel = ParameterLayout(modelConfig).count
        let lora = config.lora.enabled ? try LoRALayout(modelConfig, config.lora) : nil
        self.lora = lora
        table = lora?.table ?? ParameterLayout(modelConfig).table
        let setup = ParallelStrategies.Setup(comm: comm, count: table.count, bucketFloats: Int(config.bucketMB * 262_144),
                                             bf16Reduce: config.gradReduceDtype == .bf16)
        let stage: any ParallelStrategy
        if ParallelStrategies.stage(config.zero, ranks: comm.size) == 3 {
            let fs = try FullySharded(setup, config: modelConfig, params: params, bf16Matrices: config.precision == .bf16)
            stage = fs
            self.params = FloatBuffer(viewOf: fs.sharded.view.pointer, count: nModel, owner: fs.sharded)
        } else {
            stage = try ParallelStrategies.make(zero: config.zero, setup)
            if params.count != nModel { throw GiftError(.mismatch, "the model has \(nModel) parameters; \(params.count) were given") }
            self.params = params
        }
        if let lora {
            if let a = adapters, a.count != lora.count {
                throw GiftError(.mismatch, "the adapters hold \(a.count) values; r \(config.lora.r) on \(LoRATarget.names(config.lora.targets, in: modelConfig.family, separator: ",")) needs \(lora.count)")
            }
            trainable = adapters ?? lora.initialize(seed: config.seed)
            loraIdentity = LoRAIdentity(config: config.lora,
                                        baseFingerprint: baseStore?.fingerprint() ?? LoRAIdentity.fingerprint(params.pointer, count: params.count),
                                        baseModel: config.model)
        } else {
            trainable = stage.weights?.master ?? params; loraIdentity = nil
        }
        if config.gemm == .auto {
            // provisional (OpenBLAS, the emulation in bf16), until `run` settles the kernels by measurement or
            // the checkpoint's record (GIFT_BF16_KERNEL=native is honoured there, among the candidates)
            try Gemm.configure(gemm: "openblas", precision: config.precision, bf16Kernel: config.precision == .bf16 ? .emulated : nil,
                               reason: "provisional, until the run measures")
        } else {
            try Gemm.configure(gemm: config.gemm.rawValue, precision: config.precision)
        }
        batches = try TrainBatches(config: config, data: data, ranks: comm.size, eos: Int32(modelConfig.eosTokenId), vocab: modelConfig.vocab)
        model = Transformer(config: modelConfig, maxSeqLen: max(2, min(config.maxLength, data.maxExampleLength + 1)))
        model.weightSource = baseStore ?? stage.weights
        totalSteps = config.maxSteps > 0 ? config.maxSteps : config.epochs * batches.stepsPerEpoch
        warmupSteps = LRSchedule.warmupSteps(ratio: config.warmupRatio, total: totalSteps)
        let opt = TrainStep.optimizer(table: table, config: config, shard: stage.stage > 0 ? stage.shard : nil)
        let maxLen = model.rope.maxLen
        let runner = ObjectiveRunner(model: model, options: config.objective, capacityTokens: config.microBatch * maxLen,
                                     maxSeqLen: maxLen, recompute: config.recompute == .blocks)
        fixedPadLength = config.objective.kind == .giftRef ? maxLen : nil
        if let lora { runner.attachLoRA(lora, weights: trainable.pointer) }
        stepper = TrainStep(runner: runner, stage: stage, opt: opt, comm: comm, params: self.params, trained: trainable,
                            microBatch: config.microBatch, maxGradNorm: config.maxGradNorm, seed: config.seed)
        let merged: () -> FloatBuffer = { [params = self.params, trainable] in
            guard let lora else { return params }
            // the decoded base must outlive the merge that reads it (not only the `.pointer` access)
            let base = baseStore?.materialize() ?? params
            return withExtendedLifetime(base) { lora.merged(base: base.pointer, adapters: trainable.pointer) }
        }
        evaluation = TrainEvaluation(config: config, comm: comm, model: model, runner: runner, batches: batches, stage: stage,
                                     benchmark: benchmark,
                                     weights: merged)
        checkpoints = TrainCheckpoints(config: config, comm: comm, modelConfig: modelConfig, stage: stage, opt: opt, lora: lora,
                                       loraIdentity: loraIdentity, trained: trainable, trainedCount: table.count)
        checkpoints.log = log
    }

    public var data: TrainData { batches.data }
    public var globalBatch: Int { batches.globalBatch }
    public var rankBatch: Int { batches.rankBatch }
    public var stepsPerEpoch: Int { batches.stepsPerEpoch }
    public var sharded: ShardedParameters? { stage.weights }
    public var zeroStage: Int { stage.stage }
    var grads: UnsafeMutablePointer<Float> { stage.grads }
    public var dataFingerprint: UInt64 { batches.dataFingerprint }
    public var resumedFrom: String? { checkpoints.resumedFrom }
    /// Bytes this rank handed to (gradients) or received from (parameters) the collectives so far.
    public var bytesMoved: (gradients: Int, parameters: Int) { stage.bytesMoved }
    public var gradientBytesPerStep: Int { table.count * (cfg.gradReduceDtype == .bf16 ? 2 : 4) }

    public var checkpointOptions = CheckpointOptions()
    /// "auto", a checkpoint folder, or nil (start fresh).
    public var resumeSpec: String?
    /// Stop (with a checkpoint) after this many steps, as a preempted job would; nil: run to the end.
    public var stopAtStep: Int?

    public struct StepResult {
        public var stats: StepStats; public var gradNorm: Double; public var lr: Double; public var skipped: Bool
        public var tokens: Int; public var commWait: Double
        /// EOS padding in the global batch (tokens that are no example's), for the padding fraction.
        public var padTokens = 0
    }

    /// Optimizer step `step` on this rank's part of its global batch.
    public func step(_ step: Int) throws -> StepResult {
        try FaultInjection.beforeStep(step, rank: comm.rank)
        let b = try batches.step(step, rank: comm.rank, fixedPadLength: fixedPadLength, betas: reference.train)
        let lr = cfg.schedule.lr(step: step, total: totalSteps, warmup: warmupSteps, base: cfg.lr, minRatio: cfg.minLRRatio)
        let o = try stepper.run(b.sequences, step: step, lr: lr, normalizer: b.normalizer)
        return StepResult(stats: o.stats, gradNorm: o.gradNorm, lr: lr, skipped: o.skipped, tokens: b.tokens,
                          commWait: o.commWait, padTokens: b.padTokens)
    }

    /// Before the first step: the ranks agree on config, model and data, and get rank 0's weights.
    public func synchronizeStart() throws {
        let replicated = (baseStore == nil && sharded == nil ? [params] : []) + (lora != nil ? [trainable] : [])
        try RankHandshake.start(comm: comm, config: cfg, model: model.config, batches: batches, replicated: replicated, baseStore: baseStore)
    }

    /// After training: every rank must hold bit-identical parameters (ZeRO-3: this rank's shard's hash).
    public func checkReplicas() throws -> UInt64 {
        try RankHandshake.checkReplicas(comm: comm, trained: trainable, sharded: sharded != nil)
    }

    public func validationLoss() throws -> Double? {
        try evaluation.validationLoss(params: params, fixedPadLength: fixedPadLength, betas: reference.validation)
    }

    func cacheReferenceBetas() {
        guard let L = fixedPadLength else { return }
        reference = ReferenceBetas.compute(model: model, objective: cfg.objective, microBatch: cfg.microBatch, length: L,
                                           weights: params.pointer, batches: batches, log: log)
    }
    var valRefBetas: [[Float]] { reference.validation }
}

extension Trainer {
    /// Runs the training (resuming when asked), writing metrics, progress, checkpoints, the plot, the
    /// summary and the model.
    public func run(outDir: String) throws -> TrainSummary {
        let isRoot = comm.rank == 0
        if isRoot {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            var resolved = cfg; resolved.out = outDir
            try resolved.jsonData().write(to: URL(fileURLWithPath: outDir + "/config.json"), options: .atomic)
        }
        // --gemm auto: the kernels measured on rank 0 (or recorded by the checkpoint resumed), on every rank
        try chooseKernels(outDir: outDir)
        try synchronizeStart()
        let resumed = try checkpoints.resume(resumeSpec, runDir: outDir, dataFingerprint: dataFingerprint,
                                             globalBatch: globalBatch, totalSteps: totalSteps)
        let startStep = resumed?.step ?? 0
        let report = try RunReporter(config: cfg, outDir: outDir, isRoot: isRoot, resumedAt: resumed.map { _ in startStep },
                                   stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, log: log)
        checkpoints.startWriter(runDir: outDir, options: checkpointOptions, layout: model.layout, table: table,
                                dataFingerprint: dataFingerprint)
        cacheReferenceBetas()
        if startStep == 0 { try evaluation.measureUntrained(outDir: outDir) }
        if isRoot { logStart() }
        var badRun = resumed?.consecutiveBadSteps ?? 0, skipped = 0, tokensTotal = 0
        let t0 = Date()
        let endStep = min(totalSteps, stopAtStep ?? totalSteps)
        var lastSaved = -1
        // rank 0 keeps the replicated parameters; under ZeRO-3 every rank its shard
        let lastGood = isRoot || sharded != nil ? LastGoodParameters(count: trainable.count) : nil
        stepper.beforeUpdate = lastGood.map { k in { [trainable] in k.keep(trainable.pointer, stepsDone: $0) } }
        defer { stepper.beforeUpdate = nil }
        for s in startStep..<endStep {
            let ts = Date()
            let r = try step(s)
            let dt = Date().timeIntervalSince(ts)
            let isLast = s == endStep - 1
            tokensTotal += r.tokens
            report.count(s, r, last: isLast)
            if r.skipped {
                skipped += 1; badRun += 1
                log("warning: step \(s + 1): non-finite loss or gradient (loss \(r.stats.loss), grad norm \(r.gradNorm)); step skipped, parameters unchanged")
                if badRun >= cfg.maxBadSteps {
                    let saved = outDir + "/model-last-good"
                    try checkpoints.saveResult(saved, trained: lastGood?.stepsDone == nil ? trainable : lastGood!.parameters)
                    throw GiftError(.numeric, "stopped: \(badRun) consecutive non-finite steps (last at step \(s + 1)); the parameters before them are saved in \(saved). Lower --lr or check the data.")
                }
            } else { badRun = 0 }
            var val: Double? = nil, acc: EvalResult? = nil, bench: BenchmarkScore? = nil
            if isLast || (cfg.evalEvery > 0 && (s + 1) % cfg.evalEvery == 0) {
                val = try validationLoss()
                lastGood?.validated(val, stepsDone: s + 1)
                acc = try evaluation.accuracy(seeds: isLast ? 3 : 1)   // 3 seeds at the end
                if isLast, let acc { try TrainEvaluation.write(acc, outDir: outDir) }
                bench = try evaluation.benchmarkScore(stepsDone: s + 1, runDir: outDir, log: log)
            }
            try report.step(s, r, seconds: dt, val: val, acc: acc, benchmark: bench, commWaitReported: comm.size > 1)
            try checkpoints.writer!.poll()
            if checkpointOptions.every > 0 && (s + 1) % checkpointOptions.every == 0 {
                try checkpoints.save(stepsDone: s + 1, badSteps: badRun, stepsPerEpoch: stepsPerEpoch, globalBatch: globalBatch)
                lastSaved = s + 1
            }
        }
        // one at the end of training (or of this part of it), then wait for the writes
        if lastSaved != endStep && endStep > startStep {
            try checkpoints.save(stepsDone: endStep, badSteps: badRun, stepsPerEpoch: stepsPerEpoch, globalBatch: globalBatch)
        }
        try checkpoints.writer!.finish()
        report.finishProgress()
        let hash = try checkReplicas()
        if comm.size > 1 && isRoot {
            log(sharded != nil ? "parameters sharded over \(comm.size) ranks (ZeRO-3): no replicas to compare"
                : String(format: "parameters identical on all %d ranks (hash %016llx)", comm.size, hash))
        }
        let seconds = Date().timeIntervalSince(t0)
        var summary = TrainSummary(steps: endStep - startStep, firstLoss: report.firstLoss, finalLoss: report.lastLoss,
                                   finalValLoss: report.lastVal, tokensPerS: Double(tokensTotal) / max(seconds, 1e-9),
                                   seconds: seconds, skippedSteps: skipped, text: "")
        var health = RunHealth(parameters: trainable, finalValLoss: report.lastVal)
        if sharded != nil {
            var bad = [Double(health.nonFiniteParameters)]
            try comm.allreduceSum(&bad)
            health.nonFiniteParameters = Int(bad[0]); health.parameterCount = model.layout.count
        }
        summary.failure = health.failureSentence(modelDir: outDir + (lora == nil ? "/model" : "/adapter"), kept: lastGood?.stepsDone, steps: totalSteps)
        // a broken run's model is its last good parameters (RunHealth)
        let kept = health.isBroken && lastGood?.stepsDone != nil ? lastGood!.parameters : trainable
        try checkpoints.saveResult(outDir + (lora == nil ? "/model" : "/adapter"), trained: kept)
        if isRoot {
            try report.finish(summary: &summary, endStep: endStep, trainCount: data.train.count, globalBatch: globalBatch, loraDir: lora != nil)
        }
        try logEnd(steps: summary.steps)
        return summary
    }

    /// The start log (rank 0): data, steps, objective, LoRA, what this rank holds, how gradients travel,
    /// the kernels.
    func logStart() {
        log("train: \(data.train.count) examples, validation \(data.validation.count) (held out: fraction \(cfg.validationFraction), by seed \(cfg.seed); \(data.report.summary)); "
            + "\(totalSteps) steps of \(globalBatch) examples (\(comm.size) ranks × \(cfg.microBatch) × \(cfg.gradAccum)), "
            + "objective \(cfg.objective.kind.rawValue), \(model.layout.count) parameters, matmuls \(Gemm.summary)")
        if let lora {
            log(String(format: "LoRA: r %d, alpha %g (scale %g), dropout %g on %@: %d trainable parameters (%.3f%% of the model), base frozen (fingerprint %016llx)",
                       lora.lora.r, lora.lora.alpha, Double(lora.lora.scale), lora.lora.dropout,
                       LoRATarget.names(lora.lora.targets, in: lora.model.family, separator: ","), lora.count,
                       100 * Double(lora.count) / Double(model.layout.count), loraIdentity!.baseFingerprint))
        }
        // what this rank holds of the trained state at its ZeRO stage (in flight: one block's gradients,
        // buckets; ZeRO-3 also the gathered embedding/head and two blocks)
        let shardN = stepper.opt.shard.count, runner = stepper.runner
        let paramBytes = sharded != nil ? 4 * shardN : (baseStore?.bytes ?? 4 * params.count) + 4 * (lora?.count ?? 0)
        let gradBytes = zeroStage >= 2 ? 4 * shardN : 4 * table.count + (zeroStage == 1 ? 4 * shardN : 0)
        log(String(format: "memory: activations %.1f MB (recompute %@), %@ %.1f MB, gradients %.1f MB, AdamW moments %.1f MB (ZeRO %d)",
                   Double(runner.train.bytes + runner.infer.bytes + (runner.loraTrain?.bytes ?? 0)) / 1e6, cfg.recompute.rawValue,
                   lora == nil ? (sharded != nil ? "parameter shard" : "parameters") : "frozen base (\(cfg.baseDtype.rawValue)) + adapters",
                   Double(paramBytes) / 1e6, Double(gradBytes) / 1e6, Double(8 * shardN) / 1e6, zeroStage))
        if comm.size > 1 {
            log("gradient sync: \(gradientBytesPerStep) bytes per step per rank (\(lora == nil ? "every parameter" : "the adapters only"), \(stage.description), \(cfg.gradReduceDtype.rawValue) on the wire)")
        }
        for line in Gemm.kernelReport { log("  " + line) }
    }

    /// Every rank's peak resident memory (what `gift plan` predicts) and the bytes moved, on rank 0.
    func logEnd(steps: Int) throws {
        var peaks = [Double](repeating: 0, count: comm.size)
        peaks[comm.rank] = Double(MemoryInfo.peakResident() ?? 0)
        try comm.allreduceSum(&peaks)
        guard comm.rank == 0 else { return }
        log("peak resident memory per rank (MiB): " + peaks.map { String(format: "%.1f", $0 / 1048576) }.joined(separator: " "))
        if comm.size > 1 && steps > 0 {
            let (g, p) = bytesMoved
            log("gradient bytes reduced by this rank: \(g) in \(steps) steps (\(g / steps) per step); parameter bytes gathered: \(p) (\(p / steps) per step), ZeRO \(zeroStage)")
        }
    }
}
