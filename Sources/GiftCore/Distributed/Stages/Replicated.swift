import Foundation

/// ZeRO-0: every rank holds the whole trained buffer, its gradient and both moments. The gradient is
/// summed by a bucketed allreduce that starts while the last micro-batch's backward is still running:
/// as backward reports the gradients above a flat offset final, their buckets go to the communication
/// thread (`CommThread`), which allreduces them in order while the main thread computes the rest.
public final class Replicated: ParallelStrategy {
    public let stage = 0
    let comm: Communicator
    public let shard: Range<Int>
    let buffer: FloatBuffer
    public var grads: UnsafeMutablePointer<Float> { buffer.pointer }
    public var gradient: UnsafeMutablePointer<Float> { buffer.pointer }
    public var weights: ShardedParameters? { nil }
    public var description: String { "bucketed allreduce" }
    /// Several ranks: the buckets and the thread that reduces them; one rank: nothing to sum.
    let thread: CommThread?
    private var buckets: GradientBuckets
    /// --grad-reduce-dtype bf16: each bucket is reduce-scattered with bf16 on the wire (summed in fp32 by
    /// its owners) and the sums allgathered in fp32, instead of one fp32 allreduce.
    let bf16: Bool
    private let shards: [Range<Int>]
    private let recv: FloatBuffer?
    private var reduced = 0

    public init(_ s: ParallelStrategies.Setup) {
        comm = s.comm; bf16 = s.bf16Reduce
        shard = 0..<s.count
        buffer = FloatBuffer(count: s.count)
        shards = shardRanges(count: s.count, parts: comm.size)
        buckets = GradientBuckets(count: s.count, floats: s.bucketFloats)
        thread = comm.size > 1 ? CommThread(name: "gift-gradient-sync") : nil
        recv = comm.size > 1 && bf16 ? FloatBuffer(count: buckets.all.map(\.count).max() ?? 1) : nil
    }

    public func beginStep() { buffer.pointer.update(repeating: 0, count: buffer.count) }

    /// Only the last micro-batch's buckets go early: the earlier ones are still being added to.
    public func beginMicroBatch(last: Bool) -> ((Int) -> Void)? {
        guard last, thread != nil else { return nil }
        buckets.restart()
        return { [unowned self] in self.ready(from: $0) }
    }

    private func ready(from offset: Int) {
        for b in buckets.ready(from: offset) { thread!.submit { [unowned self] in try self.allreduce(b) } }
    }

    /// On the communication thread.
    private func allreduce(_ r: Range<Int>) throws {
        let g = buffer.pointer
        defer { reduced += r.count * (bf16 ? 2 : 4) }
        guard let recv else { return try comm.allreduceSum(g + r.lowerBound, count: r.count) }
        let parts = piecesOf(r, shards: shards), mine = parts[comm.rank]
        try comm.reduceScatterSumBF16(g + r.lowerBound, recv.pointer, shards: parts)
        (g + r.lowerBound + mine.lowerBound).update(from: recv.pointer, count: mine.count)
        try comm.allgather(g + r.lowerBound, shards: parts)
    }

    public func endMicroBatch() throws {}

    /// Sends the buckets backward has not reported yet and waits for all of them.
    public func reduce() throws -> Double {
        guard let thread else { return 0 }
        return try ParallelStrategies.timed { ready(from: 0); try thread.drain() }
    }

    public func globalNorm() throws -> Double { try ParallelStrategies.norm(gradient, shard: shard, comm: nil) }
    public func afterUpdate(trained: FloatBuffer) throws -> Double { 0 }
    public func drain() throws { try thread?.drain() }
    public var bytesMoved: (gradients: Int, parameters: Int) { (reduced, 0) }

    public static func planParts(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.StageParts {
        let n = z.n
        let comm: Plan.Part
        if s.ranks == 1 { comm = Plan.Part(name: "communication", bytes: 0, why: "none: one rank") }
        else if s.gradReduceBF16 {
            comm = Plan.Part(name: "communication", bytes: 8 * min(z.bucket, n),
                             why: "--grad-reduce-dtype bf16: a bucket's bf16 send and receive staging and its fp32 receive buffer (half the gradient bytes on the wire)")
        } else { comm = Plan.Part(name: "communication", bytes: 0, why: "none: buckets are allreduced in place") }
        return Plan.StageParts(
            parameters: Plan.Part(name: "parameters", bytes: 4 * n, why: "fp32, every rank"),
            gradients: Plan.Part(name: "gradients", bytes: 4 * n, why: "fp32, summed in place by bucketed allreduce"),
            moments: Plan.Part(name: "moments", bytes: 8 * n, why: "AdamW m, v"),
            bf16Weights: Plan.bf16WeightCopy(n: n, s), communication: comm, export: nil,
            lastGood: Plan.lastGoodReplicated(n: n))
    }

    /// fp32: 2·4·N; bf16: a bf16 reduce-scatter and an fp32 allgather of the sums.
    public static func bytesPerStep(_ z: Plan.Sizes, _ s: Plan.Settings) -> Int {
        s.ranks > 1 ? (s.gradBytes + 4) * z.n * (s.ranks - 1) / s.ranks : 0
    }
    public static var formula: String { "allreduce of the gradients (reduce-scatter in g bytes, allgather in 4): (g + 4)·N·(R−1)/R" }
}
