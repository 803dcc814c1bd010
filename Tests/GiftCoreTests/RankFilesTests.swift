import Foundation
import XCTest
@testable import GiftCore

/// Files that differ between hosts: under ZeRO-3 each rank reads only its own shard of the model folder
/// and nothing is broadcast at the start, so the ranks compare a checksum of what each can read alike
/// (`FolderIdentity`: config, index, every weight file's size, header and a fixed sample of its data)
/// and stop together naming the rank, its host and the file. Real 2-rank `mpirun` jobs whose ranks see
/// two different folders behind one path (`--wdir` per rank, the same relative `--model`). And `gift
/// mpi-check` runs the bf16 collectives' staged rounds.
final class RankFilesTests: XCTestCase {
    let mpirun = mpirunURL, env = mpiTestEnvironment

    func initModel(_ out: URL, seed: Int, extra: [String] = []) throws {
        let r = try runGift(["init", "--preset", "tiny", "--seed", "\(seed)", "--out", out.path] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// Same config, other weights: only the sampled data differs; a copy is identical; a sharded folder
    /// adds its index; a flipped byte no sample covers is not seen (the documented limit).
    func testFolderIdentityComparesConfigHeadersAndSampledData() throws {
        let dir = try temporaryDirectory(self)
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b"), c = dir.appendingPathComponent("c")
        try initModel(a, seed: 1)
        try initModel(b, seed: 2)
        try FileManager.default.copyItem(at: a, to: c)
        let ia = try FolderIdentity(modelFolder: a.path), ib = try FolderIdentity(modelFolder: b.path)
        XCTAssertEqual(ia.items.map(\.file), ["config.json"] + Array(repeating: "model.safetensors", count: 3))
        XCTAssertEqual(try FolderIdentity(modelFolder: c.path).items, ia.items)
        let differing = zip(ia.items, ib.items).filter { $0.0.value != $0.1.value }.map(\.0.part)
        XCTAssertEqual(differing, [FolderIdentity.sampleDescription])
        let d = RankAgreement.firstDifference(ib.items, ia.items, place: ib.path)
        XCTAssertEqual(d, "\(b.path)/model.safetensors differs from rank 0's copy in its \(FolderIdentity.sampleDescription)")

        // a byte between two probes: unchanged size, header and samples (what the check cannot catch);
        // a byte inside a probe: caught
        let weights = c.appendingPathComponent("model.safetensors")
        let h = try SafetensorsHeader(path: weights.path)
        let ranges = FolderIdentity.sampleRanges(dataStart: h.dataStart, fileSize: h.fileSize)
        XCTAssertEqual(ranges.count, FolderIdentity.probes + 2)
        XCTAssertTrue(ranges.allSatisfy { $0.lowerBound >= h.dataStart && $0.upperBound <= h.fileSize && !$0.isEmpty })
        let gap = try XCTUnwrap((h.dataStart..<h.fileSize).first { i in !ranges.contains { $0.contains(i) } })
        func flip(_ at: Int) throws {
            var bytes = try Data(contentsOf: weights)
            bytes[at] ^= 0x40
            try bytes.write(to: weights)
        }
        try flip(gap)
        XCTAssertEqual(try FolderIdentity(modelFolder: c.path).items, ia.items, "byte \(gap) lies outside every sample")
        try flip(gap)
        try flip(ranges[5].lowerBound + 1)
        XCTAssertNotEqual(try FolderIdentity(modelFolder: c.path).items, ia.items)

        let s = dir.appendingPathComponent("sharded")
        try initModel(s, seed: 1, extra: ["--max-shard-bytes", "60000"])
        let is_ = try FolderIdentity(modelFolder: s.path)
        XCTAssertEqual(is_.items[1].file, "model.safetensors.index.json")
        XCTAssertGreaterThan(Set(is_.items.map(\.file)).count, 4)
        XCTAssertEqual(RankAgreement.firstDifference(is_.items, ia.items, place: is_.path),
                       "the files differ: \(s.path)/model.safetensors.index.json is read where rank 0 reads model.safetensors")

        let blob = RankAgreement.encode(host: "h", is_.items)
        let back = try XCTUnwrap(RankAgreement.decode(blob))
        XCTAssertEqual(back.0, "h"); XCTAssertEqual(back.1, is_.items)
        XCTAssertNil(RankAgreement.decode(Array(blob.dropLast())))
    }

    /// Two ranks, one relative --model path, each rank in its own working directory holding its own folder.
    func zeroThree(_ dir: URL, out: URL) throws -> (RunResult, TimeInterval) {
        func app(_ wdir: URL) -> [String] {
            ["-np", "1", "--wdir", wdir.path, giftBinary.path, "train", "--model", "m", "--data", "countdown",
             "--task-examples", "200", "--max-steps", "3", "--lr", "3e-3", "--seed", "5", "--max-length", "48",
             "--micro-batch", "4", "--eval-every", "0", "--zero", "3", "--out", out.path]
        }
        let t0 = Date()
        let r = try runProcess(mpirun, ["--oversubscribe", "--bind-to", "none"] + app(dir.appendingPathComponent("r0"))
                               + [":"] + app(dir.appendingPathComponent("r1")), env: env)
        return (r, Date().timeIntervalSince(t0))
    }

    func testZeroThreeRanksWithDifferentFilesStopNamingRankHostAndFile() throws {
        try skipUnlessMPI()
        let dir = try temporaryDirectory(self)
        let host = RankAgreement.hostName
        func errorLines(_ r: RunResult) -> [String] { r.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("error:") } }

        // other weights of the same config (another seed): caught by the sampled data
        try initModel(dir.appendingPathComponent("r0/m"), seed: 1)
        try initModel(dir.appendingPathComponent("r1/m"), seed: 2)
        let (r, seconds) = try zeroThree(dir, out: dir.appendingPathComponent("run-differ"))
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertLessThan(seconds, 60)
        let lines = errorLines(r)
        XCTAssertEqual(lines.count, 1, r.stderr)
        let line = lines.first ?? ""
        XCTAssertTrue(line.contains("the model differs between ranks: on rank 1 (host \(host))"), line)
        XCTAssertTrue(line.contains("m/model.safetensors differs from rank 0's copy in its tensor data at the sampled offsets"), line)
        XCTAssertTrue(line.contains("rank 0 is on host \(host)"), line)
        XCTAssertFalse(r.stderr.contains("MPI_ABORT"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run-differ/metrics.jsonl").path))

        // the same weights sharded on rank 1: other files
        try FileManager.default.removeItem(at: dir.appendingPathComponent("r1/m"))
        try initModel(dir.appendingPathComponent("r1/m"), seed: 1, extra: ["--max-shard-bytes", "60000"])
        let (s, _) = try zeroThree(dir, out: dir.appendingPathComponent("run-shards"))
        XCTAssertEqual(s.status, 1, s.stdout + s.stderr)
        XCTAssertEqual(errorLines(s).count, 1, s.stderr)
        XCTAssertTrue(s.stderr.contains("on rank 1 (host \(host)) the files differ: m/model.safetensors.index.json is read where rank 0 reads model.safetensors"), s.stderr)

        // identical copies behind the same path: the run trains
        try FileManager.default.removeItem(at: dir.appendingPathComponent("r1/m"))
        try FileManager.default.copyItem(at: dir.appendingPathComponent("r0/m"), to: dir.appendingPathComponent("r1/m"))
        let out = dir.appendingPathComponent("run-same")
        let (t, _) = try zeroThree(dir, out: out)
        XCTAssertEqual(t.status, 0, t.stdout + t.stderr)
        XCTAssertEqual(try stepLosses(out).count, 3)
    }

    /// `gift mpi-check` with GIFT_MPI_CHUNK below the transfer: the bf16 reduce-scatter and allgather run in
    /// staged rounds (named with their count), bit for bit equal to one round and to the values computed here.
    func testMPICheckRunsTheBF16StagedRounds() throws {
        try skipUnlessMPI()
        let count = 10007
        func check(ranks: Int, chunk: Int?, values: String) throws -> (stdout: String, results: [Data]) {
            let (stdout, dir) = try runMPICheck(self, ranks: ranks, chunk: chunk, count: count, values: values)
            return (stdout, try (0..<ranks).map { try Data(contentsOf: dir.appendingPathComponent("rank-\($0)-bf16.bin")) })
        }
        func expected(ranks: Int, me: Int, _ kind: CollectiveCheck.Values) -> Data {
            func v(_ r: Int, _ i: Int) -> Float { BFloat16.round(CollectiveCheck.value(rank: r, index: i, kind)) }
            let shards = shardRanges(count: count, parts: ranks)
            var d = Data()
            func add(_ a: [Float]) { a.withUnsafeBytes { d.append(contentsOf: $0) } }
            add(shards[me].map { i in (1..<ranks).reduce(v(0, i)) { $0 + v($1, i) } })
            add((0..<count).map { i in v(shards.firstIndex { $0.contains(i) }!, i) })
            return d
        }
        for (ranks, values) in [(2, "random"), (3, "exact")] {
            let kind = CollectiveCheck.Values(rawValue: values)!
            let one = try check(ranks: ranks, chunk: nil, values: values)
            let staged = try check(ranks: ranks, chunk: 300, values: values)
            let R = 300 / ranks, shard = (count + ranks - 1) / ranks, rounds = (shard + R - 1) / R
            for op in ["reduce-scatter", "allgather"] {
                XCTAssertTrue(staged.stdout.contains("bf16 \(op) \(count) floats in \(rounds) staged rounds of up to \(R) per rank: \(rounds) MPI calls"),
                              "\(ranks) ranks, \(op): \(staged.stdout)")
                XCTAssertTrue(one.stdout.contains("bf16 \(op) \(count) floats in 1 staged round of up to 4194304 per rank: 1 MPI calls"),
                              "\(ranks) ranks, \(op): \(one.stdout)")
            }
            XCTAssertGreaterThan(rounds, 10)
            for me in 0..<ranks {
                XCTAssertEqual(one.results[me], expected(ranks: ranks, me: me, kind), "\(ranks) ranks, rank \(me), one round")
                XCTAssertEqual(staged.results[me], one.results[me], "\(ranks) ranks, rank \(me): staged rounds differ")
            }
        }
    }
}
