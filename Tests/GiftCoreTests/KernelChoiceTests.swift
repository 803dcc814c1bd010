import Foundation
import XCTest
@testable import GiftCore

/// `--gemm auto`: the kernels chosen by measurement once per run. The choice logic on injected timings
/// (a pure function of the table), the shapes timed, and whole runs: the table in the log, the choice
/// recorded and kept on resume, and every rank running rank 0's choice. Nothing here depends on which
/// candidate is faster on this machine: runs that need a given winner inject their timings
/// (GIFT_KERNEL_TIMINGS), and whatever OPENBLAS_CORETYPE says, OpenBLAS is one candidate.
final class KernelChoiceTests: XCTestCase {
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]

    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    let fp32 = [GemmKernels(backend: .openblas, precision: .fp32), GemmKernels(backend: .onednn, precision: .fp32)]

    /// A table whose candidate c runs every shape at rates[c] GFLOP/s (`classRates`: per class instead).
    func table(_ cands: [GemmKernels], rates: [[KernelChoice.ShapeClass: Double]], shapes: [KernelChoice.Shape]) -> KernelChoice.Table {
        KernelChoice.Table(candidates: cands, shapes: shapes,
                           seconds: rates.map { r in shapes.map { $0.timedFlops / (r[$0.shapeClass]! * 1e9) } })
    }
    func uniform(_ g: Double) -> [KernelChoice.ShapeClass: Double] { [.forward: g, .weightGrad: g, .inputGrad: g] }

    func testChoiceIsTheFastestOnInjectedTimings() throws {
        let shapes = KernelChoice.shapes(model: try ModelConfig.preset("small"), tokens: 1024)
        // the faster one wins, whichever it is
        XCTAssertEqual(KernelChoice.choose(table(fp32, rates: [uniform(100), uniform(200)], shapes: shapes)), 1)
        XCTAssertEqual(KernelChoice.choose(table(fp32, rates: [uniform(200), uniform(100)], shapes: shapes)), 0)
        // a near tie (within 2%) keeps the earlier candidate; just beyond it the faster one wins
        XCTAssertEqual(KernelChoice.choose(table(fp32, rates: [uniform(100), uniform(101.5)], shapes: shapes)), 0)
        XCTAssertEqual(KernelChoice.choose(table(fp32, rates: [uniform(100), uniform(103)], shapes: shapes)), 1)
        // the whole micro-batch counts, not one class: faster forward, slower gradients loses
        let t = table(fp32, rates: [[.forward: 300, .weightGrad: 100, .inputGrad: 100], uniform(150)], shapes: shapes)
        XCTAssertEqual(KernelChoice.choose(t), 1)
        XCTAssertEqual(t.gflops(0, .forward), 300, accuracy: 1e-9)
        XCTAssertEqual(t.overallGFlops(1), 150, accuracy: 1e-6)
        // the same table, the same choice (deterministic), and the log's table marks it
        XCTAssertEqual(KernelChoice.choose(t), KernelChoice.choose(t))
        let lines = t.lines(chosen: 1)
        XCTAssertEqual(lines.count, 4)
        // what a choice per shape class would give is reported (not used)
        XCTAssertEqual(t.perClass.picks, [0, 1, 1])
        XCTAssertTrue(lines[3].hasPrefix("per shape class the fastest are forward openblas fp32, weight grad onednn fp32, input grad onednn fp32"),
                      lines[3])
        XCTAssertTrue(lines[2].hasPrefix("onednn fp32") && lines[2].hasSuffix("<- chosen"), lines.joined(separator: "\n"))
        XCTAssertTrue(lines[1].contains("300.0 | 100.0 | 100.0"), lines[1])
        // bf16: three candidates, native fastest
        let bf = KernelChoice.candidates(precision: .bf16, forced: nil, shapes: shapes, onednn: true, nativeBF16: true)
        XCTAssertEqual(bf.map(\.summary), ["openblas bf16 (emulated)", "onednn bf16 (emulated)", "onednn bf16 (native)"])
        XCTAssertEqual(KernelChoice.choose(table(bf, rates: [uniform(300), uniform(320), uniform(700)], shapes: shapes)), 2)
        XCTAssertEqual(KernelChoice.choose(table(bf, rates: [uniform(300), uniform(320), uniform(200)], shapes: shapes)), 1)
    }

    func testCandidates() throws {
        let small = KernelChoice.shapes(model: try ModelConfig.preset("small"), tokens: 1024)
        let tiny = KernelChoice.shapes(model: try ModelConfig.preset("tiny"), tokens: 256)
        func names(_ p: Precision, _ f: BF16Kernel?, _ s: [KernelChoice.Shape], onednn: Bool = true, native: Bool = true) -> [String] {
            KernelChoice.candidates(precision: p, forced: f, shapes: s, onednn: onednn, nativeBF16: native).map(\.summary)
        }
        XCTAssertEqual(names(.fp32, nil, small), ["openblas fp32", "onednn fp32"])
        XCTAssertEqual(names(.fp32, nil, small, onednn: false), ["openblas fp32"])
        // every GEMM of the tiny model is under oneDNN's threshold: oneDNN would run OpenBLAS's kernels
        XCTAssertEqual(names(.fp32, nil, tiny), ["openblas fp32"])
        XCTAssertEqual(names(.bf16, nil, tiny), ["openblas bf16 (emulated)"])
        // no bf16 instructions: no native candidate; GIFT_BF16_KERNEL narrows the candidates to its kernel
        XCTAssertEqual(names(.bf16, nil, small, native: false), ["openblas bf16 (emulated)", "onednn bf16 (emulated)"])
        XCTAssertEqual(names(.bf16, .native, small, native: false), ["onednn bf16 (native)"])
        XCTAssertEqual(names(.bf16, .emulated, small), ["openblas bf16 (emulated)", "onednn bf16 (emulated)"])
    }

    /// Large GEMMs are timed scaled down in all dimensions alike, never below oneDNN's threshold when the
    /// real one is above it.
    func testShapesAreScaledDownProportionally() throws {
        let c = try ModelConfig.preset("llada-8b")
        let shapes = KernelChoice.shapes(model: c, tokens: 4096)
        XCTAssertEqual(shapes.count, 15)
        for s in shapes {
            let t = s.timed
            XCTAssertLessThanOrEqual(t.rows * t.inDim * t.outDim, KernelChoice.maxTimedWork, "\(s.layer)")
            XCTAssertGreaterThanOrEqual(t.rows * t.inDim * t.outDim, Gemm.onednnMinWork, "\(s.layer)")
            // proportions kept (within the rounding of each dimension)
            XCTAssertEqual(Double(t.outDim) / Double(t.inDim), Double(s.outDim) / Double(s.inDim), accuracy: 0.05 * Double(s.outDim) / Double(s.inDim) + 0.02)
        }
        let small = KernelChoice.shapes(model: try ModelConfig.preset("small"), tokens: 64)
        XCTAssertTrue(small.allSatisfy { $0.timed == ($0.rows, $0.inDim, $0.outDim) }, "small shapes are timed as they are")
    }

    /// A real measurement (no injected timings) gives a finite rate for every candidate (its time is
    /// printed, not asserted: it is the machine's); which one wins is this machine's business.
    func testMeasurementIsCheapAndComplete() throws {
        try Gemm.configure(gemm: "openblas")
        let shapes = KernelChoice.shapes(model: try ModelConfig.preset("small"), tokens: 1024)
        for p in Precision.allCases {
            let cands = KernelChoice.candidates(precision: p, forced: nil, shapes: shapes)
            let t0 = Date()
            let t = try KernelChoice.measure(candidates: cands, shapes: shapes)
            let secs = Date().timeIntervalSince(t0)
            print("KernelChoiceTests: small preset, 1024 tokens, \(p.rawValue), \(String(format: "%.2f", secs)) s:\n"
                  + t.lines(chosen: KernelChoice.choose(t)).joined(separator: "\n"))
            for c in cands.indices { XCTAssertTrue(t.overallGFlops(c).isFinite && t.overallGFlops(c) > 0) }
        }
    }

    func trainArgs(_ out: URL, steps: Int = 6, extra: [String] = []) -> [String] {
        // mini at 16 × 48 tokens: its block GEMMs are above oneDNN's threshold, so oneDNN is a candidate
        ["train", "--model", "mini", "--data", "countdown", "--task-examples", "200", "--max-steps", "\(steps)",
         "--lr", "3e-3", "--seed", "5", "--objective", "sft", "--max-length", "48", "--micro-batch", "16",
         "--out", out.path] + extra
    }

    func losses(_ dir: URL) throws -> [UInt64] {
        try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path).map { ($0["loss"] as! NSNumber).doubleValue.bitPattern }
    }

    func kernelsRecord(_ dir: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("kernels.json"))) as! [String: Any]
    }

    /// The table is in the log and in RUN_DIR/kernels.json, the choice in every checkpoint; a resumed
    /// run uses the recorded kernels without measuring, even where a new measurement would choose
    /// others, and so continues bit-identically.
    func testResumeKeepsTheRecordedKernels() throws {
        try XCTSkipUnless(Gemm.onednnAvailable, "oneDNN not installed: one candidate only")
        let straight = try temporaryDirectory(self), split = try temporaryDirectory(self)
        let onednnWins = "openblas fp32=100;onednn fp32=200", openblasWins = "openblas fp32=300;onednn fp32=100"
        func gift(_ a: [String], timings: String?) throws -> RunResult {
            var e = env; if let timings { e["GIFT_KERNEL_TIMINGS"] = timings }
            return try runGift(a, env: e)
        }
        let a = try gift(trainArgs(straight), timings: onednnWins)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stderr.contains("kernels: timed at "), a.stderr)
        XCTAssertTrue(a.stderr.contains("<- chosen") && a.stderr.contains("kernels: onednn fp32 chosen"), a.stderr)
        XCTAssertTrue(a.stderr.contains("matmuls: onednn fp32"), a.stderr)
        let rec = try kernelsRecord(straight)
        XCTAssertEqual((rec["kernels"] as? [String: Any])?["summary"] as? String, "onednn fp32")
        XCTAssertEqual(rec["source"] as? String, "injected timings")
        XCTAssertNotNil(rec["table"])

        let first = try gift(trainArgs(split, extra: ["--stop-at-step", "3"]), timings: onednnWins)
        XCTAssertEqual(first.status, 0, first.stderr)
        let man = try Manifest.read(split.appendingPathComponent("checkpoints/step-00000003/manifest.json").path)
        XCTAssertEqual(man.kernels, GemmKernels(backend: .onednn, precision: .fp32))
        let older = try temporaryDirectory(self).appendingPathComponent("run"), byName = try temporaryDirectory(self).appendingPathComponent("run")
        try FileManager.default.copyItem(at: split, to: older)
        try FileManager.default.copyItem(at: split, to: byName)
        // resumed where a measurement would now choose OpenBLAS: the recorded oneDNN runs
        let second = try gift(trainArgs(split, extra: ["--resume", "auto"]), timings: openblasWins)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("kernels: onednn fp32, recorded in"), second.stderr)
        XCTAssertFalse(second.stderr.contains("kernels: timed at "), second.stderr)
        XCTAssertTrue(second.stderr.contains("matmuls: onednn fp32"), second.stderr)
        XCTAssertEqual(try losses(straight), try losses(split))
        XCTAssertEqual(try Data(contentsOf: straight.appendingPathComponent("model/model.safetensors")),
                       try Data(contentsOf: split.appendingPathComponent("model/model.safetensors")))

        // an older checkpoint (no record): measured again, and said so
        let mp = older.appendingPathComponent("checkpoints/step-00000003/manifest.json").path
        var old = try Manifest.read(mp); old.kernels = nil
        try old.json(runConfig: old.runConfig.mapValues(\.foundation), model: old.modelConfig).write(to: URL(fileURLWithPath: mp))
        XCTAssertNil(try Manifest.read(mp).kernels)
        let third = try gift(trainArgs(older, extra: ["--resume", "auto"]), timings: openblasWins)
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stderr.contains("records no kernels (written by an older gift): measuring them"), third.stderr)
        XCTAssertTrue(third.stderr.contains("kernels: openblas fp32 chosen"), third.stderr)

        // --gemm by name: no measurement; over a different record, the log says bit-identity ends
        let forced = try gift(trainArgs(byName, extra: ["--resume", "auto", "--gemm", "openblas"]), timings: nil)
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertFalse(forced.stderr.contains("kernels: timed at "), forced.stderr)
        XCTAssertTrue(forced.stderr.contains("in place of the onednn fp32 recorded in") && forced.stderr.contains("no longer bit-identical"),
                      forced.stderr)
    }

    /// Only rank 0 measures, and every rank runs its choice: here rank 1 would choose the other backend
    /// (its own injected timings), yet both run rank 0's (the start handshake compares the kernels of
    /// every rank and would stop the job otherwise), and the result is the same as one rank's.
    func testRanksRunRankZerosChoice() throws {
        try skipUnlessMPI()
        try XCTSkipUnless(Gemm.onednnAvailable, "oneDNN not installed: one candidate only")
        let dir = try temporaryDirectory(self)
        for (zero, one, want) in [("openblas fp32=100;onednn fp32=200", "openblas fp32=300;onednn fp32=100", "onednn fp32"),
                                  ("openblas fp32=300;onednn fp32=100", "openblas fp32=100;onednn fp32=200", "openblas fp32")] {
            let out = dir.appendingPathComponent(want.replacingOccurrences(of: " ", with: "-"))
            func rank(_ timings: String) -> [String] {
                ["/usr/bin/env", "GIFT_KERNEL_TIMINGS=\(timings)", giftBinary.path] + trainArgs(out, steps: 2)
            }
            let r = try runProcess(mpirunURL, ["--oversubscribe", "--bind-to", "none", "-np", "1"] + rank(zero) + [":", "-np", "1"] + rank(one),
                                   env: env)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("kernels: \(want) chosen"), r.stderr)
            XCTAssertTrue(r.stderr.contains("matmuls: \(want)"), r.stderr)
            XCTAssertEqual(r.stderr.components(separatedBy: "kernels: timed at ").count, 2, "one rank measures: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("parameters identical on all 2 ranks"), r.stderr)
        }
    }

    /// GIFT_BF16_KERNEL=native with `--gemm auto`: oneDNN's native kernel is the one candidate (on a CPU
    /// without bf16 instructions it runs, slowly), nothing is timed.
    func testBF16KernelVariableNarrowsTheCandidates() throws {
        try XCTSkipUnless(Gemm.onednnAvailable, "oneDNN not installed")
        let out = try temporaryDirectory(self)
        var e = env; e["GIFT_BF16_KERNEL"] = "native"
        let r = try runGift(trainArgs(out, steps: 1, extra: ["--precision", "bf16"]), env: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("kernels: onednn bf16 (native), the only candidate here (GIFT_BF16_KERNEL=native)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("matmuls: onednn bf16 (native)"), r.stderr)
    }

    /// `--gemm openblas` keeps today's behaviour: nothing measured.
    func testExplicitBackendIsNotMeasured() throws {
        let out = try temporaryDirectory(self)
        let r = try runGift(trainArgs(out, steps: 1, extra: ["--gemm", "openblas"]), env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("kernels: timed at "), r.stderr)
        XCTAssertEqual((try kernelsRecord(out)["source"]) as? String, "--gemm openblas")
    }

    /// The machine's cache (`KernelCache`): a stored entry is read back as stored; a file that is not a
    /// cache, a malformed entry, or one that does not fit its key is ignored with a warning naming the
    /// file; at most `maxEntries` are kept, the newest.
    func testKernelCacheFileIsReadAsUntrusted() throws {
        let dir = try temporaryDirectory(self), file = dir.appendingPathComponent("sub/kernels.json").path
        let shapes = KernelChoice.shapes(model: try ModelConfig.preset("small"), tokens: 1024)
        let t = table(fp32, rates: [uniform(100), uniform(250)], shapes: shapes)
        var warnings: [String] = []
        let warn: (String) -> Void = { warnings.append($0) }
        XCTAssertNil(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count, at: file, warning: warn), "no file yet")
        KernelCache.store(key: "k", table: t, at: file, warning: warn)
        let hit = try XCTUnwrap(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count, at: file, warning: warn))
        XCTAssertEqual(hit.seconds, t.seconds, "stored and read back exactly (JSON keeps a Double's shortest repr)")
        XCTAssertEqual(KernelChoice.choose(KernelChoice.Table(candidates: fp32, shapes: shapes, seconds: hit.seconds)), 1)
        XCTAssertNil(KernelCache.lookup(key: "other", candidates: fp32, shapes: shapes.count, at: file, warning: warn))
        XCTAssertEqual(warnings, [])
        // the same key with other candidates or another shape count: not used, and said so
        XCTAssertNil(KernelCache.lookup(key: "k", candidates: [fp32[0]], shapes: shapes.count, at: file, warning: warn))
        XCTAssertNil(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count - 1, at: file, warning: warn))
        XCTAssertEqual(warnings.count, 2)
        XCTAssertTrue(warnings.allSatisfy { $0.contains(file) && $0.contains("measuring again") }, "\(warnings)")
        // a time that is not a positive finite number spoils its entry (and only it)
        var text = try String(contentsOfFile: file, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 1, \"x\": 0")
        let bad = #""bad" : {"candidates": ["openblas fp32", "onednn fp32"], "measured": "2026", "seconds": [[-1], [1]]},"#
        try text.replacingOccurrences(of: "\"entries\" : {", with: "\"entries\" : {" + bad).write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertNil(KernelCache.lookup(key: "bad", candidates: fp32, shapes: 1, at: file, warning: warn))
        XCTAssertNotNil(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count, at: file, warning: warn))
        // not a cache at all: ignored with a warning, and the next store replaces it
        for junk in ["not json", "[1, 2]", #"{"version": 2, "entries": {}}"#, String(repeating: " ", count: KernelCache.maxBytes + 1)] {
            try junk.write(toFile: file, atomically: true, encoding: .utf8)
            warnings = []
            XCTAssertNil(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count, at: file, warning: warn))
            XCTAssertEqual(warnings.count, 1, junk.prefix(20) + ": \(warnings)")
            XCTAssertTrue(warnings[0].contains(file), warnings[0])
        }
        KernelCache.store(key: "k", table: t, at: file, warning: warn)
        XCTAssertNotNil(KernelCache.lookup(key: "k", candidates: fp32, shapes: shapes.count, at: file, warning: warn))
        // bounded: the newest maxEntries kept
        for i in 0..<(KernelCache.maxEntries + 3) { KernelCache.store(key: "k\(i)", table: t, at: file, warning: warn) }
        XCTAssertEqual(KernelCache.read(file, warning: warn)?.count, KernelCache.maxEntries)
    }

    /// A fresh run takes the timings an earlier run on this machine stored, so it chooses as that run did
    /// (and trains bit-identically to it): proven by editing the stored timings to favour the other
    /// candidate, which the next run then chooses without timing anything. GIFT_KERNEL_CACHE=off measures.
    func testFreshRunsTakeTheMachinesStoredTimings() throws {
        try XCTSkipUnless(Gemm.onednnAvailable, "oneDNN not installed: one candidate only")
        let dir = try temporaryDirectory(self), cache = dir.appendingPathComponent("kernels.json").path
        var e = env; e["GIFT_KERNEL_CACHE"] = cache; e["GIFT_KERNEL_TIMINGS"] = ""
        let a = try runGift(trainArgs(dir.appendingPathComponent("a"), steps: 1), env: e)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stderr.contains("measured in") && a.stderr.contains("kept in \(cache) for the next runs"), a.stderr)
        let first = try XCTUnwrap(KernelCache.read(cache, warning: { XCTFail($0) }))
        XCTAssertEqual(first.count, 1)
        let (key, entry) = first.first!
        // make the candidate that lost win by far
        let chosen = try XCTUnwrap((try kernelsRecord(dir.appendingPathComponent("a"))["kernels"] as? [String: Any])?["summary"] as? String)
        let loser = try XCTUnwrap(entry.candidates.firstIndex { $0 != chosen })
        var seconds = entry.seconds
        for c in seconds.indices { seconds[c] = seconds[c].map { c == loser ? $0 / 100 : $0 * 100 } }
        KernelCache.store(key: key, table: KernelChoice.Table(candidates: entry.candidates.map { s in fp32.first { $0.summary == s }! },
                                                              shapes: KernelChoice.shapes(model: try ModelConfig.preset("mini"), tokens: 16 * 48),
                                                              seconds: seconds), at: cache, warning: { XCTFail($0) })
        let b = try runGift(trainArgs(dir.appendingPathComponent("b"), steps: 1), env: e)
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertTrue(b.stderr.contains("on this machine, kept in \(cache)"), b.stderr)
        XCTAssertFalse(b.stderr.contains("measured in"), b.stderr)
        XCTAssertTrue(b.stderr.contains("kernels: \(entry.candidates[loser]) chosen"), b.stderr)
        XCTAssertEqual((try kernelsRecord(dir.appendingPathComponent("b"))["source"]) as? String, "measured earlier on this machine")
        e["GIFT_KERNEL_CACHE"] = "off"
        let c = try runGift(trainArgs(dir.appendingPathComponent("c"), steps: 1), env: e)
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stderr.contains("measured in") && c.stderr.contains("GIFT_KERNEL_CACHE=off: not kept"), c.stderr)
    }
}
