import Foundation
import XCTest
@testable import GiftCore

/// Sharded zstd checkpoints: bit-identical resume, resharding, crash safety, corruption, retention, export.
final class CheckpointTests: XCTestCase {
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]
    let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")

    func args(_ out: URL, micro: Int = 16, steps: Int = 12, extra: [String] = []) -> [String] {
        ["train", "--model", "tiny", "--data", "countdown", "--task-examples", "600", "--max-steps", "\(steps)",
         "--lr", "3e-3", "--seed", "5", "--objective", "gift", "--max-length", "48", "--micro-batch", "\(micro)",
         "--out", out.path] + extra
    }

    func gift(_ a: [String], extraEnv: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        var e = env; for (k, v) in extraEnv { e[k] = v }
        let r = try runGift(a, env: e)
        return r
    }

    func mpi(_ n: Int, _ a: [String]) throws -> RunResult {
        try runProcess(mpirun, ["-np", "\(n)", "--oversubscribe", "--bind-to", "none", giftBinary.path] + a, env: env)
    }

    func losses(_ dir: URL) throws -> [Double] {
        try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path).map { ($0["loss"] as! NSNumber).doubleValue }
    }

    func modelBytes(_ dir: URL) throws -> Data {
        try Data(contentsOf: dir.appendingPathComponent("model/model.safetensors"))
    }

    /// Train 12 steps straight, or 6, stop, resume, 6 more: bit-identical losses and parameters.
    func testResumeIsBitIdenticalOneRank() throws {
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        XCTAssertEqual(try gift(args(a)).status, 0)
        let first = try gift(args(b, extra: ["--stop-at-step", "6"]))
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try String(contentsOf: b.appendingPathComponent("checkpoints/latest")), "step-00000006\n")
        let second = try gift(args(b, extra: ["--resume", "auto"]))
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("resumed from"), second.stderr)
        XCTAssertEqual(try losses(a).map(\.bitPattern), try losses(b).map(\.bitPattern))
        XCTAssertEqual(try losses(b).count, 12)
        XCTAssertEqual(try modelBytes(a), try modelBytes(b))
    }

    /// 2 ranks: bit-identical resume; the same checkpoint resumed on 1 rank and on 4 ranks continues the
    /// same training within float tolerance.
    func testResumeTwoRanksAndReshard() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        XCTAssertEqual(try mpi(2, args(a, micro: 8)).status, 0)
        XCTAssertEqual(try mpi(2, args(b, micro: 8, extra: ["--stop-at-step", "6"])).status, 0)
        let fm = FileManager.default
        let c = try temporaryDirectory(self), d = try temporaryDirectory(self)
        for x in [c, d] {
            try fm.removeItem(at: x)
            try fm.copyItem(at: b, to: x)
        }
        let r2 = try mpi(2, args(b, micro: 8, extra: ["--resume", "auto"]))
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try losses(a).map(\.bitPattern), try losses(b).map(\.bitPattern))
        XCTAssertEqual(try modelBytes(a), try modelBytes(b))
        let r1 = try gift(args(c, micro: 16, extra: ["--resume", "auto"]))
        XCTAssertEqual(r1.status, 0, r1.stderr)
        XCTAssertTrue(r1.stderr.contains("written by 2 ranks, now 1"), r1.stderr)
        let r4 = try mpi(4, args(d, micro: 4, extra: ["--resume", "auto"]))
        XCTAssertEqual(r4.status, 0, r4.stderr)
        // Steps 1...6 of c and d are the lines the 2-rank run wrote (a resume keeps the metrics of the steps its
        // checkpoint holds), so they equal a's bit for bit. Steps 7...12 run on 1 or 4 ranks from the same
        // checkpoint: they differ from a's only in how each step's gradient sum is split over ranks, bounded by
        // `SummationOrderTrajectory` (ErrorBounds.swift) from step 7 on, with a's lr and grad_norm; n at
        // --max-length 48, 16 × 48 token rows per step.
        let la = try losses(a)
        let tol = SummationOrderTrajectory(config: try ModelConfig.preset("tiny"), seqLen: 48, globalTokens: 16 * 48)
            .tolerances(reference: try MetricsWriter.read(a.appendingPathComponent("metrics.jsonl").path), firstDiffering: 7)
        for other in [c, d] {
            let lo = try losses(other)
            XCTAssertEqual(lo.count, 12)
            XCTAssertEqual(lo.prefix(6).map(\.bitPattern), la.prefix(6).map(\.bitPattern), "steps 1...6 of \(other.lastPathComponent)")
            var worstRel = 0.0, worstRatio = 0.0
            for i in 6..<12 {
                let bound = tol[i + 1]!.loss
                worstRel = max(worstRel, abs(lo[i] - la[i]) / abs(la[i])); worstRatio = max(worstRatio, abs(lo[i] - la[i]) / bound)
                XCTAssertEqual(lo[i], la[i], accuracy: bound, "step \(i + 1) of \(other.lastPathComponent): |Δ| \(abs(lo[i] - la[i])) bound \(bound)")
            }
            print(String(format: "reshard %@: steps 7...12 largest relative loss difference %.3g, largest |Δ|/bound %.3g",
                         other == c ? "2→1" : "2→4", worstRel, worstRatio))
        }
        // a different global batch is refused with the reason
        let e = try temporaryDirectory(self); try fm.removeItem(at: e); try fm.copyItem(at: b, to: e)
        let bad = try gift(args(e, micro: 8, extra: ["--resume", "auto"]))
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("global batch of 16"), bad.stderr)
    }

    /// A process killed while writing a checkpoint leaves the previous one as `latest`; resume works and
    /// continues bit-identically.
    func testCrashWhileWritingKeepsPreviousCheckpoint() throws {
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        XCTAssertEqual(try gift(args(a, extra: ["--checkpoint-every", "4"])).status, 0)
        let crashed = try gift(args(b, extra: ["--checkpoint-every", "4"]), extraEnv: ["GIFT_CRASH_IN_CHECKPOINT": "8"])
        XCTAssertNotEqual(crashed.status, 0)
        let ck = b.appendingPathComponent("checkpoints")
        XCTAssertEqual(try String(contentsOf: ck.appendingPathComponent("latest")), "step-00000004\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: ck.appendingPathComponent("step-00000008").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: ck.appendingPathComponent(".tmp-step-00000008/manifest.json").path))
        let r = try gift(args(b, extra: ["--checkpoint-every", "4", "--resume", "auto"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("step-00000004"), r.stderr)
        XCTAssertEqual(try losses(a).map(\.bitPattern), try losses(b).map(\.bitPattern))
        XCTAssertEqual(try modelBytes(a), try modelBytes(b))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ck.appendingPathComponent(".tmp-step-00000008").path))
    }

    /// A run with checkpoints at steps 4 and 8, copied for each damage case.
    func pristineRun() throws -> URL {
        let dir = try temporaryDirectory(self)
        let r = try gift(args(dir, steps: 8, extra: ["--checkpoint-every", "4"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    func copy(_ dir: URL) throws -> URL {
        let c = try temporaryDirectory(self)
        try FileManager.default.removeItem(at: c)
        try FileManager.default.copyItem(at: dir, to: c)
        return c
    }

    func loadExplicit(_ ck: URL) throws {
        let c = try ModelConfig.preset("tiny"), n = ParameterLayout(c).count
        let p = FloatBuffer(count: n), m = FloatBuffer(count: n), v = FloatBuffer(count: n)
        _ = try Resume.load(ck.path, params: p.pointer, m: m.pointer, v: v.pointer)
    }

    func testEachCorruptionIsACleanErrorOrAFallback() throws {
        let base = try pristineRun()
        let step8 = "checkpoints/step-00000008", shard = step8 + "/" + Checkpoint.shardName(rank: 0, of: 1)
        func expectError(_ damage: (URL) throws -> Void, _ words: [String], line: UInt = #line) throws {
            let run = try copy(base)
            try damage(run)
            XCTAssertThrowsError(try loadExplicit(run.appendingPathComponent(step8)), line: line) { e in
                XCTAssertTrue(e is GiftError, "\(e)", line: line)
                for w in words { XCTAssertTrue("\(e)".contains(w), "expected '\(w)' in: \(e)", line: line) }
            }
            // auto falls back to step 4, saying why
            let r = try gift(args(run, steps: 8, extra: ["--resume", "auto"]))
            XCTAssertEqual(r.status, 0, r.stderr, line: line)
            XCTAssertTrue(r.stderr.contains("is incomplete or corrupt") && r.stderr.contains("resumed from") &&
                          r.stderr.contains("step-00000004"), r.stderr, line: line)
        }
        let sp = { (run: URL) in run.appendingPathComponent(shard).path }
        try expectError({ run in   // truncated shard
            let h = FileHandle(forUpdatingAtPath: sp(run))!; let n = h.seekToEndOfFile(); h.truncateFile(atOffset: n / 2); h.closeFile()
        }, ["bytes"])
        try expectError({ run in   // a flipped byte in the middle of the shard
            var d = try Data(contentsOf: URL(fileURLWithPath: sp(run))); d[d.count / 2] ^= 0x40
            try d.write(to: URL(fileURLWithPath: sp(run)))
        }, [Checkpoint.shardName(rank: 0, of: 1)])
        try expectError({ run in try FileManager.default.removeItem(atPath: sp(run)) }, ["shard missing"])
        try expectError({ run in   // a newer format version (with a valid checksum)
            let mp = run.appendingPathComponent(step8 + "/manifest.json").path
            var man = try Manifest.read(mp); man.formatVersion = Checkpoint.formatVersion + 1
            try man.json(runConfig: [:], model: man.modelConfig).write(to: URL(fileURLWithPath: mp))
        }, ["newer gift", "format \(Checkpoint.formatVersion + 1)"])
        // another model's or another run config's checkpoint: refused by name (no fallback: it is the run's)
        let other = try copy(base)
        let r = try gift(args(other, steps: 8, extra: ["--resume", other.appendingPathComponent(step8).path, "--lr", "1e-3"]))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("run config field 'lr' is 0.003 in the checkpoint and 0.001 in this run"), r.stderr)
        let m = try gift(["train", "--model", "mini", "--data", "countdown", "--task-examples", "600", "--max-steps", "8",
                          "--lr", "3e-3", "--seed", "5", "--max-length", "48", "--micro-batch", "16", "--out", other.path,
                          "--resume", other.appendingPathComponent(step8).path])
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("another model"), m.stderr)
    }

    /// Random byte flips anywhere in a shard or the manifest, and random truncations: a clean error
    /// every time, never a crash and never silently different numbers.
    func testFuzzedCheckpointFilesAlwaysFailCleanly() throws {
        let base = try pristineRun()
        let ck = base.appendingPathComponent("checkpoints/step-00000008")
        let files = ["manifest.json", Checkpoint.shardName(rank: 0, of: 1)].map { ck.appendingPathComponent($0) }
        let pristine = try files.map { try Data(contentsOf: $0) }
        let rng = CounterRNG(2026, 11)
        for i in 0..<240 {
            let f = i % 2
            var d = pristine[f]
            let r = rng.bits(UInt64(i))
            if i % 8 == 7 {
                d = d.prefix(Int(r % UInt64(d.count)))
            } else {
                d[Int(r % UInt64(d.count))] ^= UInt8(1 << ((r >> 32) % 8))
            }
            try d.write(to: files[f])
            XCTAssertThrowsError(try loadExplicit(ck), "iteration \(i) (\(files[f].lastPathComponent))") { e in
                XCTAssertTrue(e is GiftError, "iteration \(i): \(e)")
            }
            try pristine[f].write(to: files[f])
        }
        XCTAssertNoThrow(try loadExplicit(ck))
    }

    func testRetentionKeepsNewestMultiplesAndTheResumedOne() throws {
        let dir = try temporaryDirectory(self)
        let r = try gift(args(dir, steps: 10, extra: ["--checkpoint-every", "2", "--keep-last", "2", "--keep-every", "4"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = { try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("checkpoints").path)
                        .filter { $0.hasPrefix("step-") }.sorted() }
        XCTAssertEqual(try names(), ["step-00000004", "step-00000008", "step-00000010"])
        // resumed from step 4 with keep-last 1 and no keep-every: step 4 survives, being the one resumed from
        let r2 = try gift(args(dir, steps: 10, extra: ["--checkpoint-every", "2", "--keep-last", "1",
                                                       "--resume", dir.appendingPathComponent("checkpoints/step-00000004").path]))
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try names(), ["step-00000004", "step-00000010"])
    }

    /// Export round trip is bit-identical; Python's safetensors opens it with every tensor's shape.
    func testExportRoundTripAndPythonSafetensors() throws {
        let dir = try temporaryDirectory(self)
        XCTAssertEqual(try gift(args(dir, steps: 4)).status, 0)
        let out = dir.appendingPathComponent("exported")
        let r = try gift(["export", dir.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (c, exported) = try ModelFolder.load(out.path)
        let n = ParameterLayout(c).count
        let p = FloatBuffer(count: n)
        _ = try Resume.load(dir.appendingPathComponent("checkpoints/step-00000004").path, params: p.pointer, m: nil, v: nil)
        XCTAssertEqual(memcmp(p.pointer, exported.pointer, n * 4), 0)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("model.safetensors")), try modelBytes(dir))
        let bf = dir.appendingPathComponent("exported-bf16")
        XCTAssertEqual(try gift(["export", dir.path, "--out", bf.path, "--dtype", "bf16"]).status, 0)
        let (_, b16) = try ModelFolder.load(bf.path)
        for i in stride(from: 0, to: n, by: 97) { XCTAssertEqual(b16[i], BFloat16.round(p[i])) }
        let py = """
        import json, sys
        from safetensors import safe_open
        f = safe_open(sys.argv[1] + "/model.safetensors", framework="numpy")
        print(json.dumps({k: list(f.get_tensor(k).shape) for k in f.keys()}))
        """
        let res = try runPython(py, [out.path])
        try XCTSkipIf(res.status != 0 && res.stderr.contains("No module named"), "python safetensors missing: launch/test.sh installs it")
        XCTAssertEqual(res.status, 0, res.stderr)
        let shapes = try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as! [String: [Int]]
        for t in ParameterLayout(c).tensors { XCTAssertEqual(shapes[t.name], t.shape, t.name) }
        XCTAssertEqual(shapes.count, ParameterLayout(c).tensors.count)
    }
}
