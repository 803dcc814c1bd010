import Foundation
import XCTest
@testable import GiftCore

/// The memory plan against a limit the kernel enforces: a run the plan refuses would really fail under
/// the limit, and the change the plan suggests really trains under it.
///
/// Enforcement is a memory cgroup made for the test's processes as a child of this process's own
/// (cgroup v2's memory.max where the memory controller reaches it, else v1's memory.limit_in_bytes;
/// removed afterwards): it limits resident memory, what the plan counts, and gift train reads its room
/// as the limit. Where no cgroup can be made, `prlimit --as` (RLIMIT_AS, per process) serves the
/// recompute test; it cannot serve ZeRO-3, whose gradients and gathered weights are full-size reserved
/// address ranges (ReservedFloats) resident only in part, so that test is then skipped.
final class EnforcedMemoryTests: XCTestCase {
    let prlimit = URL(fileURLWithPath: "/usr/bin/prlimit"), mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
    let sh = URL(fileURLWithPath: "/bin/sh")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"]
    let gib = Double(1 << 30)

    /// A fresh memory cgroup under this process's own with `limit` bytes, removed at teardown; nil where
    /// none can be made or entered (no memory controller, no permission).
    func memoryCgroup(limit: Int) -> URL? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var candidates: [(String, String)] = []   // (own cgroup folder, limit file)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            if f[0] == "0" && f[1].isEmpty {
                for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] { candidates.append((root + f[2], "memory.max")) }
            } else if f[1].split(separator: ",").contains("memory") {
                candidates.append(("/sys/fs/cgroup/memory" + f[2], "memory.limit_in_bytes"))
            }
        }
        for (own, file) in candidates {
            let dir = URL(fileURLWithPath: own).appendingPathComponent("gift-test-\(UUID().uuidString.prefix(8))")
            guard (try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)) != nil else { continue }
            let remove = { for _ in 0..<50 { if rmdir(dir.path) == 0 || errno == ENOENT { return }; usleep(100_000) } }
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path),
                  (try? "\(limit)".write(to: dir.appendingPathComponent(file), atomically: false, encoding: .utf8)) != nil,
                  (try? runProcess(sh, ["-c", "echo $$ > \"$0/cgroup.procs\"", dir.path]))?.status == 0 else { remove(); continue }
            addTeardownBlock { remove() }
            return dir
        }
        return nil
    }

    /// `args` run inside `cgroup` (a shell enters it, then becomes the command).
    func runIn(_ cgroup: URL, _ exe: URL, _ args: [String]) throws -> RunResult {
        try runProcess(sh, ["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", cgroup.path, exe.path] + args, env: env)
    }

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
        let dir = try temporaryDirectory(self)
        let (m, c) = try model(dir, ["--preset", "tiny", "--layers", "64"])
        let full = try plan(c, microBatch: 256, seq: 26), rec = try plan(c, recompute: true, microBatch: 256, seq: 26)
        let limit = (full + rec) / 2
        XCTAssertGreaterThan(Double(limit - rec), 0.6 * gib, "the premise: room above the recompute plan (and for address space beyond it)")
        let cgroup = memoryCgroup(limit: limit)
        try XCTSkipIf(cgroup == nil && !FileManager.default.isExecutableFile(atPath: prlimit.path),
                      "no memory cgroup can be made here and prlimit (util-linux) is not installed: no way to enforce a limit")
        func train(_ extra: [String]) throws -> (RunResult, URL) {
            let out = dir.appendingPathComponent("run-\(UUID().uuidString)")
            // countdown examples are 16-25 characters: every batch is padded to the plan's 26
            let args = ["train", "--model", m.path, "--data", "countdown", "--task-examples", "300",
                        "--micro-batch", "256", "--max-length", "26", "--max-steps", "1", "--out", out.path] + extra
            if let cgroup { return (try runIn(cgroup, giftBinary, args), out) }
            return (try runProcess(prlimit, ["--as=\(limit)", giftBinary.path] + args, env: env), out)
        }
        let (refused, out1) = try train([])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains(cgroup == nil ? "this process's address-space limit" : "the room left under /sys/fs/cgroup"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("The cheapest change that fits: --recompute blocks"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out1.path))
        let (forced, _) = try train(["--memory-limit", "100G"])
        XCTAssertNotEqual(forced.status, 0, "the limit is real: past the check the run cannot allocate its activations")
        let (fits, out3) = try train(["--recompute", "blocks"])
        XCTAssertEqual(fits.status, 0, fits.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out3.appendingPathComponent("model/config.json").path))
        print(String(format: "enforced %.2f GiB (%@): plan %.2f GiB without recompute (refused), %.2f GiB with (trained)", Double(limit) / gib,
                     cgroup == nil ? "prlimit --as" : "memory cgroup",
                     Double(full) / gib, Double(rec) / gib))
    }

    /// The model dominates (120 M parameters, short sequences): on 2 ranks ZeRO 0's plan is above the
    /// limit and gift train stops with the plan's message; ZeRO 3 trains under the same enforced limit.
    func testZero3TrainsUnderAnEnforcedLimitThatZero0DoesNotFit() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        var probe = RunConfig()
        let hasZero3 = (try? probe.set("zero", 3, source: "probe")) != nil
        try XCTSkipUnless(hasZero3, "this build's trainer has no ZeRO-3 yet")
        let dir = try temporaryDirectory(self)
        let (m, c) = try model(dir, ["--preset", "small", "--d-model", "768", "--layers", "16", "--heads", "12", "--ff", "2048", "--vocab", "4096"])
        let z0 = try plan(c, ranks: 2, microBatch: 1, seq: 16), z3 = try plan(c, ranks: 2, zero: 3, microBatch: 1, seq: 16)
        let limit = (z0 + z3) / 2
        XCTAssertGreaterThan(Double(limit - z3), 0.25 * gib, "the premise: ZeRO 3's plan well below the limit, ZeRO 0's well above")
        // both ranks and mpirun in one cgroup: two ranks' limits and room for mpirun itself
        guard let cgroup = memoryCgroup(limit: 2 * limit + (64 << 20)) else {
            throw XCTSkip("no memory cgroup can be made here (and an address-space limit cannot hold ZeRO-3's reserved ranges)")
        }
        func train(_ zero: Int) throws -> (RunResult, URL) {
            let out = dir.appendingPathComponent("run-zero\(zero)")
            let args = ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path, "train",
                        "--model", m.path, "--data", "countdown", "--task-examples", "64", "--micro-batch", "1", "--max-length", "16",
                        "--max-steps", "1", "--zero", "\(zero)", "--memory-limit", "\(limit)", "--out", out.path]
            return (try runIn(cgroup, mpirun, args), out)
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
