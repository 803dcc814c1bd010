import Foundation

/// ZeRO-3: ZeRO-2's sharded gradients and moments, and the weights sharded too (`ShardedParameters`):
/// each rank keeps its shard of the fp32 weights, which the optimizer updates in place; the model reads
/// each block through `weights` (gathered just before it runs, given back after). After the update
/// nothing gathered stays, so the next gathers read the updated shards; no rank ever holds the model.
public final class FullySharded: ShardedGradientsStage {
    public override var stage: Int { 3 }
    let sharded: ShardedParameters
    public override var weights: ShardedParameters? { sharded }
    public override var description: String { "ZeRO-2 bucketed reduce-scatter during backward, ZeRO-3 block gathers" }

    /// `params`: the whole model or this rank's shard of it (`shardRanges` of the layout).
    public init(_ s: ParallelStrategies.Setup, config: ModelConfig, params: FloatBuffer, bf16Matrices: Bool) throws {
        let thread = CommThread(name: "gift-zero-comm")
        let mine = shardRanges(count: s.count, parts: s.comm.size)[s.comm.rank]
        let master: FloatBuffer
        if params.count == s.count && mine.count != s.count {
            master = FloatBuffer(count: mine.count)
            master.pointer.update(from: params.pointer + mine.lowerBound, count: mine.count)
        } else { master = params }
        sharded = try ShardedParameters(config: config, comm: s.comm, thread: thread, master: master, bf16Matrices: bf16Matrices)
        try super.init(s, thread: thread)
    }

    /// The parameters changed: the next gathers read the updated shards.
    public override func afterUpdate(trained: FloatBuffer) throws -> Double {
        try sharded.dropAll()
        return 0
    }

    public override var bytesMoved: (gradients: Int, parameters: Int) { (super.bytesMoved.gradients, sharded.bytesGathered) }

    public override class func planParts(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.StageParts {
        var comm = bucketCommunication(z, s)
        if s.precision == .bf16 && s.ranks > 1 {
            // bf16 gathers stage a unit's bf16 copy (rounds of at most 2^22 floats a rank)
            comm = Plan.Part(name: "communication", bytes: comm.bytes + 2 * min(z.largestUnit, s.ranks << 22),
                             why: comm.why + "; bf16 staging of a gathered unit (--precision bf16 gathers the matrices as bf16)")
        }
        return Plan.StageParts(
            parameters: Plan.Part(name: "parameters", bytes: 4 * z.shard + 4 * (z.outer + 2 * z.block),
                                  why: "fp32 master shard, plus gathered: embedding, ln_f and head (kept for the step) and two blocks (the running one, the prefetched next)"),
            gradients: shardedGradients(z), moments: shardedMoments(z),
            bf16Weights: s.precision == .bf16
                ? Plan.Part(name: "bf16_weights", bytes: 0, why: "none: no bf16 mirror is made over ZeRO-3's gathered view") : nil,
            communication: comm,
            export: Plan.Part(name: "export", bytes: 4 * z.largestUnit,
                              why: "the final model gathered unit by unit for its streamed export (the largest unit, \(z.largestUnit == z.block ? "a block" : "the embedding or head"))"),
            lastGood: Plan.Part(name: "last_good_copy", bytes: 4 * z.shard,
                                why: "every rank: its shard before the last finite step's update, saved if the run ends broken (RunHealth)"))
    }

    /// Reduce-scatter every micro-batch, P gathers of the blocks per micro-batch, the outer units
    /// gathered once per step.
    public override class func bytesPerStep(_ z: Plan.Sizes, _ s: Plan.Settings) -> Int {
        guard s.ranks > 1 else { return 0 }
        let p = s.precision == .bf16 ? 2 : 4, P = s.objective.needsPass1 ? 3 : 2, o = z.outer
        return (s.gradAccum * (s.gradBytes * z.n + p * P * (z.n - o)) + 4 * z.embedding + p * (o - z.embedding)) * (s.ranks - 1) / s.ranks
    }
    public override class var formula: String {
        "reduce-scatter per micro-batch, blocks gathered P times per micro-batch, outer units once: (A·(g·N + p·P·(N−O)) + 4·E + p·H)·(R−1)/R"
    }
}
