import Foundation

/// `gift bench`: whole optimizer steps per objective on a synthetic batch (the step training runs, `TrainStep`), plus a same-run sgemm
/// measurement at the model's largest matmul shape, so a step's achieved GFLOP/s is read against what
/// the machine's GEMM reaches right now (the machine is shared and noisy: only ratios from one run count).
public enum Bench {
    /// A matmul backend and precision to measure (`Gemm.configure`'s arguments); `kernel`: the bf16
    /// kernel when chosen (`--gemm auto` resolved by measurement, `KernelChoice`), else nil (the rule).
    public struct Compute: Sendable, Equatable {
        public var gemm: String, precision: Precision, kernel: BF16Kernel?
        public init(gemm: String, precision: Precision, kernel: BF16Kernel? = nil) {
            self.gemm = gemm; self.precision = precision; self.kernel = kernel
        }
        public func configure() throws {
            try Gemm.configure(gemm: gemm, precision: precision, bf16Kernel: precision == .bf16 ? kernel : nil,
                               reason: "measured (--gemm auto)")
        }
    }

    public struct Result {
        public var objective: ObjectiveKind
        public var compute = Compute(gemm: "auto", precision: .fp32)
        /// What ran: `Gemm.summary` ("onednn fp32", "openblas bf16 (emulated)", ...).
        public var computeSummary = ""
        public var sPerStep: Double
        public var tokensPerS: Double
        public var gflops: Double
        public var modelFlopsPerStep: Double
        /// Seconds of each timed step, in order (lanes ran interleaved: step i of every lane ran together).
        public var stepTimes: [Double] = []
        /// The loss of each timed step (summed over ranks).
        public var losses: [Double] = []
        /// Seconds per step by phase (with `Profiler.enabled`).
        public var profile: [(String, Double)] = []
        /// Examples per second over all ranks, and the median communication wait per step.
        public var examplesPerS = 0.0
        public var commWait = 0.0
        /// LoRA rank of this lane (0: full fine-tuning).
        public var loraR = 0
    }

    /// A deterministic synthetic batch: prompt = first quarter, response = the rest.
    public static func batch(config c: ModelConfig, batch B: Int, seqLen L: Int, seed: UInt64) -> [TrainSequence] {
        (0..<B).map { b in
            let r = CounterRNG(seed, 0xB37C, UInt64(b))
            let toks = (0..<L).map { i in Int32(r.bits(UInt64(i)) % UInt64(max(1, c.vocab - 1))) }
                .map { $0 == Int32(c.maskTokenId) ? Int32(c.eosTokenId) : $0 }
            return TrainSequence(tokens: toks, promptLength: L / 4, exampleIndex: b)
        }
    }

    /// Model FLOPs (no recompute counted): 2·N per token forward (N = matmul parameters without the
    /// head), 2·d·V per head row, 4·L·d per token per layer for attention; backward twice forward.
    public static func modelFlops(config c: ModelConfig, tokens T: Int, seqLen L: Int, headRows: Int,
                                  backward: Bool) -> Double {
        let layout = ParameterLayout(c)
        let body = Double(layout.matmulParameterCount - c.vocab * c.dModel)
        let f = 2 * body * Double(T) + 2 * Double(c.dModel * c.vocab) * Double(headRows) + attentionFlops(c, tokens: T, seqLen: L)
        return backward ? 3 * f : f
    }

    /// Attention's score and value products in one forward: 4·L·d per token and layer.
    static func attentionFlops(_ c: ModelConfig, tokens T: Int, seqLen L: Int) -> Double {
        4 * Double(L) * Double(c.dModel) * Double(c.nLayers) * Double(T)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// GFLOP/s of sgemm C[m×n] = A[m×k]·B[k×n]ᵀ (the linear-layer form), median of `reps` (the same
    /// statistic as the step times, so their ratio is fair on a noisy machine).
    public static func sgemmGFlops(m: Int, n: Int, k: Int, reps: Int = 9) -> Double {
        gemmGFlops(transB: true, m: m, n: n, k: k, reps: reps)
    }

    /// GFLOP/s of one thread's C[m×n] = A[m×k]·op(B) (op: Bᵀ when `transB`): attention issues its
    /// score-block GEMMs (QKᵀ, PV) this way, one per worker thread.
    public static func singleThreadGFlops(transB: Bool, m: Int, n: Int, k: Int, reps: Int = 41) -> Double {
        let saved = Gemm.threads
        Gemm.setThreads(1)
        defer { Gemm.setThreads(saved) }
        return Gemm.singleThreaded { gemmGFlops(transB: transB, m: m, n: n, k: k, reps: reps) }
    }

    /// The median rate of `reps` GEMMs after one warm-up, on the current backend and threads.
    static func gemmGFlops(transB: Bool, m: Int, n: Int, k: Int, reps: Int) -> Double {
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: n * k), c = FloatBuffer(count: m * n)
        for i in 0..<a.count { a[i] = Float(i % 7) * 0.01 }
        for i in 0..<b.count { b[i] = Float(i % 5) * 0.01 }
        func once() {
            Gemm.mm(transB: transB, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: transB ? k : n,
                    c: c.pointer, ldc: n)
        }
        once()
        var times: [Double] = []
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            once()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(m) * Double(n) * Double(k) / median(times) / 1e9
    }

    /// On a CPU with bf16 instructions, where oneDNN is loaded: times a bf16 GEMM at this shape with both
    /// kernels (operand conversion included) and returns a warning when the one not configured (a backend
    /// by name: `Gemm.configure`) is more than 10% faster here, else nil. Leaves `gemm` in bf16
    /// configured as it was.
    public static func bf16KernelCheck(gemm: String, m: Int, n: Int, k: Int) throws -> String? {
        guard Gemm.onednnAvailable, Gemm.nativeBF16 else { return nil }
        let chosen = Gemm.bf16Kernel
        var rate: [BF16Kernel: Double] = [:]
        for kernel in [BF16Kernel.native, .emulated] {
            try Gemm.configure(gemm: "onednn", precision: .bf16, bf16Kernel: kernel)
            rate[kernel] = sgemmGFlops(m: m, n: n, k: k)
        }
        try Gemm.configure(gemm: gemm, precision: .bf16)
        let other: BF16Kernel = chosen == .native ? .emulated : .native
        let line = String(format: "bf16 GEMM at %d×%d×%d: native %.1f, emulated %.1f GFLOP/s", m, n, k,
                          rate[.native]!, rate[.emulated]!)
        guard rate[other]! > 1.1 * rate[chosen]! else { return nil }
        return "warning: \(line): the \(other.rawValue) kernel is faster on this CPU than the \(chosen.rawValue) one "
            + "that --gemm \(gemm) runs (GIFT_BF16_KERNEL=\(other.rawValue) selects it; --gemm auto measures both and takes the faster)"
    }

    /// One objective's timed loop state (the model's memory is shared: one lane runs at a time).
    final class Lane {
        let objective: ObjectiveOptions
        var compute = Compute(gemm: "openblas", precision: .fp32)   // set when the lane is made
        var summary = ""
        var seqs: [TrainSequence]
        var times: [Double] = [], waits: [Double] = [], losses: [Double] = [], flops = 0.0
        var profile: (totals: [String: Double], order: [String]) = ([:], [])
        var lora = false
        init(model: Transformer, params: FloatBuffer, objective: ObjectiveOptions, seqs s: [TrainSequence], B: Int, L: Int) {
            self.objective = objective
            var seqs = s
            if objective.kind == .giftRef {   // betas of the frozen weights, cached once (before training, untimed)
                var o = objective; o.kind = .gift
                let betas = ObjectiveRunner(model: model, options: o, capacityTokens: B * L, maxSeqLen: L).pass1Betas(params.pointer, seqs)
                for b in 0..<B { seqs[b].cachedBetas = (seqs[b].promptLength..<L).map { Float(betas[b * L + $0]) } }
            }
            self.seqs = seqs
        }
    }

    /// The step settings a bench runs with unless given others: the paper's AdamW and clipping, weight
    /// decay 0.1, a constant lr of 1e-5 and seed 7 (the values only need to keep the weights sane).
    public static var stepConfig: RunConfig {
        var c = RunConfig()
        c.weightDecay = 0.1; c.lr = 1e-5; c.seed = 7
        return c
    }

    /// One timed batch: this rank's sequences and the global batch's normaliser.
    public struct Batch {
        public var sequences: [TrainSequence]
        public var normalizer: LossNormalizer
        public init(sequences: [TrainSequence], normalizer: LossNormalizer) { self.sequences = sequences; self.normalizer = normalizer }
    }

    /// Times whole optimizer steps of every objective (training `params` in place) with `TrainStep`, the
    /// step `gift train` runs: pass 1, pass 2, backward, the gradient summed by the ZeRO stage of `config`
    /// (0 to 2), clipping and AdamW. Lanes run interleaved step by step (A, B, A, B, ...) after `warmup`
    /// steps each, so a burst of load on a shared machine hits all of them alike; each step time is the median.
    /// Under MPI every rank runs its own batch and the gradients are summed as in training.
    /// `computes`: each objective runs under each setting (lanes = settings × objectives, interleaved);
    /// empty: the current `Gemm` setting only. `batches`: the batches of steps 0, 1, ... (cycled) in place
    /// of the synthetic one (`batch`).
    public static func run(model: Transformer, params: FloatBuffer, objectives: [ObjectiveOptions], batch B: Int,
                           seqLen L: Int, steps: Int, warmup: Int, computes: [Compute] = [],
                           comm: Communicator = SingleProcess(), lora: LoRAConfig? = nil,
                           config: RunConfig = stepConfig, batches: [Batch]? = nil) throws -> [Result] {
        let c = model.config
        var seqs = batch(config: c, batch: B, seqLen: L, seed: 1 + UInt64(comm.rank))
        for i in seqs.indices { seqs[i].exampleIndex += comm.rank * B }
        let synthetic = Batch(sequences: seqs, normalizer: LossNormalizer(responseTokens: LossNormalizer.of(seqs).responseTokens * comm.size,
                                                                          sequences: B * comm.size))
        let timed = batches ?? [synthetic]
        let settings: [Compute?] = computes.isEmpty ? [nil] : computes
        var lanes: [Lane] = []
        for cs in settings {
            if let cs { try cs.configure() }
            for o in objectives {
                // with LoRA: each objective's full fine-tuning step beside its LoRA step
                for withLoRA in lora == nil ? [false] : [false, true] {
                    let lane = Lane(model: model, params: params, objective: o, seqs: timed[0].sequences, B: B, L: L)
                    lane.compute = cs ?? Compute(gemm: Gemm.backend.rawValue, precision: Gemm.precision)
                    lane.summary = Gemm.summary
                    lane.lora = withLoRA
                    lanes.append(lane)
                }
            }
        }
        // one step (runner, gradient, optimizer) for all full lanes and one for the LoRA lanes: the peak
        // memory is one model's; `params` is trained in place (`bytesNeeded` counts on it)
        func trainStep(table: TensorTable, trained: FloatBuffer) throws -> TrainStep {
            let stage = try ParallelStrategies.make(zero: config.zero, ParallelStrategies.Setup(
                comm: comm, count: table.count, bucketFloats: Int(config.bucketMB * 262_144), bf16Reduce: config.gradReduceDtype == .bf16))
            let runner = ObjectiveRunner(model: model, options: objectives[0], capacityTokens: B * L, maxSeqLen: L,
                                         recompute: config.recompute == .blocks)
            return TrainStep(runner: runner, stage: stage,
                             opt: TrainStep.optimizer(table: table, config: config, shard: stage.stage > 0 ? stage.shard : nil),
                             comm: comm, params: params, trained: trained, microBatch: B, maxGradNorm: config.maxGradNorm, seed: config.seed)
        }
        let full = try trainStep(table: model.layout.table, trained: params)
        // LoRA lanes: adapters on the same base, their own runner (activations), gradients and AdamW
        let loraLayout = try lora.map { try LoRALayout(c, $0) }
        let loraStep = try loraLayout.map { ll in
            let adapters = ll.initialize(seed: 1)
            let st = try trainStep(table: ll.table, trained: adapters)
            st.runner.attachLoRA(ll, weights: adapters.pointer)
            return st
        }
        for s in 0..<(warmup + steps) {
            let b = timed[s % timed.count]
            for lane in lanes {
                Profiler.state = lane.profile
                if !computes.isEmpty { try lane.compute.configure() }
                let step = lane.lora ? loraStep! : full
                step.runner.options = lane.objective
                let sequences = batches == nil ? lane.seqs : b.sequences
                let t0 = DispatchTime.now().uptimeNanoseconds
                let o = try step.run(sequences, step: s, lr: config.lr, normalizer: b.normalizer)
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                if s >= warmup {
                    lane.times.append(dt); lane.losses.append(o.stats.loss)
                    if comm.size > 1 { lane.waits.append(o.commWait) }
                    lane.flops += modelFlops(config: c, tokens: B * L, seqLen: L, headRows: o.stats.maskedTokens, backward: true)
                    if lane.objective.kind.needsPass1 {
                        lane.flops += modelFlops(config: c, tokens: B * L, seqLen: L, headRows: o.stats.responseTokens, backward: false)
                    }
                }
                lane.profile = s + 1 == warmup ? ([:], []) : Profiler.state
            }
        }
        return lanes.map { lane in
            let per = median(lane.times)
            return Result(objective: lane.objective.kind, compute: lane.compute, computeSummary: lane.summary, sPerStep: per, tokensPerS: Double(B * L * comm.size) / per,
                          gflops: lane.flops / Double(steps) / per / 1e9, modelFlopsPerStep: lane.flops / Double(steps),
                          stepTimes: lane.times, losses: lane.losses,
                          profile: lane.profile.order.map { ($0, lane.profile.totals[$0]! / Double(steps)) },
                          examplesPerS: Double(B * comm.size) / per, commWait: lane.waits.isEmpty ? 0 : median(lane.waits),
                          loraR: lane.lora ? lora!.r : 0)
        }
    }

    /// What `run` allocates for a model and batch: the parameters (the caller's), gradients, both AdamW
    /// moments, and the objective runner's training and inference activations.
    public static func bytesNeeded(config c: ModelConfig, batch B: Int, seqLen L: Int) -> Int {
        let n = ParameterLayout(c).count
        return 4 * n * 4 + Activations.bytes(config: c, capacityTokens: B * L, maxSeqLen: L, training: true)
            + Activations.bytes(config: c, capacityTokens: B * L, maxSeqLen: L, training: false)
    }

    /// Peak resident memory of this process, bytes (Linux: ru_maxrss is in KiB).
    public static func peakRSS() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss) * 1024
    }
}
