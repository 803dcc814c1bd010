import Foundation
import XCTest
@testable import GiftCore

/// MPI counts above Int32: every collective goes in rounds once a count or displacement exceeds the chunk
/// limit. Real `mpirun` jobs of `gift mpi-check` with the limit lowered to a few hundred elements
/// (GIFT_MPI_CHUNK) run those rounds; their results must equal the one-call results byte for byte and the
/// float64 sums element for element.
final class MPIChunkTests: XCTestCase {
    /// Prime, so shards are uneven and no round ends on a shard boundary.
    let count = 10007
    let chunk = 300

    override func setUpWithError() throws {
        try skipUnlessMPI()
    }

    /// Runs the check on `ranks` ranks; returns each rank's result bytes and the MPI call count per collective.
    func check(ranks: Int, chunk: Int?, values: String) throws -> (results: [Data], calls: [String: Int]) {
        let (stdout, dir) = try runMPICheck(self, ranks: ranks, chunk: chunk, count: count, values: values)
        XCTAssertTrue(stdout.contains("chunk limit \(chunk ?? Int(Int32.max)) elements"), stdout)
        var calls: [String: Int] = [:]
        for line in stdout.split(separator: "\n") {
            let parts = line.components(separatedBy: ": ")
            guard parts.count > 1, let n = Int(parts[1].split(separator: " ")[0]) else { continue }
            calls[String(parts[0].split(separator: " ")[0]) + (parts[0].contains("doubles") ? " f64" : "")] = n
        }
        let results = try (0..<ranks).map { try Data(contentsOf: dir.appendingPathComponent("rank-\($0).bin")) }
        return (results, calls)
    }

    /// Rank `me`'s expected results, computed here in float64 from the inputs (exact values: exact sums).
    func expected(ranks: Int, me: Int) -> Data {
        func v(_ r: Int, _ i: Int) -> Float { CollectiveCheck.value(rank: r, index: i, .exact) }
        let sums = (0..<count).map { i in (0..<ranks).reduce(0.0) { $0 + Double(v($1, i)) } }
        let shards = shardRanges(count: count, parts: ranks)
        var d = Data()
        func add<T>(_ a: [T]) { a.withUnsafeBytes { d.append(contentsOf: $0) } }
        add(sums.map { Float($0) })
        add(sums)
        add(shards[me].map { Float(sums[$0]) })
        add((0..<count).map { i in v(shards.firstIndex { $0.contains(i) }!, i) })
        add((0..<count).map { v(ranks - 1, $0) })
        return d
    }

    func testChunkedCollectivesEqualOneCallOnTwoAndThreeRanks() throws {
        for ranks in [2, 3] {
            let one = try check(ranks: ranks, chunk: nil, values: "exact")
            let rounds = try check(ranks: ranks, chunk: chunk, values: "exact")
            for me in 0..<ranks {
                XCTAssertEqual(one.results[me], expected(ranks: ranks, me: me), "\(ranks) ranks, rank \(me), one call per collective")
                XCTAssertEqual(rounds.results[me], one.results[me], "\(ranks) ranks, rank \(me): chunked results differ")
            }
            // one call each without a limit; with it, at least one round per `chunk` elements of the largest
            // count (the allgather stages ranks × R floats with R ≤ chunk / ranks, so it needs more)
            let shard = (count + ranks - 1) / ranks
            for (op, unchunked, least) in [("allreduce", 1, count / chunk), ("allreduce f64", 1, count / chunk),
                                            ("reduce-scatter", 1, shard / chunk), ("allgather", 1, shard / (chunk / ranks)),
                                            ("broadcast", 1, 4 * count / chunk)] {
                XCTAssertEqual(one.calls[op], unchunked, "\(op) on \(ranks) ranks: \(one.calls)")
                XCTAssertGreaterThanOrEqual(rounds.calls[op] ?? 0, least, "\(op) on \(ranks) ranks: \(rounds.calls)")
            }
        }
    }

    /// Arbitrary floats on 2 ranks: a + b = b + a, so whatever algorithm MPI picks for a message size,
    /// chunked sums are bit-identical to unchunked ones.
    func testRandomValuesBitIdenticalOnTwoRanks() throws {
        let one = try check(ranks: 2, chunk: nil, values: "random")
        let rounds = try check(ranks: 2, chunk: 257, values: "random")
        XCTAssertEqual(one.results, rounds.results)
        XCTAssertGreaterThan(rounds.calls["reduce-scatter"] ?? 0, 1)
    }

    func testChunkLimitFromEnvironment() throws {
        XCTAssertEqual(try MPICommunicator.chunkLimit(from: [:]), Int(Int32.max))
        XCTAssertEqual(try MPICommunicator.chunkLimit(from: ["GIFT_MPI_CHUNK": "300"]), 300)
        for bad in ["0", "-5", "abc", "4294967296"] {
            XCTAssertThrowsError(try MPICommunicator.chunkLimit(from: ["GIFT_MPI_CHUNK": bad])) {
                XCTAssertTrue("\($0)".contains("GIFT_MPI_CHUNK=\(bad)"), "\($0)")
            }
        }
    }
}
