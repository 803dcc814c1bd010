import Foundation

/// ZeRO-2/3's gradients: backward writes into a reserved full-size buffer (`ReservedFloats`, resident
/// only where written), and every bucket, as soon as backward has finished it, is reduce-scattered on
/// the communication thread: each rank adds its part of the sum into its gradient shard and the
/// bucket's pages are given back (which also zeroes them for the next micro-batch). A rank so holds its
/// shard, the block backward is writing and the buckets queued, never the whole gradient.
///
/// Buckets are cut from the top of the flat buffer as in `GradientSync` (backward finishes the head
/// first, the embedding last), on page boundaries, and reduced every micro-batch, so the shard sums micro-batches of summed
/// ranks (ZeRO-0 sums ranks of summed micro-batches: the same up to float summation order).
public final class ShardedGradients: @unchecked Sendable {
    let comm: Communicator
    let thread: CommThread
    public let grads: ReservedFloats
    public let shards: [Range<Int>]
    public let shard: Range<Int>
    /// This rank's summed gradient, `shard.count` floats (zeroed by `beginStep`).
    public let gradShard: FloatBuffer
    public let buckets: [Range<Int>]
    let bf16: Bool
    private var enqueued = 0
    private let recv: FloatBuffer
    /// Gradient bytes this rank handed to reduce-scatters (fp32 or bf16 on the wire).
    public private(set) var bytesReduced = 0

    public init(comm: Communicator, thread: CommThread, count: Int, bucketFloats: Int, bf16: Bool) throws {
        self.comm = comm; self.thread = thread; self.bf16 = bf16
        grads = try ReservedFloats(count: count, what: "the ZeRO gradient buffer")
        shards = shardRanges(count: count, parts: comm.size)
        shard = shards[comm.rank]
        gradShard = FloatBuffer(count: shard.count)
        // bucket edges on page boundaries (multiples of 1024 floats from the start), so discarding a
        // bucket returns all of its pages; the top bucket takes the remainder
        let b = max(1024, bucketFloats / 1024 * 1024)
        var r: [Range<Int>] = [], hi = count
        while hi > 0 { let lo = (hi - 1) / b * b; r.append(lo..<hi); hi = lo }
        buckets = r
        recv = FloatBuffer(count: min(b, count))
    }

    public func beginStep() { gradShard.zero(); grads.discardAll() }

    /// Before each micro-batch's backward.
    public func begin() { enqueued = 0 }

    /// Every gradient at flat offset ≥ `offset` is final: its buckets go to the communication thread.
    public func ready(from offset: Int) {
        while enqueued < buckets.count && buckets[enqueued].lowerBound >= offset {
            let b = buckets[enqueued]
            enqueued += 1
            thread.submit { [unowned self] in try self.reduce(b) }
        }
    }

    /// Runs on the communication thread.
    private func reduce(_ b: Range<Int>) throws {
        let parts = piecesOf(b, shards: shards), mine = parts[comm.rank]
        let src = UnsafePointer(grads.pointer + b.lowerBound)
        if bf16 { try comm.reduceScatterSumBF16(src, recv.pointer, shards: parts) }
        else { try comm.reduceScatterSum(src, recv.pointer, shards: parts) }
        let dst = gradShard.pointer + (b.lowerBound + mine.lowerBound - shard.lowerBound), r = recv.pointer
        for i in 0..<mine.count { dst[i] += r[i] }
        grads.discard(b)
        bytesReduced += b.count * (bf16 ? 2 : 4)
    }

    /// After a micro-batch's backward: sends what is left and waits for every bucket.
    public func finish() throws {
        ready(from: 0)
        try thread.drain()
    }
}
