import Foundation
import XCTest
@testable import GiftCore

/// `--group-by-length`: global batches of similar length (megabatches sorted, batches shuffled), the
/// padding fraction in the log and metrics, and the same losses on 1 and 2 ranks.
final class GroupByLengthTests: XCTestCase {
    /// Lengths like chat data: most short, a long tail (deterministic).
    static func lengths(_ n: Int, seed: UInt64 = 3) -> [Int] {
        let r = CounterRNG(seed, 0x4C45_4E)
        return (0..<n).map { i in
            let u = r.uniform(UInt64(i))
            return 4 + Int(40 * u * u * u)   // 4...44, skewed short
        }
    }

    /// Padding of the batches of `order` (each padded to its longest + 1 EOS, as training pads).
    static func padFraction(_ order: [Int], lengths: [Int], batch: Int) -> Double {
        var pad = 0, total = 0
        for b in 0..<(order.count / batch) {
            let ls = order[(b * batch)..<((b + 1) * batch)].map { lengths[$0] }
            let L = ls.max()! + 1
            pad += ls.reduce(0) { $0 + L - $1 }; total += L * batch
        }
        return Double(pad) / Double(total)
    }

    func testGroupedOrderIsAPermutationOfSortedMegabatches() {
        let ls = Self.lengths(1000), batch = 8
        let g = EpochOrder(lengths: ls, batch: batch, seed: 7, epoch: 2, megabatch: 5).order
        XCTAssertEqual(g.sorted(), Array(0..<1000), "a permutation")
        XCTAssertEqual(g, EpochOrder(lengths: ls, batch: batch, seed: 7, epoch: 2, megabatch: 5).order, "deterministic")
        XCTAssertNotEqual(g, EpochOrder(lengths: ls, batch: batch, seed: 7, epoch: 3, megabatch: 5).order, "another epoch, another order")
        // every global batch comes from one megabatch of the plain shuffled order, sorted within it
        let base = EpochOrder(count: 1000, seed: 7, epoch: 2).order
        var megaOf = [Int](repeating: 0, count: 1000)
        for (pos, i) in base.enumerated() { megaOf[i] = pos / (batch * 5) }
        for b in 0..<(1000 / batch) {
            let items = Array(g[(b * batch)..<((b + 1) * batch)])
            XCTAssertEqual(Set(items.map { megaOf[$0] }).count, 1, "batch \(b) spans megabatches")
            XCTAssertEqual(items.map { ls[$0] }, items.map { ls[$0] }.sorted(by: >), "batch \(b) sorted longest first")
        }
        // and the batches are not in sorted order: the longest batch is not always first in its megabatch
        let firsts = (0..<(1000 / batch)).map { ls[g[$0 * batch]] }
        XCTAssertNotEqual(firsts, firsts.sorted(by: >))
        // grouping pads far less than a random order (deterministic draws: this is a fixed computation)
        let grouped = Self.padFraction(g, lengths: ls, batch: batch), plain = Self.padFraction(base, lengths: ls, batch: batch)
        print(String(format: "padding fraction: random order %.3f, grouped %.3f", plain, grouped))
        XCTAssertLessThan(grouped, 0.5 * plain)
    }

    /// Data of mixed lengths as token ids.
    func writeData(_ dir: URL, n: Int = 160) throws -> URL {
        let ls = Self.lengths(n, seed: 11), r = CounterRNG(5, 0xDA7A)
        var lines = ""
        for (i, L) in ls.enumerated() {
            let p = 1 + L / 4
            let ids = (0..<L).map { Int(r.bits(UInt64(i * 64 + $0)) % 60) }
            lines += "{\"prompt_ids\": \(ids.prefix(p).map { $0 }), \"response_ids\": \(Array(ids.dropFirst(p)))}\n"
        }
        let f = dir.appendingPathComponent("mixed.jsonl")
        try lines.write(to: f, atomically: true, encoding: .utf8)
        return f
    }

    func trainArgs(_ data: URL, out: URL, micro: Int, grouped: Bool) -> [String] {
        ["train", "--model", "tiny", "--data", data.path, "--max-steps", "8", "--lr", "3e-3", "--seed", "5",
         "--max-length", "48", "--micro-batch", "\(micro)", "--out", out.path] + (grouped ? ["--group-by-length"] : [])
    }

    func testPaddingReportedAndSameLossesOnTwoRanks() throws {
        let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        let dir = try temporaryDirectory(self)
        let data = try writeData(dir)
        let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
                   "OPENBLAS_NUM_THREADS": "1"]
        let plain = dir.appendingPathComponent("plain"), one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let p = try runGift(trainArgs(data, out: plain, micro: 16, grouped: false), env: env)
        XCTAssertEqual(p.status, 0, p.stderr)
        let a = try runGift(trainArgs(data, out: one, micro: 16, grouped: true), env: env)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stderr.contains("padding") && a.stderr.contains("(grouped by length)"), a.stderr)
        let b = try runProcess(mpirun, ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path]
                               + trainArgs(data, out: two, micro: 8, grouped: true), env: env)
        XCTAssertEqual(b.status, 0, b.stderr)
        let mp = try MetricsWriter.read(plain.appendingPathComponent("metrics.jsonl").path)
        let m1 = try MetricsWriter.read(one.appendingPathComponent("metrics.jsonl").path)
        let m2 = try MetricsWriter.read(two.appendingPathComponent("metrics.jsonl").path)
        func mean(_ m: [[String: Any]], _ k: String) -> Double {
            m.map { ($0[k] as! NSNumber).doubleValue }.reduce(0, +) / Double(m.count)
        }
        print(String(format: "pad_fraction: plain %.3f, grouped %.3f", mean(mp, "pad_fraction"), mean(m1, "pad_fraction")))
        XCTAssertLessThan(mean(m1, "pad_fraction"), 0.6 * mean(mp, "pad_fraction"))
        XCTAssertLessThan(mean(m1, "tokens"), mean(mp, "tokens"))
        // the same global batches on 1 and 2 ranks: identical padding and masks, losses within the
        // summation-order trajectory bound (ErrorBounds.swift)
        XCTAssertEqual(m1.count, m2.count)
        let tol = SummationOrderTrajectory(config: try ModelConfig.preset("tiny"), seqLen: 48, globalTokens: 16 * 48)
            .tolerances(reference: m1)
        for (x, y) in zip(m1, m2) {
            let step = (x["step"] as! NSNumber).intValue
            for k in ["pad_fraction", "tokens", "masked_tokens"] {
                XCTAssertEqual((x[k] as! NSNumber).doubleValue, (y[k] as! NSNumber).doubleValue, "step \(step) \(k)")
            }
            let u = (x["loss"] as! NSNumber).doubleValue, v = (y["loss"] as! NSNumber).doubleValue
            XCTAssertEqual(u, v, accuracy: tol[step]!.loss, "step \(step) loss")
        }
    }
}
