import CMPIShim
import Foundation

/// What the training loop needs from its peers. The same loop runs on one process
/// (`SingleProcess`) or on every rank of an MPI job (`MPICommunicator`).
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over all ranks.
    func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ values: inout [Double]) throws
    /// ZeRO-1: the sum over ranks of `send` (count floats), this rank keeping its shard
    /// `shards[rank]` in `recv` (which has that shard's length).
    func reduceScatterSum(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws
    /// `reduceScatterSum` with bf16 on the wire (each rank's values rounded to bf16, summed in fp32 in
    /// rank order by the owner): `--grad-reduce-dtype bf16`.
    func reduceScatterSumBF16(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws
    /// ZeRO-1: every rank's shard of `buf` (count floats) copied into every rank's `buf`.
    func allgather(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws
    /// `allgather` with bf16 on the wire: every shard (this rank's too) rounded to bf16 in `buf`.
    func allgatherBF16(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws
    /// Rank `root`'s bytes to every rank.
    func broadcast(_ buf: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    func barrier() throws
    /// Stops every rank (after printing the message on this one).
    func abort(_ message: String) -> Never
}

public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ values: inout [Double]) throws {}
    public func reduceScatterSum(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        recv.update(from: send + shards[0].lowerBound, count: shards[0].count)
    }
    public func reduceScatterSumBF16(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        for i in 0..<shards[0].count { recv[i] = BFloat16.round(send[shards[0].lowerBound + i]) }
    }
    public func allgather(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {}
    public func allgatherBF16(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        BFloat16.roundInPlace(buf + shards[0].lowerBound, count: shards[0].count)
    }
    public func broadcast(_ buf: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {}
    public func barrier() throws {}
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}

/// MPI through the C shim. Allreduce goes in pieces of `pieceFloats` (a few MiB measured ~2x faster
/// than one large call between two ranks here). Counts and offsets are Int end to end: no MPI call gets
/// an int argument above `chunkLimit`, larger transfers go in rounds (the shim's header says how).
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var pieceFloats = 1 << 20
    /// The largest count or displacement one MPI call is given: Int32.max, or `GIFT_MPI_CHUNK` (elements;
    /// bytes for broadcast) to run the rounds with small buffers in tests.
    public var chunkLimit: Int

    /// Initialises MPI when this process was started by an MPI launcher; nil otherwise.
    public static func fromEnvironment() throws -> MPICommunicator? {
        guard gift_mpi_launched() != 0 else { return nil }
        let limit = try chunkLimit(from: ProcessInfo.processInfo.environment)
        let rc = gift_mpi_init()
        if rc != 0 { throw GiftError(.io, "MPI_Init_thread failed (code \(rc))") }
        return MPICommunicator(rank: Int(gift_mpi_rank()), size: Int(gift_mpi_size()), chunkLimit: limit)
    }

    /// `GIFT_MPI_CHUNK` when set (1...Int32.max), else Int32.max.
    static func chunkLimit(from env: [String: String]) throws -> Int {
        guard let s = env["GIFT_MPI_CHUNK"] else { return Int(Int32.max) }
        guard let v = Int(s), v >= 1, v <= Int(Int32.max) else {
            throw GiftError(.usage, "GIFT_MPI_CHUNK=\(s): expected an element count 1...\(Int32.max)")
        }
        return v
    }

    init(rank: Int, size: Int, chunkLimit: Int = Int(Int32.max)) {
        self.rank = rank; self.size = size; self.chunkLimit = chunkLimit
    }

    func check(_ rc: Int32, _ what: String) throws {
        if rc == -1 { throw GiftError(.io, "rank \(rank): \(what) failed (out of memory for its staging buffer)") }
        if rc != 0 { throw GiftError(.io, "rank \(rank): \(what) failed (MPI code \(rc))") }
    }
    public func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {
        try check(gift_mpi_allreduce_sum_f32(buf, count, pieceFloats, chunkLimit), "allreduce")
    }
    public func allreduceSum(_ values: inout [Double]) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { try check(gift_mpi_allreduce_sum_f64($0.baseAddress, n, chunkLimit), "allreduce") }
    }
    public func reduceScatterSum(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        try checkShards(shards, "reduce-scatter")
        let counts = shards.map { $0.count }
        try check(gift_mpi_reduce_scatter_sum_f32(send, recv, counts, chunkLimit), "reduce-scatter")
    }
    public func reduceScatterSumBF16(_ send: UnsafePointer<Float>, _ recv: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        try checkShards(shards, "bf16 reduce-scatter")
        let counts = shards.map { $0.count }
        try check(gift_mpi_reduce_scatter_sum_bf16(send, recv, counts, chunkLimit), "bf16 reduce-scatter")
    }
    public func allgather(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        try checkShards(shards, "allgather")
        let counts = shards.map { $0.count }, displs = shards.map { $0.lowerBound }
        try check(gift_mpi_allgather_f32(buf, counts, displs, chunkLimit), "allgather")
    }
    public func allgatherBF16(_ buf: UnsafeMutablePointer<Float>, shards: [Range<Int>]) throws {
        try checkShards(shards, "bf16 allgather")
        let counts = shards.map { $0.count }, displs = shards.map { $0.lowerBound }
        try check(gift_mpi_allgather_bf16(buf, counts, displs, chunkLimit), "bf16 allgather")
    }
    /// One shard per rank, back to back from 0 (what the shim's reduce-scatter assumes).
    func checkShards(_ shards: [Range<Int>], _ what: String) throws {
        guard shards.count == size, zip(shards, shards.dropFirst()).allSatisfy({ $0.upperBound == $1.lowerBound }),
              shards.first?.lowerBound == 0 else {
            throw GiftError(.usage, "rank \(rank): \(what): \(shards.count) shards for \(size) ranks, or not contiguous from 0")
        }
    }
    public func broadcast(_ buf: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try check(gift_mpi_broadcast_bytes(buf, bytes, Int32(root), chunkLimit), "broadcast")
    }
    public func barrier() throws { try check(gift_mpi_barrier(), "barrier") }
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: rank \(rank): \(message)\n".utf8))
        gift_mpi_abort(1)
        exit(1)
    }
    public func finalize() { _ = gift_mpi_finalize() }
}

/// Contiguous, nearly equal shards of `count` elements, one per rank (ZeRO, checkpoints).
public func shardRanges(count: Int, parts: Int) -> [Range<Int>] {
    (0..<parts).map { (count * $0 / parts)..<(count * ($0 + 1) / parts) }
}

/// Each shard's part of `piece` (a bucket or a block), relative to the piece's start: contiguous from 0,
/// empty for ranks that own none of it, as the collectives over a piece take them.
public func piecesOf(_ piece: Range<Int>, shards: [Range<Int>]) -> [Range<Int>] {
    shards.map { s in
        let lo = min(max(s.lowerBound, piece.lowerBound), piece.upperBound)
        let hi = min(max(s.upperBound, piece.lowerBound), piece.upperBound)
        return (lo - piece.lowerBound)..<(max(lo, hi) - piece.lowerBound)
    }
}
