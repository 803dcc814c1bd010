import CZstd
import Foundation

/// `gift plan`: what one rank of a training run holds (ZeRO stages 0 and 1, the ones that exist) and what
/// a step costs, computed from the same sizes the trainer allocates, before allocating anything.
public struct Plan {
    public struct Part { public let name: String; public let bytes: Int; public let why: String }

    public let config: ModelConfig
    public let ranks: Int, zero: Int, microBatch: Int, gradAccum: Int, seqLen: Int
    public let precision: Precision
    public let objective: ObjectiveKind
    public let parts: [Part]
    public var totalBytes: Int { parts.reduce(0) { $0 + $1.bytes } }
    /// Model FLOPs of one optimizer step on one rank: pass 2 forward and backward (head at the masked rows),
    /// plus pass 1's forward (head at the response rows) for the objectives that have one.
    public let flopsPerStep: Double

    /// `runtimeBytes`: what the process holds besides these buffers (code, libraries, BLAS thread buffers),
    /// measured by the caller (e.g. this process's resident size once the libraries are loaded).
    public init(config c: ModelConfig, ranks: Int, zero: Int, microBatch: Int, gradAccum: Int, seqLen: Int,
                precision: Precision, objective: ObjectiveKind, nativeBF16: Bool, runtimeBytes: Int) throws {
        guard zero == 0 || zero == 1 else {
            throw GiftError(.usage, "gift plan knows ZeRO stages 0 and 1 (the ones gift trains with); got \(zero)")
        }
        guard ranks >= 1, microBatch >= 1, gradAccum >= 1, seqLen >= 2 else {
            throw GiftError(.usage, "ranks, micro-batch and grad-accum must be positive and the sequence length at least 2")
        }
        config = c; self.ranks = ranks; self.zero = zero; self.microBatch = microBatch; self.gradAccum = gradAccum
        self.seqLen = seqLen; self.precision = precision; self.objective = objective
        let n = ParameterLayout(c).count
        let sharded = zero == 1 && ranks > 1
        let shard = shardRanges(count: n, parts: ranks).map(\.count).max()!   // rank 0's is the largest
        let T = microBatch * seqLen
        var p: [Part] = [
            Part(name: "parameters", bytes: 4 * n, why: "fp32, every rank"),
            Part(name: "gradients", bytes: 4 * n + (sharded ? 4 * shard : 0),
                 why: sharded ? "fp32 full sum target plus this rank's reduce-scattered shard" : "fp32, summed in place by bucketed allreduce"),
            Part(name: "moments", bytes: 8 * (sharded ? shard : n), why: sharded ? "AdamW m, v of this rank's shard (ZeRO-1)" : "AdamW m, v"),
            Part(name: "activations", bytes: Activations.bytes(config: c, capacityTokens: T, maxSeqLen: seqLen, training: true)
                 + Activations.bytes(config: c, capacityTokens: T, maxSeqLen: seqLen, training: false),
                 why: "pass 2 training arena (every block kept) and pass 1 inference arena, \(microBatch)×\(seqLen) tokens"),
            Part(name: "checkpoint_snapshot", bytes: 12 * shard, why: "params, m, v of this rank's checkpoint slice, copied for the background write"),
        ]
        p.append(Part(name: "checkpoint_compression", bytes: Plan.compressionBytes(CheckpointOptions()),
                      why: "zstd's contexts and job buffers while a shard is written (default level and workers)"))
        if precision == .bf16 {
            p.append(Part(name: "bf16_weights", bytes: (nativeBF16 ? 2 : 4) * n,
                          why: nativeBF16 ? "bf16 copy of the weights" : "bf16-rounded fp32 copy of the weights (emulated kernel)"))
        }
        p.append(Part(name: "communication", bytes: sharded ? 4 * n : 0,
                      why: sharded ? "MPI's reduce-scatter temporary (Open MPI stages the full vector)" : "none: buckets are reduced in place"))
        p.append(Part(name: "last_good_copy", bytes: 4 * n,
                      why: "rank 0: the parameters before the last finite step's update, saved if the run ends broken (RunHealth)"))
        p.append(Part(name: "runtime", bytes: runtimeBytes, why: "code, libraries and their buffers, measured"))
        parts = p
        // a batch's shape on average: prompt a quarter, response the rest (gift bench's synthetic batch),
        // half of the response masked (t uniform in (0, 1])
        let response = T * 3 / 4, masked = response / 2
        var f = Bench.modelFlops(config: c, tokens: T, seqLen: seqLen, headRows: masked, backward: true)
        if objective.needsPass1 { f += Bench.modelFlops(config: c, tokens: T, seqLen: seqLen, headRows: response, backward: false) }
        flopsPerStep = f * Double(gradAccum)
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

    /// Seconds per step at `gflops` (the GEMM rate this machine measures at the model's shapes).
    public func secondsPerStep(gflops: Double) -> Double { flopsPerStep / (gflops * 1e9) }

    /// The plan as lines for people, then one JSON object.
    public func report(gflops: Double) -> [String] {
        func gib(_ b: Int) -> String { String(format: "%8.3f GiB", Double(b) / Double(1 << 30)) }
        var lines = ["plan: \(ParameterLayout(config).count) parameters (d \(config.dModel), \(config.nLayers) layers, vocab \(config.vocab)), "
                     + "\(ranks) ranks, ZeRO \(zero), micro-batch \(microBatch) × grad-accum \(gradAccum), seq \(seqLen), \(precision.rawValue), \(objective.rawValue)",
                     "per rank:"]
        for part in parts { lines.append("  " + part.name.padding(toLength: 20, withPad: " ", startingAt: 0) + gib(part.bytes) + "  " + part.why) }
        lines.append("  " + "total".padding(toLength: 20, withPad: " ", startingAt: 0) + gib(totalBytes))
        lines.append(String(format: "step: %.3g FLOPs per rank (both GIFT passes counted), %.2f s at %.1f GFLOP/s", flopsPerStep,
                            secondsPerStep(gflops: gflops), gflops))
        let bytes = (parts.map { "\"\($0.name)\": \($0.bytes)" } + ["\"total\": \(totalBytes)"]).joined(separator: ", ")
        lines.append(String(format: "{\"bytes_per_rank\": {%@}, \"flops_per_step\": %.6g, \"seconds_per_step_estimate\": %.4g, \"gemm_gflops\": %.1f}",
                            bytes, flopsPerStep, secondsPerStep(gflops: gflops), gflops))
        return lines
    }
}
