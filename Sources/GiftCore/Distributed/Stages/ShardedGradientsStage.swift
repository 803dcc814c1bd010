import Foundation

/// ZeRO-2: the moments and the gradients sharded. Backward writes into a reserved full-size buffer
/// (`ReservedFloats`, resident only where written), and every bucket, as soon as backward has finished
/// it, is reduce-scattered on the communication thread: each rank adds its part of the sum into its
/// gradient shard and the bucket's pages are given back (which also zeroes them for the next
/// micro-batch). A rank so holds its shard, the block backward is writing and the buckets queued, never
/// the whole gradient. After the update of its shard, the parameters are allgathered as under ZeRO-1.
///
/// Buckets are reduced every micro-batch, so the shard sums micro-batches of summed ranks (ZeRO-0 sums
/// ranks of summed micro-batches: the same up to float summation order).
public class ShardedGradientsStage: ParallelStrategy {
    public var stage: Int { 2 }
    let comm: Communicator
    let thread: CommThread
    let reserved: ReservedFloats
    public let shards: [Range<Int>]
    public let shard: Range<Int>
    /// This rank's summed gradient, `shard.count` floats (zeroed by `beginStep`).
    public let gradShard: FloatBuffer
    private var buckets: GradientBuckets
    let bf16: Bool
    private let recv: FloatBuffer
    private var reduced = 0
    var gathered = 0
    public var grads: UnsafeMutablePointer<Float> { reserved.pointer }
    public var gradient: UnsafeMutablePointer<Float> { gradShard.pointer - shard.lowerBound }
    public var weights: ShardedParameters? { nil }
    public var description: String { "ZeRO-2 bucketed reduce-scatter during backward" }
    /// The reserved buffer backward writes (tests check its pages are given back).
    public var gradientPages: ReservedFloats { reserved }

    public init(_ s: ParallelStrategies.Setup, thread: CommThread) throws {
        comm = s.comm; self.thread = thread; bf16 = s.bf16Reduce
        reserved = try ReservedFloats(count: s.count, what: "the ZeRO gradient buffer")
        shards = shardRanges(count: s.count, parts: comm.size)
        shard = shards[comm.rank]
        gradShard = FloatBuffer(count: shard.count)
        buckets = GradientBuckets(count: s.count, floats: s.bucketFloats)
        recv = FloatBuffer(count: buckets.all.map(\.count).max() ?? 1)
    }

    public func beginStep() { gradShard.zero(); reserved.discardAll(); thread.resetWaited() }

    /// Every micro-batch's buckets go as backward finishes them.
    public func beginMicroBatch(last: Bool) -> ((Int) -> Void)? {
        buckets.restart()
        return { [unowned self] in self.ready(from: $0) }
    }

    /// Every gradient at flat offset ≥ `offset` is final: its buckets go to the communication thread.
    private func ready(from offset: Int) {
        for b in buckets.ready(from: offset) { thread.submit { [unowned self] in try self.reduceScatter(b) } }
    }

    /// On the communication thread.
    private func reduceScatter(_ b: Range<Int>) throws {
        let parts = piecesOf(b, shards: shards), mine = parts[comm.rank]
        let src = UnsafePointer(reserved.pointer + b.lowerBound)
        if bf16 { try comm.reduceScatterSumBF16(src, recv.pointer, shards: parts) }
        else { try comm.reduceScatterSum(src, recv.pointer, shards: parts) }
        let dst = gradShard.pointer + (b.lowerBound + mine.lowerBound - shard.lowerBound), r = recv.pointer
        for i in 0..<mine.count { dst[i] += r[i] }
        reserved.discard(b)
        reduced += b.count * (bf16 ? 2 : 4)
    }

    /// Sends what backward has not reported and waits for every bucket.
    public func endMicroBatch() throws {
        ready(from: 0)
        try thread.drain()
    }

    /// Everything was reduced micro-batch by micro-batch: the time waited on the thread this step.
    public func reduce() throws -> Double { thread.waited }

    public func globalNorm() throws -> Double { try ParallelStrategies.norm(gradient, shard: shard, comm: comm) }

    public func afterUpdate(trained: FloatBuffer) throws -> Double {
        defer { gathered += (reserved.count - shard.count) * 4 }
        return try ParallelStrategies.timed { try comm.allgather(trained.pointer, shards: shards) }
    }

    public func drain() throws { try thread.drain() }
    public var bytesMoved: (gradients: Int, parameters: Int) { (reduced, gathered) }

    public class func planParts(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.StageParts {
        Plan.StageParts(
            parameters: Plan.Part(name: "parameters", bytes: 4 * z.n, why: "fp32, every rank"),
            gradients: shardedGradients(z), moments: shardedMoments(z),
            bf16Weights: Plan.bf16WeightCopy(n: z.n, s), communication: bucketCommunication(z, s), export: nil,
            lastGood: Plan.lastGoodReplicated(n: z.n))
    }

    static func shardedGradients(_ z: Plan.Sizes) -> Plan.Part {
        Plan.Part(name: "gradients", bytes: 4 * z.shard + 4 * (z.inFlight + 2 * z.bucket),
                  why: "fp32 shard, plus in flight: the largest unit's gradients (\(z.inFlight == z.block ? "a block" : "the head"); pages returned after each bucket's reduce-scatter) and a bucket's receive buffer")
    }
    static func shardedMoments(_ z: Plan.Sizes) -> Plan.Part {
        Plan.Part(name: "moments", bytes: 8 * z.shard, why: "AdamW m, v of this rank's shard")
    }
    static func bucketCommunication(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.Part {
        if s.ranks == 1 { return Plan.Part(name: "communication", bytes: 0, why: "none: one rank") }
        return s.gradReduceBF16
            ? Plan.Part(name: "communication", bytes: 4 * min(z.bucket, z.n),
                        why: "--grad-reduce-dtype bf16: a bucket's bf16 send and receive staging (half the gradient bytes on the wire)")
            : Plan.Part(name: "communication", bytes: 0, why: "none beyond the gradients' receive buffer: buckets are reduce-scattered one at a time")
    }

    /// Reduce-scatter every micro-batch (no full gradient is kept) + allgather of the parameters.
    public class func bytesPerStep(_ z: Plan.Sizes, _ s: Plan.Settings) -> Int {
        s.ranks > 1 ? (s.gradAccum * s.gradBytes * z.n + 4 * z.n) * (s.ranks - 1) / s.ranks : 0
    }
    public class var formula: String { "reduce-scatter per micro-batch + parameter allgather: (A·g·N + 4·N)·(R−1)/R" }
}
