import Foundation

/// One optimizer step, the one `gift train` runs and `gift bench` times: this rank's micro-batches
/// (both GIFT passes and backward), the gradient summed over ranks by the ZeRO stage, the global norm,
/// clipping and AdamW. Reads top to bottom; what differs between stages is the stage's (`ParallelStrategy`).
public final class TrainStep {
    public let runner: ObjectiveRunner
    public let stage: any ParallelStrategy
    public let opt: AdamW
    let comm: Communicator
    /// The weights the model reads (under ZeRO-3 the gathered view; under LoRA the frozen base).
    let params: FloatBuffer
    /// What the optimizer updates: `params`, a LoRA run's adapters, or this rank's shard under ZeRO-3.
    public let trained: FloatBuffer
    let microBatch: Int, maxGradNorm: Double, seed: UInt64
    /// Called in a finite step just before the update, with the steps done (the trained buffer is good).
    public var beforeUpdate: ((Int) -> Void)?

    public struct Outcome {
        public var stats: StepStats
        public var gradNorm: Double
        public var skipped: Bool
        /// Seconds the step waited on gradient and parameter communication.
        public var commWait: Double
    }

    public init(runner: ObjectiveRunner, stage: any ParallelStrategy, opt: AdamW, comm: Communicator,
                params: FloatBuffer, trained: FloatBuffer, microBatch: Int, maxGradNorm: Double, seed: UInt64) {
        self.runner = runner; self.stage = stage; self.opt = opt; self.comm = comm
        self.params = params; self.trained = trained
        self.microBatch = microBatch; self.maxGradNorm = maxGradNorm; self.seed = seed
    }

    /// AdamW over `table` (this rank's `shard` of it) with the run's decay, betas and epsilon.
    public static func optimizer(table: TensorTable, config c: RunConfig, shard: Range<Int>?) -> AdamW {
        let opt = AdamW(table: table, weightDecay: c.weightDecay, shard: shard)
        opt.beta1 = c.beta1; opt.beta2 = c.beta2; opt.eps = c.adamEps
        return opt
    }

    /// `mine`: this rank's sequences of the global batch, micro-batch after micro-batch; `normalizer` is
    /// the global batch's. Returns the statistics summed over ranks.
    public func run(_ mine: [TrainSequence], step: Int, lr: Double, normalizer: LossNormalizer) throws -> Outcome {
        stage.beginStep()
        var stats = StepStats()
        // bf16: the weights' bf16 copy is made once here, after the previous optimizer step, and used by
        // every micro-batch of this step (not over reserved weights: a bf16 base, ZeRO-3's gathered view)
        try Gemm.withWeightMirror(params.pointer, count: runner.model.weightSource == nil ? params.count : 0) {
            let micro = mine.count / microBatch
            for m in 0..<micro {
                let ready = stage.beginMicroBatch(last: m == micro - 1)
                let (st, _) = runner.run(params.pointer, grads: stage.grads, Array(mine[(m * microBatch)..<((m + 1) * microBatch)]),
                                         seed: seed, step: step, normalizer: normalizer, ready: ready)
                try stage.endMicroBatch()
                stats.add(st)
            }
        }
        var wait = try Profiler.measure("communication") { try stage.reduce() }
        try sumOverRanks(&stats)
        let norm = try stage.globalNorm()
        if stats.nonFinite > 0 || !stats.loss.isFinite || !norm.isFinite {
            return Outcome(stats: stats, gradNorm: norm, skipped: true, commWait: wait)
        }
        let shard = stage.shard
        GradClip.scale(stage.gradient + shard.lowerBound, count: shard.count, norm: norm, maxNorm: maxGradNorm)
        beforeUpdate?(step)
        Profiler.measure("optimizer") {
            opt.update(params: trained.pointer - (stage.weights?.shard.lowerBound ?? 0), grads: stage.gradient, lr: Float(lr))
        }
        wait += try stage.afterUpdate(trained: trained)
        return Outcome(stats: stats, gradNorm: norm, skipped: false, commWait: wait)
    }

    /// The step's statistics summed over ranks (one allreduce).
    func sumOverRanks(_ stats: inout StepStats) throws {
        var sums = [stats.loss, Double(stats.maskedTokens), Double(stats.responseTokens), stats.weightSum,
                    stats.betaSum, Double(stats.betaCount), Double(stats.nonFinite)]
        try comm.allreduceSum(&sums)
        stats.loss = sums[0]; stats.maskedTokens = Int(sums[1]); stats.responseTokens = Int(sums[2])
        stats.weightSum = sums[3]; stats.betaSum = sums[4]; stats.betaCount = Int(sums[5]); stats.nonFinite = Int(sums[6])
    }
}
