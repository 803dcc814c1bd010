import Foundation
import XCTest
@testable import GiftCore

/// The memory plan against a limit the kernel enforces: a run the plan refuses would really fail under
/// the limit, and the change the plan suggests really trains under it.
///
/// Enforcement is `prlimit --as` (RLIMIT_AS, per process, no privileges; gift train reads it as the
/// limit a rank may use). A cgroup would limit resident memory rather than address space, but on this
/// machine kind cgroup v2 has no memory controller (/sys/fs/cgroup/unified/cgroup.controllers) and the v1
/// memory hierarchy is the sandbox's own cgroup, which a test should not reconfigure. Address space runs
/// above resident memory (libraries, thread stacks, MPI's segments: 0.3-0.9 GiB measured here), so each
/// limit leaves that margin above the plan that must fit.
final class EnforcedMemoryTests: XCTestCase {
    let prlimit = URL(fileURLWithPath: "/usr/bin/prlimit"), mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"]
    let gib = Double(1 << 30)

    func model(_ dir: URL, _ args: [String]) throws -> (URL, ModelConfig) {
        let m = dir.appendingPathComponent("model")
        let r = try runGift(["init"] + args + ["--out", m.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (m, try Plan.modelConfig(m.path))
    }

    func plan(_ c: ModelConfig, ranks: Int = 1, zero: Int = 0, recompute: Bool = false, microBatch: Int, seq: Int) throws -> Int {
        var s = Plan.Settings()
        s.ranks = ranks; s.zero = zero; s.recompute = recompute; s.microBatch = microBatch; s.seqLen = seq
        return try Plan(config: c, s).totalBytes
    }

    /// Activations dominate (64 narrow blocks, 256 × 26 tokens): without recompute the plan exceeds the
    /// address-space limit and gift train refuses by itself, naming the limit and suggesting recompute;
    /// forced past the check (a --memory-limit above the real one) the run dies; with --recompute blocks
    /// it trains under the same limit.
    func testRecomputeTrainsUnderAnEnforcedLimitThatRefusesTheFullActivations() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: prlimit.path), "prlimit (util-linux) not installed: no way to enforce a limit")
        let dir = try temporaryDirectory(self)
        let (m, c) = try model(dir, ["--preset", "tiny", "--layers", "64"])
        let full = try plan(c, microBatch: 256, seq: 26), rec = try plan(c, recompute: true, microBatch: 256, seq: 26)
        let limit = (full + rec) / 2
        XCTAssertGreaterThan(Double(limit - rec), 0.6 * gib, "the premise: room above the recompute plan for address space beyond it")
        func train(_ extra: [String]) throws -> (RunResult, URL) {
            let out = dir.appendingPathComponent("run-\(UUID().uuidString)")
            // countdown examples are 16-25 characters: every batch is padded to the plan's 26
            let args = ["--as=\(limit)", giftBinary.path, "train", "--model", m.path, "--data", "countdown", "--task-examples", "300",
                        "--micro-batch", "256", "--max-length", "26", "--max-steps", "1", "--out", out.path] + extra
            return (try runProcess(prlimit, args, env: env), out)
        }
        let (refused, out1) = try train([])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("this process's address-space limit"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("The cheapest change that fits: --recompute blocks"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out1.path))
        let (forced, _) = try train(["--memory-limit", "100G"])
        XCTAssertNotEqual(forced.status, 0, "the limit is real: past the check the run cannot allocate its activations")
        let (fits, out3) = try train(["--recompute", "blocks"])
        XCTAssertEqual(fits.status, 0, fits.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out3.appendingPathComponent("model/config.json").path))
        print(String(format: "enforced %.2f GiB: plan %.2f GiB without recompute (refused), %.2f GiB with (trained)", Double(limit) / gib,
                     Double(full) / gib, Double(rec) / gib))
    }

    /// The model dominates (120 M parameters, short sequences): on 2 ranks ZeRO 0's plan is above the
    /// limit and gift train stops with the plan's message; ZeRO 3 trains under the same enforced limit.
    func testZero3TrainsUnderAnEnforcedLimitThatZero0DoesNotFit() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: prlimit.path), "prlimit (util-linux) not installed: no way to enforce a limit")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        var probe = RunConfig()
        let hasZero3 = (try? probe.set("zero", 3, source: "probe")) != nil
        try XCTSkipUnless(hasZero3, "this build's trainer has no ZeRO-3 yet")
        let dir = try temporaryDirectory(self)
        let (m, c) = try model(dir, ["--preset", "small", "--d-model", "768", "--layers", "20", "--heads", "12", "--ff", "2048", "--vocab", "4096"])
        let z0 = try plan(c, ranks: 2, microBatch: 1, seq: 17), z3 = try plan(c, ranks: 2, zero: 3, microBatch: 1, seq: 17)
        let limit = z0 - Int(0.15 * gib)
        XCTAssertGreaterThan(Double(limit - z3), 0.9 * gib, "the premise: room above ZeRO 3's plan for address space beyond it")
        func train(_ zero: Int) throws -> (RunResult, URL) {
            let out = dir.appendingPathComponent("run-zero\(zero)")
            let args = ["--as=\(limit)", mpirun.path, "-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path, "train",
                        "--model", m.path, "--data", "countdown", "--task-examples", "64", "--micro-batch", "1", "--max-length", "16",
                        "--max-steps", "1", "--zero", "\(zero)", "--memory-limit", "\(limit)", "--out", out.path]
            return (try runProcess(prlimit, args, env: env), out)
        }
        let (refused, out0) = try train(0)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("the memory plan needs") && refused.stderr.contains("(--memory-limit \(limit))"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("The cheapest change that fits: --zero "), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out0.path))
        let (fits, out3) = try train(3)
        XCTAssertEqual(fits.status, 0, fits.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out3.appendingPathComponent("model/config.json").path))
        print(String(format: "enforced %.2f GiB per rank on 2 ranks: ZeRO 0 plan %.2f GiB (refused), ZeRO 3 plan %.2f GiB (trained)",
                     Double(limit) / gib, Double(z0) / gib, Double(z3) / gib))
    }
}
