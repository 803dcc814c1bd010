import Foundation

/// Sums the flat gradient over ranks in fixed buckets, started while backward is still running.
///
/// Backward finishes parameters from the top of the flat buffer down (output head, ln_f, the last block,
/// ..., the first block, the embedding), so buckets are cut from the top: bucket k covers
/// [count − (k+1)·B, count − k·B). When backward reports that every gradient at offset ≥ o is final,
/// the buckets above o go to a communication thread, which allreduces them in order while the main
/// thread computes the rest. Every rank uses the same buckets in the same order (MPI needs that), and
/// the main thread makes no MPI call until `finish` (MPI_THREAD_SERIALIZED).
public final class GradientSync: @unchecked Sendable {
    let comm: Communicator
    public let buckets: [Range<Int>]
    private var grads: UnsafeMutablePointer<Float>?
    private var enqueued = 0
    private let cond = NSCondition()
    private var queue: [Range<Int>] = []
    private var completed = 0
    private var failure: Error?
    private var stopping = false
    private var thread: Thread?
    /// --grad-reduce-dtype bf16: each bucket is reduce-scattered with bf16 on the wire (summed in fp32 by
    /// its owners) and the sums allgathered in fp32, instead of one fp32 allreduce.
    let bf16: Bool
    private let shards: [Range<Int>]
    private let recv: FloatBuffer?

    public init(comm: Communicator, count: Int, bucketFloats: Int, bf16: Bool = false) {
        self.comm = comm; self.bf16 = bf16
        shards = shardRanges(count: count, parts: comm.size)
        recv = bf16 ? FloatBuffer(count: min(max(1, bucketFloats), count)) : nil
        let b = max(1, bucketFloats)
        var r: [Range<Int>] = []
        var hi = count
        while hi > 0 { r.append(max(0, hi - b)..<hi); hi -= b }
        buckets = r
        let t = Thread { [unowned self] in self.loop() }
        t.name = "gift-gradient-sync"
        thread = t
        t.start()
    }

    deinit {
        cond.lock(); stopping = true; cond.signal(); cond.unlock()
    }

    /// Gradient bytes handed to allreduce so far (the log reports them per step).
    public private(set) var bytesReduced = 0

    private func loop() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if stopping && queue.isEmpty { cond.unlock(); return }
            let r = queue.removeFirst()
            let g = grads!
            cond.unlock()
            var err: Error?
            do { try reduce(g, r) } catch { err = error }
            cond.lock()
            completed += 1
            bytesReduced += r.count * (bf16 ? 2 : 4)
            if let err, failure == nil { failure = err }
            cond.broadcast()
            cond.unlock()
        }
    }

    private func reduce(_ g: UnsafeMutablePointer<Float>, _ r: Range<Int>) throws {
        guard let recv else { return try comm.allreduceSum(g + r.lowerBound, count: r.count) }
        let parts = piecesOf(r, shards: shards), mine = parts[comm.rank]
        try comm.reduceScatterSumBF16(g + r.lowerBound, recv.pointer, shards: parts)
        (g + r.lowerBound + mine.lowerBound).update(from: recv.pointer, count: mine.count)
        try comm.allgather(g + r.lowerBound, shards: parts)
    }

    /// Call before the last micro-batch's backward.
    public func begin(_ g: UnsafeMutablePointer<Float>) {
        cond.lock()
        grads = g; enqueued = 0; completed = 0; failure = nil; queue = []
        cond.unlock()
    }

    /// Every gradient at offset ≥ `offset` is final.
    public func ready(from offset: Int) {
        cond.lock()
        while enqueued < buckets.count && buckets[enqueued].lowerBound >= offset {
            queue.append(buckets[enqueued]); enqueued += 1
        }
        cond.signal()
        cond.unlock()
    }

    /// Sends what is left and waits for every bucket; returns the seconds spent waiting.
    public func finish() throws -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        ready(from: 0)
        cond.lock()
        while completed < buckets.count && failure == nil { cond.wait() }
        let f = failure
        cond.unlock()
        if let f { throw f }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
