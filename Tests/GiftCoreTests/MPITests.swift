import Foundation
import XCTest
@testable import GiftCore

/// Real `mpirun` jobs of the gift binary: data parallel training agrees with one process, ranks stay
/// identical, ZeRO-1 agrees, and faults stop the whole job.
final class MPITests: XCTestCase {
    let mpirun = mpirunURL, env = mpiTestEnvironment

    override func setUpWithError() throws { try skipUnlessMPI() }

    func trainArgs(_ objective: String, out: URL, micro: Int, steps: Int = 20, model: String = "tiny") -> [String] {
        ["train", "--model", model, "--data", "countdown", "--task-examples", "600", "--max-steps", "\(steps)",
         "--lr", "3e-3", "--seed", "5", "--objective", objective, "--max-length", "48", "--eval-every", "10",
         "--micro-batch", "\(micro)", "--out", out.path]
    }

    func mpi(_ ranks: Int, _ args: [String], extra: [String] = []) throws -> RunResult {
        try runProcess(mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"] + extra + [giftBinary.path] + args,
                       env: env)
    }

    func metrics(_ dir: URL) throws -> [[String: Any]] {
        try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path)
    }

    /// The two trainings differ only in how each step's gradient sum is split over ranks (and the order
    /// of the all-reduce): `SummationOrderTrajectory` (ErrorBounds.swift) states the model that turns
    /// that into a tolerance per step, from the reference run's own lr and grad_norm. n at --max-length
    /// 48; 16 sequences × 48 token rows per step; the preset trained (tiny unless named).
    static func trajectory(preset: String = "tiny") throws -> SummationOrderTrajectory {
        SummationOrderTrajectory(config: try ModelConfig.preset(preset), seqLen: 48, globalTokens: 16 * 48)
    }

    /// (a) 2 ranks × micro-batch b against 1 rank × 2b, `steps` steps of each objective on the preset;
    /// (b) identical ranks.
    func checkTwoRanksEqualOneRank(model: String, objectives: [String], steps: Int = 20) throws {
        for objective in objectives {
            let one = try temporaryDirectory(self), two = try temporaryDirectory(self)
            let r1 = try runGift(trainArgs(objective, out: one, micro: 16, steps: steps, model: model), env: env)
            XCTAssertEqual(r1.status, 0, r1.stderr)
            let r2 = try mpi(2, trainArgs(objective, out: two, micro: 8, steps: steps, model: model))
            XCTAssertEqual(r2.status, 0, r2.stderr)
            try assertSamePresetTraining(one, two, preset: model)
            XCTAssertTrue(r2.stderr.contains("parameters identical on all 2 ranks"), r2.stderr)
            XCTAssertNotNil(try metrics(two).last!["comm_wait_s"])
        }
    }

    func testTwoRanksEqualOneRankWithDoubleBatch() throws {
        try checkTwoRanksEqualOneRank(model: "tiny", objectives: ["sft", "gift"])
    }

    /// Dream (shifted rows, q/k/v biases, GQA) across ranks as LLaDA: GIFT and dllm's CART objective.
    func testDreamTwoRanksEqualOneRank() throws {
        try checkTwoRanksEqualOneRank(model: "dream-tiny", objectives: ["gift", "dream"], steps: 10)
    }

    /// (c) 4 ranks on 2 cores (oversubscribed) and (d) ZeRO-1 agree with one process.
    func testFourRanksAndZeroOne() throws {
        let one = try temporaryDirectory(self), four = try temporaryDirectory(self), zero = try temporaryDirectory(self)
        XCTAssertEqual(try runGift(trainArgs("gift", out: one, micro: 16), env: env).status, 0)
        let r4 = try mpi(4, trainArgs("gift", out: four, micro: 4))
        XCTAssertEqual(r4.status, 0, r4.stderr)
        try assertSamePresetTraining(one, four)
        XCTAssertTrue(r4.stderr.contains("parameters identical on all 4 ranks"), r4.stderr)
        let rz = try mpi(2, trainArgs("gift", out: zero, micro: 8) + ["--zero", "1"])
        XCTAssertEqual(rz.status, 0, rz.stderr)
        try assertSamePresetTraining(one, zero)
        XCTAssertTrue(rz.stderr.contains("parameters identical on all 2 ranks"), rz.stderr)
        // the models written at the end agree too
        let (_, p1) = try ModelFolder.load(one.appendingPathComponent("model").path)
        let (_, pz) = try ModelFolder.load(zero.appendingPathComponent("model").path)
        // within the trajectory model's max|Δp| after the last step (from the reference run's lrs)
        var worst: Float = 0
        for i in 0..<p1.count { worst = max(worst, abs(p1[i] - pz[i])) }
        let lrs = try metrics(one).map { ($0["lr"] as! NSNumber).doubleValue }
        let bound = try Self.trajectory().maxParameterDifference(lrs: lrs).last!
        print(String(format: "ZeRO-1 vs 1 rank: max|Δp| %.3g, bound %.3g", Double(worst), bound))
        XCTAssertLessThan(Double(worst), bound)
    }

    /// (e) a rank killed with SIGKILL ends the job with a non-zero status within 60 s.
    func testKilledRankEndsJob() throws {
        let dir = try temporaryDirectory(self)
        let p = Process()
        p.executableURL = mpirun
        p.arguments = ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path] +
            trainArgs("gift", out: dir, micro: 8, steps: 100000)
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        // wait until training runs (metrics appear), then kill one rank
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && ((try? metrics(dir).count) ?? 0) < 3 { Thread.sleep(forTimeInterval: 0.1) }
        let ps = try runProcess(URL(fileURLWithPath: "/bin/ps"), ["-eo", "pid=,args="])
        let pids = ps.stdout.split(separator: "\n").filter { $0.contains(dir.path) && $0.contains("gift train") && !$0.contains("mpirun") }
            .compactMap { Int32($0.trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) }
        XCTAssertEqual(pids.count, 2, ps.stdout)
        let killedAt = Date()
        kill(pids.last!, SIGKILL)
        while p.isRunning && Date().timeIntervalSince(killedAt) < 60 { Thread.sleep(forTimeInterval: 0.1) }
        let took = Date().timeIntervalSince(killedAt)
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        XCTAssertLessThan(took, 60)
        XCTAssertNotEqual(p.terminationStatus, 0)
        // no rank outlives the job (zombies awaiting their reaper count as gone)
        func alive(_ pid: Int32) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return !stat.contains(") Z ")
        }
        let gone = Date().addingTimeInterval(10)
        while pids.contains(where: alive) && Date() < gone { Thread.sleep(forTimeInterval: 0.1) }
        for pid in pids { XCTAssertFalse(alive(pid), "rank process \(pid) survived the job") }
    }

    /// (f) a bad data line on one rank stops every rank with that rank's message; an error mid-run on
    /// one rank does too; ranks started with different settings are refused by field.
    func testErrorsOnOneRankStopAll() throws {
        let dir = try temporaryDirectory(self)
        let good = dir.appendingPathComponent("good.jsonl"), bad = dir.appendingPathComponent("bad.jsonl")
        let line = #"{"prompt": "1 2 3 to 6:", "response": "1+2+3"}"#
        try String(repeating: line + "\n", count: 40).write(to: good, atomically: true, encoding: .utf8)
        try (String(repeating: line + "\n", count: 2) + "{\"prompt\": 1}\n" + String(repeating: line + "\n", count: 37))
            .write(to: bad, atomically: true, encoding: .utf8)
        func args(_ data: URL, _ extra: [String] = []) -> [String] {
            [giftBinary.path, "train", "--model", "tiny", "--data", data.path, "--micro-batch", "2", "--max-steps", "5",
             "--out", dir.appendingPathComponent("run").path] + extra
        }
        let base = ["--oversubscribe", "--bind-to", "none"]
        let t0 = Date()
        let r = try runProcess(mpirun, base + ["-np", "1"] + args(good) + [":", "-np", "1"] + args(bad), env: env)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 1") && r.stderr.contains("bad.jsonl:3"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60)
        let m = try runProcess(mpirun, base + ["-np", "1"] + args(good) + [":", "-np", "1"] + args(good, ["--lr", "1e-4"]), env: env)
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("run config field 'lr' differs between ranks"), m.stderr)
        var fenv = env; fenv["GIFT_FAULT_RANK"] = "1"; fenv["GIFT_FAULT_STEP"] = "3"
        let f = try runProcess(mpirun, base + ["-np", "2"] + args(good, ["--max-steps", "50"]), env: fenv)
        XCTAssertNotEqual(f.status, 0)
        XCTAssertTrue(f.stderr.contains("rank 1: injected fault at step 3"), f.stderr)
    }
}

/// `a` is the 1-rank reference run of `preset`; loss and val_loss agree within the trajectory model's
/// bound, the masked-token counts exactly (the draws depend only on seed, step and example).
func assertSamePresetTraining(_ a: URL, _ b: URL, preset: String = "tiny", file: StaticString = #filePath, line: UInt = #line) throws {
    let ma = try MetricsWriter.read(a.appendingPathComponent("metrics.jsonl").path), mb = try MetricsWriter.read(b.appendingPathComponent("metrics.jsonl").path)
    XCTAssertEqual(ma.count, mb.count, file: file, line: line)
    XCTAssertGreaterThan(ma.count, 0, file: file, line: line)
    let tol = try MPITests.trajectory(preset: preset).tolerances(reference: ma)
    var worstRatio = 0.0, worstRel = 0.0
    for (x, y) in zip(ma, mb) {
        let step = (x["step"] as! NSNumber).intValue
        for key in ["loss", "val_loss"] {
            guard let u = (x[key] as? NSNumber)?.doubleValue else { continue }
            let v = (y[key] as! NSNumber).doubleValue
            let bound = (key == "loss" ? tol[step]?.loss : tol[step]?.valLoss) ?? 0
            worstRatio = max(worstRatio, abs(u - v) / bound); worstRel = max(worstRel, abs(u - v) / abs(u))
            XCTAssertEqual(u, v, accuracy: bound, "step \(step) \(key): |Δ| \(abs(u - v)) bound \(bound)", file: file, line: line)
        }
        XCTAssertEqual((x["masked_tokens"] as! NSNumber).intValue, (y["masked_tokens"] as! NSNumber).intValue, file: file, line: line)
    }
    print(String(format: "%@ vs %@: largest relative loss difference %.3g, largest |Δ|/bound %.3g",
                 b.lastPathComponent, a.lastPathComponent, worstRel, worstRatio))
}

