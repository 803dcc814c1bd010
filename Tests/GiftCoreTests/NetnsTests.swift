import Foundation
import XCTest
@testable import GiftCore

/// Two hosts for real on one machine: `cluster/netns-test.sh` puts two network namespaces (10.213.7.1 and
/// 10.213.7.2) on a veth link, and mpirun started in the first one launches its remote daemon in the second
/// through an rsh agent, so rank 0 and rank 1 talk over TCP between two network stacks. Needs root, mpirun
/// and permission to create network namespaces; skipped otherwise. Every test leaves `ip netns list` as it
/// found it.
final class NetnsTests: XCTestCase {
    let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
    let script = packageRoot.appendingPathComponent("cluster/netns-test.sh")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]
    var namespacesBefore: String?

    /// The 1 rank × micro-batch 16 reference run, shared by the tests of one `swift test`.
    static let reference = SharedTestFolder(prefix: "gift-netns-ref")

    override class func tearDown() {
        reference.remove()
        super.tearDown()
    }

    func netnsList() -> String {
        (try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "list"]).stdout) ?? ""
    }

    override func setUpWithError() throws {
        namespacesBefore = netnsList()
        try XCTSkipUnless(getuid() == 0, "network namespaces need root (running as uid \(getuid()))")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed at \(mpirun.path)")
        let check = try runProcess(script, ["check"])
        try XCTSkipUnless(check.status == 0, "cannot create network namespaces here: \(check.stderr)")
    }

    override func tearDown() {
        // the script removes its namespaces before it exits; allow the kernel a moment all the same
        if let before = namespacesBefore {
            var now = netnsList()
            let deadline = Date().addingTimeInterval(5)
            while now != before && Date() < deadline { Thread.sleep(forTimeInterval: 0.1); now = netnsList() }
            XCTAssertEqual(now, before, "ip netns list changed by the test")
        }
        super.tearDown()
    }

    func trainArgs(_ out: URL, micro: Int, steps: Int = 12, extra: [String] = []) -> [String] {
        ["train", "--model", "tiny", "--data", "countdown", "--task-examples", "600", "--max-steps", "\(steps)",
         "--lr", "3e-3", "--seed", "5", "--objective", "gift", "--max-length", "48", "--micro-batch", "\(micro)",
         "--eval-every", "6", "--out", out.path] + extra
    }

    /// `netns-test.sh run` arguments: mpirun inside the first namespace, one rank on each host, TCP on the
    /// veth subnet only, the remote daemon started through the script's rsh agent.
    func twoHostCommand(_ giftArgs: [String]) -> [String] {
        let mpi = """
        exec \(mpirun.path) --allow-run-as-root -np 2 --host "$GIFT_NETNS_HOSTS" --bind-to none \
        --mca plm_rsh_agent "$GIFT_RSH_AGENT" --mca btl self,tcp \
        --mca btl_tcp_if_include 10.213.7.0/24 --mca oob_tcp_if_include 10.213.7.0/24 \
        -x OPENBLAS_NUM_THREADS -x OMPI_MCA_pml "$@"
        """
        return ["run", "/bin/bash", "-c", mpi, "mpirun-netns", giftBinary.path] + giftArgs
    }

    func twoHosts(_ giftArgs: [String]) throws -> RunResult {
        try runProcess(script, twoHostCommand(giftArgs), env: env)
    }

    func metrics(_ dir: URL) throws -> [[String: Any]] {
        try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path)
    }

    func referenceRun() throws -> URL {
        try Self.reference.get { dir in
            let r = try runGift(trainArgs(dir, micro: 16), env: env)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
    }

    /// loss and val_loss of every step in `steps` agree within the bound of `SummationOrderTrajectory`
    /// (ErrorBounds.swift: the runs differ only in how each step's gradient sum is split over ranks and
    /// hosts; the model's per-step tolerance comes from the reference run `a`'s lr and grad_norm; n at
    /// --max-length 48, 16 × 48 token rows per step). The resumed run's steps 7...12 run on one host like
    /// the reference, but start from parameters and Adam moments written by two: the model counts them
    /// as differing from step 1 on, which covers both.
    func assertSameSteps(_ a: URL, _ b: URL, steps: ClosedRange<Int>,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        func byStep(_ d: URL) throws -> [Int: [String: Any]] {
            var m: [Int: [String: Any]] = [:]
            for row in try metrics(d) { if let s = (row["step"] as? NSNumber)?.intValue { m[s] = row } }
            return m
        }
        let ma = try byStep(a), mb = try byStep(b)
        let tol = SummationOrderTrajectory(config: try ModelConfig.preset("tiny"), seqLen: 48, globalTokens: 16 * 48)
            .tolerances(reference: try metrics(a))
        var vals = 0, worstRel = 0.0, worstRatio = 0.0
        for s in steps {
            guard let x = ma[s], let y = mb[s] else { XCTFail("step \(s) missing", file: file, line: line); continue }
            for key in ["loss", "val_loss"] {
                guard let u = (x[key] as? NSNumber)?.doubleValue else {
                    XCTAssertNil(y[key], "step \(s) \(key) only in one run", file: file, line: line); continue
                }
                guard let v = (y[key] as? NSNumber)?.doubleValue else {
                    XCTFail("step \(s) \(key) missing", file: file, line: line); continue
                }
                if key == "val_loss" { vals += 1 }
                let bound = (key == "loss" ? tol[s]?.loss : tol[s]?.valLoss) ?? 0
                worstRel = max(worstRel, abs(u - v) / abs(u)); worstRatio = max(worstRatio, abs(u - v) / bound)
                XCTAssertEqual(u, v, accuracy: bound, "step \(s) \(key): |Δ| \(abs(u - v)) bound \(bound)", file: file, line: line)
            }
        }
        print(String(format: "steps %d...%d: largest relative loss difference %.3g, largest |Δ|/bound %.3g",
                     steps.lowerBound, steps.upperBound, worstRel, worstRatio))
        if steps.contains(6) || steps.contains(12) { XCTAssertGreaterThan(vals, 0, "no val_loss compared", file: file, line: line) }
    }

    /// 2 hosts × 1 rank × micro-batch 8 train as 1 rank × micro-batch 16, and the ranks stay identical.
    func testTwoHostsEqualOneHost() throws {
        let one = try referenceRun(), two = try temporaryDirectory(self)
        let r = try twoHosts(trainArgs(two, micro: 8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("parameters identical on all 2 ranks"), r.stderr)
        XCTAssertEqual(try metrics(two).count, 12)
        try assertSameSteps(one, two, steps: 1...12)
    }

    /// SIGKILL to the rank on the second host ends the job with a non-zero status within 60 s.
    func testKilledRemoteRankEndsJob() throws {
        let dir = try temporaryDirectory(self)
        let p = Process()
        p.executableURL = script
        p.arguments = twoHostCommand(trainArgs(dir, micro: 8, steps: 100000))
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() } }
        let nsB = "giftB-\(p.processIdentifier)"   // the script names its namespaces after its pid
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline && ((try? metrics(dir).count) ?? 0) < 3 { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertTrue(p.isRunning, "job ended before the kill")
        guard p.isRunning else { return }
        let nsPids = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "pids", nsB])
        XCTAssertEqual(nsPids.status, 0, nsPids.stderr)
        let remote = nsPids.stdout.split(separator: "\n").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
            .filter { pid in
                guard let raw = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
                let cmd = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                return cmd.contains(dir.path) && cmd.contains(giftBinary.path) && !cmd.contains("mpirun")
            }
        XCTAssertEqual(remote.count, 1, "gift ranks in \(nsB): \(remote), all pids: \(nsPids.stdout)")
        guard let victim = remote.first else { return }
        let killedAt = Date()
        kill(victim, SIGKILL)
        while p.isRunning && Date().timeIntervalSince(killedAt) < 60 { Thread.sleep(forTimeInterval: 0.1) }
        let took = Date().timeIntervalSince(killedAt)
        XCTAssertLessThan(took, 60, "job still running 60 s after its remote rank was killed")
        if p.isRunning { kill(p.processIdentifier, SIGTERM) }
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
    }

    /// A checkpoint written by the two-host run at step 6 resumes on one host (1 rank × micro-batch 16)
    /// and steps 7...12 match the uninterrupted one-host run.
    func testTwoHostCheckpointResumesOnOneHost() throws {
        let one = try referenceRun(), dir = try temporaryDirectory(self)
        let first = try twoHosts(trainArgs(dir, micro: 8, extra: ["--checkpoint-every", "6", "--stop-at-step", "6"]))
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try? String(contentsOf: dir.appendingPathComponent("checkpoints/latest"), encoding: .utf8), "step-00000006\n")
        let second = try runGift(trainArgs(dir, micro: 16, extra: ["--checkpoint-every", "6", "--resume", "auto"]), env: env)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("written by 2 ranks, now 1"), second.stderr)
        try assertSameSteps(one, dir, steps: 1...6)
        try assertSameSteps(one, dir, steps: 7...12)
    }
}
