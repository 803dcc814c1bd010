import Foundation
import XCTest
@testable import GiftCore

/// `gift train`'s memory check: sizes with suffixes, the order of the suggestions (a higher ZeRO stage,
/// then recompute, then more ranks), each verified against plans evaluated here, and the refusal of a
/// real `gift train` before it writes anything.
final class MemoryFitTests: XCTestCase {
    func settings(ranks: Int = 2, zero: Int = 0, recompute: Bool = false, microBatch: Int = 8, seq: Int = 256) -> Plan.Settings {
        var s = Plan.Settings()
        s.ranks = ranks; s.zero = zero; s.recompute = recompute; s.microBatch = microBatch; s.seqLen = seq
        return s
    }
    func total(_ c: ModelConfig, _ s: Plan.Settings) throws -> Int { try Plan(config: c, s).totalBytes }

    func testParseBytes() {
        XCTAssertEqual(MemoryFit.parseBytes("8G"), 8 << 30)
        XCTAssertEqual(MemoryFit.parseBytes("512M"), 512 << 20)
        XCTAssertEqual(MemoryFit.parseBytes("512MB"), 512 << 20)
        XCTAssertEqual(MemoryFit.parseBytes("1.5GiB"), 3 << 29)
        XCTAssertEqual(MemoryFit.parseBytes("64k"), 64 << 10)
        XCTAssertEqual(MemoryFit.parseBytes("2T"), 2 << 40)
        XCTAssertEqual(MemoryFit.parseBytes("123456"), 123_456)
        for bad in ["", "G", "8X", "-1G", "0", "1e30G", "eight"] { XCTAssertNil(MemoryFit.parseBytes(bad), bad) }
    }

    /// Between ZeRO 1 and ZeRO 2 (the model dominates): the suggestion is --zero 2, not 3 or recompute.
    func testHigherStageFirst() throws {
        let c = try ModelConfig.preset("base")
        let s = settings(microBatch: 1, seq: 64)
        let p0 = try Plan(config: c, s)
        let z1 = try total(c, settings(zero: 1, microBatch: 1, seq: 64)), z2 = try total(c, settings(zero: 2, microBatch: 1, seq: 64))
        XCTAssertGreaterThan(z1, z2)
        let sug = try XCTUnwrap(MemoryFit.suggestion(p0, limit: z2))
        XCTAssertEqual(sug.change, "--zero 2")
        XCTAssertEqual(sug.plan.totalBytes, z2)
        // on 4 ranks, a limit that only ZeRO 3 meets: the lowest stage that fits is 3 (on 2 ranks ZeRO 3's
        // export gather of the whole model outweighs its sharded parameters)
        let q0 = try Plan(config: c, settings(ranks: 4, microBatch: 1, seq: 64))
        let q2 = try total(c, settings(ranks: 4, zero: 2, microBatch: 1, seq: 64))
        let q3 = try total(c, settings(ranks: 4, zero: 3, microBatch: 1, seq: 64))
        XCTAssertLessThan(q3, q2)
        XCTAssertEqual(try MemoryFit.suggestion(q0, limit: q3)?.change, "--zero 3")
        // a plan that fits needs no change: check passes
        XCTAssertNoThrow(try MemoryFit.check(p0, limit: MemoryFit.Limit(bytes: p0.totalBytes, source: "test")))
    }

    /// Activations dominate (small model, long micro-batch): no stage fits, recompute at the same stage does.
    /// With checkpoints during the run (`checkpointEvery` 1): their snapshot is then held beside ZeRO-1's
    /// reduce-scatter temporary, which makes ZeRO 1 the larger stage below.
    func testRecomputeWhenNoStageFits() throws {
        func ck(_ s: Plan.Settings) -> Plan.Settings { var s = s; s.checkpointEvery = 1; return s }
        let c = try ModelConfig.preset("small")
        let p0 = try Plan(config: c, ck(settings(microBatch: 8, seq: 512)))
        let z3 = try total(c, ck(settings(zero: 3, microBatch: 8, seq: 512)))
        let r0 = try total(c, ck(settings(zero: 0, recompute: true, microBatch: 8, seq: 512)))
        XCTAssertLessThan(r0, z3, "the premise: recompute saves more than ZeRO 3 here")
        let sug = try XCTUnwrap(MemoryFit.suggestion(p0, limit: r0))
        XCTAssertEqual(sug.change, "--recompute blocks")
        // below ZeRO 0 with recompute: recompute at the lowest higher stage that fits (ZeRO 1 holds more
        // than ZeRO 0 on 2 ranks: MPI's full-vector temporary and the shard beside the full gradient)
        let r1 = try total(c, ck(settings(zero: 1, recompute: true, microBatch: 8, seq: 512)))
        let r2 = try total(c, ck(settings(zero: 2, recompute: true, microBatch: 8, seq: 512)))
        XCTAssertGreaterThan(r1, r0)
        XCTAssertLessThan(r2, r0)
        XCTAssertEqual(try MemoryFit.suggestion(p0, limit: r2)?.change, "--zero 2 --recompute blocks")
    }

    /// Below every stage with recompute on 2 ranks: the fewest ranks at ZeRO 3 that fit; recompute only
    /// where it takes fewer ranks.
    func testMoreRanksLast() throws {
        // the model dominates: recompute saves too little to change the rank count
        let c = try ModelConfig.preset("base")
        let p0 = try Plan(config: c, settings(microBatch: 1, seq: 64))
        let at5 = try total(c, settings(ranks: 5, zero: 3, microBatch: 1, seq: 64))
        let at4 = try total(c, settings(ranks: 4, zero: 3, recompute: true, microBatch: 1, seq: 64))
        XCTAssertGreaterThan(at4, at5)
        let sug = try XCTUnwrap(MemoryFit.suggestion(p0, limit: at5))
        XCTAssertEqual(sug.change, "--zero 3 on 5 ranks, each with as much memory")
        XCTAssertEqual(sug.plan.ranks, 5)
        XCTAssertEqual(sug.plan.totalBytes, at5)
        // activations dominate: recompute cuts the rank count, so it is part of the suggestion
        let s = try ModelConfig.preset("small")
        let q = try Plan(config: s, settings(microBatch: 8, seq: 512))
        let r6 = try total(s, settings(ranks: 6, zero: 3, recompute: true, microBatch: 8, seq: 512))
        let r5 = try total(s, settings(ranks: 5, zero: 3, recompute: true, microBatch: 8, seq: 512))
        let plain = try total(s, settings(ranks: 1 << 16, zero: 3, microBatch: 8, seq: 512))
        XCTAssertGreaterThan(r5, r6)
        XCTAssertGreaterThan(plain, r6, "the premise: without recompute no rank count reaches this limit")
        XCTAssertEqual(try MemoryFit.suggestion(q, limit: r6)?.change, "--zero 3 --recompute blocks on 6 ranks, each with as much memory")
    }

    /// Nothing fits: the message says so and names the activations; it also names the limit's source.
    func testNothingFits() throws {
        let c = try ModelConfig.preset("small")
        let p = try Plan(config: c, settings(microBatch: 8, seq: 512))
        XCTAssertNil(try MemoryFit.suggestion(p, limit: 1 << 20))
        XCTAssertThrowsError(try MemoryFit.check(p, limit: MemoryFit.Limit(bytes: 1 << 20, source: "--memory-limit 1M"))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("No ZeRO stage, recompute or rank count fits"), m)
            XCTAssertTrue(m.contains("--memory-limit 1M"), m)
            XCTAssertTrue(m.contains(MemoryInfo.format(p.totalBytes)), m)
        }
    }

    /// `gift train --memory-limit` below the plan stops with the plan's message and writes nothing; a bad
    /// size is refused naming the flag.
    func testTrainRefusesBeforeWriting() throws {
        let dir = try temporaryDirectory(self).appendingPathComponent("run")
        let args = ["train", "--model", "base", "--data", "countdown", "--task-examples", "64", "--micro-batch", "1",
                    "--max-length", "16", "--max-steps", "1", "--out", dir.path]
        let r = try runGift(args + ["--memory-limit", "3G"])
        XCTAssertNotEqual(r.status, 0)
        let c = try ModelConfig.preset("base")
        var s = settings(ranks: 1, microBatch: 1, seq: 16)
        s.runtimeBytes = 0
        let planned = try total(c, s)
        XCTAssertGreaterThan(planned, 3 << 30, "the premise: base's ZeRO 0 plan is above 3 GiB")
        XCTAssertTrue(r.stderr.contains("more than the 3.00 GiB a rank may use here (--memory-limit 3G)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("The cheapest change that fits: --zero 3 on "), r.stderr)
        XCTAssertTrue(r.stderr.contains("plan: "), "the plan is printed first\n" + r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path), "nothing may be written")
        let bad = try runGift(args + ["--memory-limit", "8X"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--memory-limit: field 'memory_limit' must be a size"), bad.stderr)
    }
}
