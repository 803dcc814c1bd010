import CMPIShim
import Foundation

/// `gift mpi-check`: every collective the trainer uses (fp32 and bf16), run on known inputs across the ranks of a job,
/// its results checked and returned (so a test can compare runs with different chunk limits byte for byte).
public enum CollectiveCheck {
    /// Inputs: `exact` values are multiples of 1/64 below 64 in magnitude, so every sum over up to
    /// 2^17 ranks is exact in Float and every summation order gives the same bits; `random` values are
    /// uniform in (-1, 1) (bit-identical sums only on 2 ranks, where a + b = b + a).
    public enum Values: String, Sendable { case exact, random }

    /// Rank `rank`'s input element `i`.
    public static func value(rank: Int, index i: Int, _ kind: Values) -> Float {
        let bits = CounterRNG(0x6d70_6963, UInt64(rank)).bits(UInt64(i))
        switch kind {
        case .exact: return Float(Int(bits % 8191) - 4095) / 64
        case .random: return Float(Double(bits >> 11) * 0x1.0p-52 - 1)
        }
    }

    public struct Outcome {
        /// One line per collective: what ran, how many MPI calls it took, seconds, and any mismatch.
        public var lines: [String] = []
        /// Wrong elements over all collectives (sums checked against float64 ones with exact values only).
        public var mismatches = 0
        /// This rank's results, concatenated: allreduce (count floats), allreduce of doubles (count),
        /// reduce-scatter (this rank's shard), allgather (count floats), broadcast (4·count bytes).
        public var results = Data()
        /// This rank's results of the bf16 collectives, concatenated: bf16 reduce-scatter (this rank's shard),
        /// bf16 allgather (count floats). Kept apart from `results`, whose layout callers know.
        public var bf16Results = Data()
    }

    /// Values per rank per round of the staged bf16 collectives on `comm` (they always go in rounds through
    /// a staging buffer of ranks × this many values; GIFT_MPI_CHUNK below a transfer makes several).
    public static func bf16Round(_ comm: Communicator) -> Int {
        let limit = (comm as? MPICommunicator)?.chunkLimit ?? Int(Int32.max)
        return Int(gift_mpi_bf16_round(limit, Int32(comm.size)))
    }

    public static func run(comm: Communicator, count n: Int, values: Values) throws -> Outcome {
        let R = comm.size, me = comm.rank
        let shards = shardRanges(count: n, parts: R)
        var out = Outcome()
        func v(_ r: Int, _ i: Int) -> Float { value(rank: r, index: i, values) }
        /// The float64 sum over ranks; exact values make it the float result too.
        func sum(_ i: Int) -> Float { Float((0..<R).reduce(0.0) { $0 + Double(v($1, i)) }) }
        /// `body` returns its wrong elements, nil when unchecked (random sums).
        func timed(_ what: String, _ body: () throws -> Int?) rethrows {
            let c0 = gift_mpi_calls(), t0 = Date()
            let bad = try body()
            let s = Date().timeIntervalSince(t0)
            out.mismatches += bad ?? 0
            let verdict = bad.map { $0 == 0 ? "correct" : "\($0) wrong elements" } ?? "not checked"
            out.lines.append(String(format: "%@: %ld MPI calls, %.3f s, %@", what, gift_mpi_calls() - c0, s, verdict))
        }
        func keep<T>(_ a: [T]) { a.withUnsafeBytes { out.results.append(contentsOf: $0) } }
        let exact = values == .exact

        var a = (0..<n).map { v(me, $0) }
        try timed("allreduce \(n) floats") {
            try a.withUnsafeMutableBufferPointer { try comm.allreduceSum($0.baseAddress!, count: n) }
            return exact ? (0..<n).filter { a[$0] != sum($0) }.count : nil
        }
        keep(a)
        var d = (0..<n).map { Double(v(me, $0)) }
        try timed("allreduce \(n) doubles") {
            try comm.allreduceSum(&d)
            return exact ? (0..<n).filter { d[$0] != Double(sum($0)) }.count : nil
        }
        keep(d)
        let send = (0..<n).map { v(me, $0) }
        var recv = [Float](repeating: .nan, count: shards[me].count)
        try timed("reduce-scatter \(n) floats") {
            try send.withUnsafeBufferPointer { s in
                try recv.withUnsafeMutableBufferPointer { try comm.reduceScatterSum(s.baseAddress!, $0.baseAddress!, shards: shards) }
            }
            return exact ? shards[me].filter { recv[$0 - shards[me].lowerBound] != sum($0) }.count : nil
        }
        keep(recv)
        var g = [Float](repeating: .nan, count: n)
        for i in shards[me] { g[i] = v(me, i) }
        try timed("allgather \(n) floats") {
            try g.withUnsafeMutableBufferPointer { try comm.allgather($0.baseAddress!, shards: shards) }
            let owner = { (i: Int) in shards.firstIndex { $0.contains(i) }! }
            return (0..<n).filter { g[$0].bitPattern != v(owner($0), $0).bitPattern }.count
        }
        keep(g)
        let root = R - 1
        var b = (0..<n).map { me == root ? v(root, $0) : Float.nan }
        try timed("broadcast \(4 * n) bytes from rank \(root)") {
            try b.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: root) }
            return (0..<n).filter { b[$0].bitPattern != v(root, $0).bitPattern }.count
        }
        keep(b)

        // The bf16 collectives (--grad-reduce-dtype bf16, ZeRO's bf16 gathers): staged rounds of `round`
        // values per rank. Both are checked bit for bit with any values: each rank's values rounded to bf16
        // (nearest even) and, for the reduce-scatter, summed in fp32 in rank order 0, 1, ... by the owner.
        let round = bf16Round(comm)
        let rounds = ((shards.map(\.count).max() ?? 0) + round - 1) / round
        func staged(_ what: String) -> String {
            "bf16 \(what) \(n) floats in \(rounds) staged round\(rounds == 1 ? "" : "s") of up to \(round) per rank"
        }
        func keep16<T>(_ a: [T]) { a.withUnsafeBytes { out.bf16Results.append(contentsOf: $0) } }
        func roundedSum(_ i: Int) -> Float {
            (1..<R).reduce(BFloat16.round(v(0, i))) { $0 + BFloat16.round(v($1, i)) }
        }
        var recv16 = [Float](repeating: .nan, count: shards[me].count)
        try timed(staged("reduce-scatter")) {
            try send.withUnsafeBufferPointer { s in
                try recv16.withUnsafeMutableBufferPointer { try comm.reduceScatterSumBF16(s.baseAddress!, $0.baseAddress!, shards: shards) }
            }
            return shards[me].filter { recv16[$0 - shards[me].lowerBound].bitPattern != roundedSum($0).bitPattern }.count
        }
        keep16(recv16)
        var g16 = [Float](repeating: .nan, count: n)
        for i in shards[me] { g16[i] = v(me, i) }
        try timed(staged("allgather")) {
            try g16.withUnsafeMutableBufferPointer { try comm.allgatherBF16($0.baseAddress!, shards: shards) }
            let owner = { (i: Int) in shards.firstIndex { $0.contains(i) }! }
            return (0..<n).filter { g16[$0].bitPattern != BFloat16.round(v(owner($0), $0)).bitPattern }.count
        }
        keep16(g16)
        return out
    }
}
