import Foundation

/// ZeRO-1: every rank holds the whole trained buffer and gradient, but the AdamW moments of its shard
/// only. After backward the gradient is reduce-scattered (each rank receives its shard of the sum),
/// each rank updates its shard, and the updated parameters are allgathered.
public final class ShardedOptimizer: ParallelStrategy {
    public let stage = 1
    let comm: Communicator
    let shards: [Range<Int>]
    public let shard: Range<Int>
    let full: FloatBuffer, summed: FloatBuffer
    let bf16: Bool
    public var grads: UnsafeMutablePointer<Float> { full.pointer }
    public var gradient: UnsafeMutablePointer<Float> { summed.pointer - shard.lowerBound }
    public var weights: ShardedParameters? { nil }
    public var description: String { "ZeRO-1 reduce-scatter after backward" }
    private var reduced = 0, gathered = 0

    public init(_ s: ParallelStrategies.Setup) {
        comm = s.comm; bf16 = s.bf16Reduce
        shards = shardRanges(count: s.count, parts: comm.size)
        shard = shards[comm.rank]
        full = FloatBuffer(count: s.count)
        summed = FloatBuffer(count: shard.count)
    }

    public func beginStep() { full.pointer.update(repeating: 0, count: full.count) }
    public func beginMicroBatch(last: Bool) -> ((Int) -> Void)? { nil }
    public func endMicroBatch() throws {}

    public func reduce() throws -> Double {
        defer { reduced += full.count * (bf16 ? 2 : 4) }
        return try ParallelStrategies.timed {
            if bf16 { try comm.reduceScatterSumBF16(full.pointer, summed.pointer, shards: shards) }
            else { try comm.reduceScatterSum(full.pointer, summed.pointer, shards: shards) }
        }
    }

    public func globalNorm() throws -> Double { try ParallelStrategies.norm(gradient, shard: shard, comm: comm) }

    public func afterUpdate(trained: FloatBuffer) throws -> Double {
        defer { gathered += (full.count - shard.count) * 4 }
        return try ParallelStrategies.timed { try comm.allgather(trained.pointer, shards: shards) }
    }

    public func drain() throws {}
    public var bytesMoved: (gradients: Int, parameters: Int) { (reduced, gathered) }

    /// Each stage states its parts in the same form (`Plan.StageParts`); the sizes are the stage's own.
    public static func planParts(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.StageParts {
        let n = z.n, S = z.shard
        let comm = s.gradReduceBF16
            ? Plan.Part(name: "communication", bytes: 4 * min(n, s.ranks << 22),
                        why: "--grad-reduce-dtype bf16: the reduce-scatter's bf16 send and receive staging, in rounds of 2^22 floats a rank (in place of MPI's full-vector temporary)")
            : Plan.Part(name: "communication", bytes: 4 * n, why: "MPI's reduce-scatter temporary (Open MPI stages the full vector)")
        return Plan.StageParts(
            parameters: Plan.Part(name: "parameters", bytes: 4 * n, why: "fp32, every rank"),
            gradients: Plan.Part(name: "gradients", bytes: 4 * n + 4 * S, why: "fp32 full sum target plus this rank's reduce-scattered shard"),
            moments: Plan.Part(name: "moments", bytes: 8 * S, why: "AdamW m, v of this rank's shard"),
            bf16Weights: Plan.bf16WeightCopy(n: n, s), communication: comm, export: nil,
            lastGood: Plan.lastGoodReplicated(n: n))
    }

    /// Reduce-scatter once per step + allgather of the parameters.
    public static func bytesPerStep(_ z: Plan.Sizes, _ s: Plan.Settings) -> Int {
        s.ranks > 1 ? (s.gradBytes + 4) * z.n * (s.ranks - 1) / s.ranks : 0
    }
    public static var formula: String { "reduce-scatter + parameter allgather: (g·N + 4·N)·(R−1)/R" }
}
