import CZstd
import Foundation

/// `gift plan`: what one rank of a training run holds (ZeRO stages 0 to 3, recompute none or blocks,
/// fp32 or bf16 gradient reduction) and what a step costs, computed from the same sizes the trainer
/// allocates, before allocating anything. The figures are for rank 0, the largest rank (the largest
/// shard, the last-good copy of stages 0 to 2).
public struct Plan {
    public struct Part { public let name: String; public let bytes: Int; public let why: String }

    /// What the plan depends on besides the model.
    public struct Settings: Equatable, Sendable {
        public var ranks = 1, zero = 0, microBatch = 1, gradAccum = 1, seqLen = 512
        public var precision = Precision.fp32
        public var objective = ObjectiveKind.gift
        /// `--recompute blocks`: keep each block's input only, recompute the block before its backward.
        public var recompute = false
        /// `--grad-reduce-dtype bf16`: gradients travel as bf16 (accumulated in fp32).
        public var gradReduceBF16 = false
        /// Gradient buckets, MiB (`--bucket-mb`).
        public var bucketMB = 4.0
        /// Whether bf16 matmuls run on a native kernel (a 2-byte weight copy) or emulated (4 bytes).
        public var nativeBF16 = false
        /// What the process holds besides the plan's buffers (code, libraries, BLAS thread buffers),
        /// measured by the caller (e.g. this process's resident size once the libraries are loaded).
        public var runtimeBytes = 0
        public init() {}
    }

    public let config: ModelConfig
    public let settings: Settings
    public var ranks: Int { settings.ranks }
    public var zero: Int { settings.zero }
    public let parts: [Part]
    public var totalBytes: Int { parts.reduce(0) { $0 + $1.bytes } }
    public func bytes(_ part: String) -> Int { parts.first { $0.name == part }?.bytes ?? 0 }
    /// Model FLOPs of one optimizer step on one rank: pass 2 forward and backward (head at the masked rows),
    /// pass 1's forward (head at the response rows) for the objectives that have one, and under recompute
    /// pass 2's block forward once more.
    public let flopsPerStep: Double
    /// Bytes this rank sends per optimizer step in the gradient and parameter collectives (`Collectives`).
    public let bytesMovedPerStep: Int

    /// The sizes the plan is made of, in floats (N, S, B, U, O of `Collectives` and the parts' whys).
    public struct Sizes {
        /// Every parameter; the largest shard (rank 0's); one block; one gradient bucket; the units outside
        /// the blocks (embedding, ln_f, head), which ZeRO-3 gathers once per step; the largest gradient
        /// backward writes whole before its buckets go (a block, or ln_f with the head: dense; the
        /// embedding's gradient touches only the rows of the batch's tokens).
        public let n: Int, shard: Int, block: Int, bucket: Int, outer: Int, inFlight: Int
        init(_ c: ModelConfig, ranks: Int, bucketMB: Double) {
            let l = ParameterLayout(c)
            n = l.count
            shard = shardRanges(count: n, parts: ranks).map(\.count).max()!
            block = l.blocks.count > 1 ? l.blocks[1].attnNorm - l.blocks[0].attnNorm : l.lnF - l.blocks[0].attnNorm
            bucket = Int(bucketMB * 262_144)
            outer = l.blocks[0].attnNorm + (n - l.lnF)
            inFlight = max(block, n - l.lnF)
        }
    }

    public init(config c: ModelConfig, _ s: Settings) throws {
        guard (0...3).contains(s.zero) else {
            throw GiftError(.usage, "ZeRO stages are 0, 1, 2 and 3; got \(s.zero)")
        }
        guard s.ranks >= 1, s.microBatch >= 1, s.gradAccum >= 1, s.seqLen >= 2, s.bucketMB > 0 else {
            throw GiftError(.usage, "ranks, micro-batch, grad-accum and the bucket size must be positive and the sequence length at least 2")
        }
        config = c; settings = s
        let z = Sizes(c, ranks: s.ranks, bucketMB: s.bucketMB)
        let n = z.n, S = z.shard, B = z.block, U = z.bucket, O = z.outer, G = z.inFlight
        // ZeRO-1 on one rank is ZeRO 0 (the trainer shards nothing); 2 and 3 keep their layout (S = N)
        let stage = s.zero == 1 && s.ranks == 1 ? 0 : s.zero
        let T = s.microBatch * s.seqLen
        let acts = Activations.bytes(config: c, capacityTokens: T, maxSeqLen: s.seqLen, training: true, recompute: s.recompute)
            + Activations.bytes(config: c, capacityTokens: T, maxSeqLen: s.seqLen, training: false)
        var p: [Part] = []
        switch stage {
        case 3:
            p.append(Part(name: "parameters", bytes: 4 * S + 4 * (O + 2 * B),
                          why: "fp32 master shard, plus gathered: embedding, ln_f and head (kept for the step) and two blocks (the running one, the prefetched next)"))
        default:
            p.append(Part(name: "parameters", bytes: 4 * n, why: "fp32, every rank"))
        }
        switch stage {
        case 0: p.append(Part(name: "gradients", bytes: 4 * n, why: "fp32, summed in place by bucketed allreduce"))
        case 1: p.append(Part(name: "gradients", bytes: 4 * n + 4 * S, why: "fp32 full sum target plus this rank's reduce-scattered shard"))
        default: p.append(Part(name: "gradients", bytes: 4 * S + 4 * (G + 2 * U),
                               why: "fp32 shard, plus in flight: the largest unit's gradients (\(G == B ? "a block" : "the head"); pages returned after each bucket's reduce-scatter) and a bucket's receive buffer"))
        }
        p.append(Part(name: "moments", bytes: 8 * (stage == 0 ? n : S), why: stage == 0 ? "AdamW m, v" : "AdamW m, v of this rank's shard"))
        p.append(Part(name: "activations", bytes: acts,
                      why: "pass 2 training arena (\(s.recompute ? "each block's input, one block's set refilled by recompute" : "every block kept")) and pass 1 inference arena, \(s.microBatch)×\(s.seqLen) tokens"))
        p.append(Part(name: "checkpoint_snapshot", bytes: 12 * S, why: "params, m, v of this rank's checkpoint slice, copied for the background write"))
        p.append(Part(name: "checkpoint_compression", bytes: Plan.compressionBytes(CheckpointOptions()),
                      why: "zstd's contexts and job buffers while a shard is written (default level and workers)"))
        if s.precision == .bf16 {
            let w = s.nativeBF16 ? 2 : 4
            p.append(stage == 3
                ? Part(name: "bf16_weights", bytes: 0, why: "none: no bf16 mirror is made over ZeRO-3's gathered view")
                : Part(name: "bf16_weights", bytes: w * n,
                       why: s.nativeBF16 ? "bf16 copy of the weights" : "bf16-rounded fp32 copy of the weights (emulated kernel)"))
        }
        p.append(Plan.communication(stage: stage, ranks: s.ranks, n: n, bucket: U, bf16: s.gradReduceBF16))
        if stage == 3 {
            p.append(Part(name: "export", bytes: 4 * n, why: "the final model gathered whole on every rank for its export (Trainer.saveSharded)"))
        }
        p.append(stage == 3
            ? Part(name: "last_good_copy", bytes: 4 * S, why: "every rank: its shard before the last finite step's update, saved if the run ends broken (RunHealth)")
            : Part(name: "last_good_copy", bytes: 4 * n, why: "rank 0: the parameters before the last finite step's update, saved if the run ends broken (RunHealth)"))
        p.append(Part(name: "runtime", bytes: s.runtimeBytes, why: "code, libraries and their buffers, measured"))
        parts = p
        // a batch's shape on average: prompt a quarter, response the rest (gift bench's synthetic batch),
        // half of the response masked (t uniform in (0, 1])
        let response = T * 3 / 4, masked = response / 2
        var f = Bench.modelFlops(config: c, tokens: T, seqLen: s.seqLen, headRows: masked, backward: true)
        if s.objective.needsPass1 { f += Bench.modelFlops(config: c, tokens: T, seqLen: s.seqLen, headRows: response, backward: false) }
        if s.recompute { f += Bench.modelFlops(config: c, tokens: T, seqLen: s.seqLen, headRows: 0, backward: false) }
        flopsPerStep = f * Double(s.gradAccum)
        bytesMovedPerStep = Collectives.bytesPerStep(z, stage: stage, ranks: s.ranks, gradAccum: s.gradAccum,
                                                     gatherPasses: s.objective.needsPass1 ? 3 : 2, gradBytes: s.gradReduceBF16 ? 2 : 4)
    }

    /// Temporaries of the gradient collectives. fp32: Open MPI's reduce-scatter stages the whole vector
    /// (ZeRO-1); the allreduce (ZeRO 0) and the bucket reduce-scatters (ZeRO-2/3, receive buffer counted
    /// with the gradients) stage nothing. bf16 (the shim's reduce-scatter: each rank's part rounded into a
    /// send and a receive array of 2 bytes a float, in rounds of at most 2^22 floats a rank): a bucket's
    /// 2U + 2U bytes, plus under ZeRO 0 the fp32 receive buffer of the reduce-scatter before the allgather.
    static func communication(stage: Int, ranks: Int, n: Int, bucket U: Int, bf16: Bool) -> Part {
        guard ranks > 1 else { return Part(name: "communication", bytes: 0, why: "none: one rank") }
        if bf16 {
            switch stage {
            case 0: return Part(name: "communication", bytes: 8 * min(U, n),
                                why: "--grad-reduce-dtype bf16: a bucket's bf16 send and receive staging and its fp32 receive buffer (half the gradient bytes on the wire)")
            case 1: return Part(name: "communication", bytes: 4 * min(n, ranks << 22),
                                why: "--grad-reduce-dtype bf16: the reduce-scatter's bf16 send and receive staging, in rounds of 2^22 floats a rank (in place of MPI's full-vector temporary)")
            default: return Part(name: "communication", bytes: 4 * min(U, n),
                                 why: "--grad-reduce-dtype bf16: a bucket's bf16 send and receive staging (half the gradient bytes on the wire)")
            }
        }
        switch stage {
        case 0: return Part(name: "communication", bytes: 0, why: "none: buckets are allreduced in place")
        case 1: return Part(name: "communication", bytes: 4 * n, why: "MPI's reduce-scatter temporary (Open MPI stages the full vector)")
        default: return Part(name: "communication", bytes: 0, why: "none beyond the gradients' receive buffer: buckets are reduce-scattered one at a time")
        }
    }

    /// The ZeRO 0/1 form of the first `gift plan` (kept for callers of it).
    public init(config c: ModelConfig, ranks: Int, zero: Int, microBatch: Int, gradAccum: Int, seqLen: Int,
                precision: Precision, objective: ObjectiveKind, nativeBF16: Bool, runtimeBytes: Int) throws {
        var s = Settings()
        s.ranks = ranks; s.zero = zero; s.microBatch = microBatch; s.gradAccum = gradAccum; s.seqLen = seqLen
        s.precision = precision; s.objective = objective; s.nativeBF16 = nativeBF16; s.runtimeBytes = runtimeBytes
        try self.init(config: c, s)
    }

    /// The same run with other settings (`MemoryFit`'s alternatives).
    public func with(_ change: (inout Settings) -> Void) throws -> Plan {
        var s = settings
        change(&s)
        return try Plan(config: config, s)
    }

    /// zstd's working memory for one shard write: a streaming context per thread, and with workers, each
    /// job's input and output buffer (jobs of 4 windows: 2 MiB at level 1), plus the writer's own two 1 MiB
    /// buffers (ShardFile's FrameWriter).
    static func compressionBytes(_ o: CheckpointOptions) -> Int {
        let stream = Int(ZSTD_estimateCStreamSize(Int32(o.level)))
        let window = Int(ZSTD_getCParams(Int32(o.level), 0, 0).windowLog)
        let job = max(1 << 20, 4 << window)
        return 2 << 20 + (o.workers == 0 ? stream : (o.workers + 1) * stream + o.workers * 2 * job)
    }

    /// Seconds per step at `gflops` (the GEMM rate this machine measures at the model's shapes); compute
    /// only: the collectives overlap backward (buckets, prefetched gathers) and the network is not known here.
    public func secondsPerStep(gflops: Double) -> Double { flopsPerStep / (gflops * 1e9) }

    /// One line naming the run the plan is for.
    public var summary: String {
        let s = settings
        return "\(ParameterLayout(config).count) parameters (d \(config.dModel), \(config.nLayers) layers, vocab \(config.vocab)), "
            + "\(s.ranks) rank\(s.ranks == 1 ? "" : "s"), ZeRO \(s.zero), recompute \(s.recompute ? "blocks" : "none"), micro-batch \(s.microBatch) × grad-accum \(s.gradAccum), "
            + "seq \(s.seqLen), \(s.precision.rawValue), grad-reduce \(s.gradReduceBF16 ? "bf16" : "fp32"), \(s.objective.rawValue)"
    }

    /// The plan as lines for people, then (with a measured GEMM rate) one JSON object.
    public func report(gflops: Double?) -> [String] {
        func gib(_ b: Int) -> String { String(format: "%8.3f GiB", Double(b) / Double(1 << 30)) }
        var lines = ["plan: " + summary, "per rank:"]
        for part in parts { lines.append("  " + part.name.padding(toLength: 22, withPad: " ", startingAt: 0) + gib(part.bytes) + "  " + part.why) }
        lines.append("  " + "total".padding(toLength: 22, withPad: " ", startingAt: 0) + gib(totalBytes))
        let counted = settings.recompute ? "both GIFT passes and the recomputed block forward counted" : "both GIFT passes counted"
        lines.append(String(format: "step: %.3g FLOPs per rank (%@)", flopsPerStep, counted)
                     + (gflops.map { String(format: ", %.2f s at %.1f GFLOP/s (compute only)", secondsPerStep(gflops: $0), $0) } ?? ""))
        lines.append(String(format: "collectives: %.3f GiB sent per step per rank (%@)", Double(bytesMovedPerStep) / Double(1 << 30),
                            Collectives.formula(stage: settings.zero == 1 && ranks == 1 ? 0 : settings.zero)))
        guard let gflops else { return lines }
        let bytes = (parts.map { "\"\($0.name)\": \($0.bytes)" } + ["\"total\": \(totalBytes)"]).joined(separator: ", ")
        lines.append(String(format: "{\"bytes_per_rank\": {%@}, \"flops_per_step\": %.6g, \"seconds_per_step_estimate\": %.4g, \"bytes_moved_per_step\": %ld, \"gemm_gflops\": %.1f, \"ranks\": %ld, \"zero\": %ld, \"recompute\": \"%@\", \"grad_reduce_dtype\": \"%@\"}",
                            bytes, flopsPerStep, secondsPerStep(gflops: gflops), bytesMovedPerStep, gflops, ranks, zero,
                            settings.recompute ? "blocks" : "none", settings.gradReduceBF16 ? "bf16" : "fp32"))
        return lines
    }

    /// A preset's shape, or a model folder's config.json (read without loading any weights; the same
    /// errors as `ModelFolder.load`).
    public static func modelConfig(_ model: String) throws -> ModelConfig {
        if ModelConfig.presetNames.contains(model) && !FileManager.default.fileExists(atPath: model) {
            return try ModelConfig.preset(model)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir) else {
            throw GiftError(.io, "model folder '\(model)' does not exist")
        }
        guard isDir.boolValue else { throw GiftError(.io, "model folder '\(model)' is not a directory") }
        let path = (model as NSString).appendingPathComponent(ModelFolder.configFile)
        guard FileManager.default.fileExists(atPath: path) else {
            throw GiftError(.io, "\(path): not found (a model folder needs a config.json)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw GiftError(.io, "\(path): cannot read") }
        return try ModelConfig.parse(data, source: path)
    }
}
