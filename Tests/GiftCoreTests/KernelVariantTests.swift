import Foundation
import XCTest
@testable import GiftCore

/// The BLAS kernel gift runs, and the numeric tests re-run under every kernel variant this CPU offers:
/// OpenBLAS's core forced to the older ISA's kernel (Haswell: AVX2) and to
/// the AVX-512 ones the CPU can run, with oneDNN capped to the matching ISA (DNNL_MAX_CPU_ISA), so a
/// machine of one kind also checks what an older one would run. bf16 native and emulated are covered
/// inside the re-run classes (GoldenTests, BF16Tests run both kernels).
final class KernelVariantTests: XCTestCase {
    /// Set in the re-run processes: they check the variant they were given and do not recurse.
    static let variantKey = "GIFT_TEST_KERNEL_VARIANT"
    var inVariant: Bool { ProcessInfo.processInfo.environment[Self.variantKey] != nil }

    /// On a CPU with AVX2 or AVX-512 the BLAS core in use is never a generic one; gift asks for the best
    /// core of the CPU's ISA unless the user set OPENBLAS_CORETYPE (a re-run checks the core it forced).
    func testBLASCoreIsNotGeneric() throws {
        try Blas.load()
        let env = ProcessInfo.processInfo.environment
        print("kernels: \(CPU.summary); \(Blas.summary); \(Gemm.onednnDescription)")
        if let expected = env["GIFT_TEST_EXPECT_CORE"] {
            XCTAssertEqual(Blas.core.lowercased(), expected.lowercased(), Blas.summary)
        }
        if let isa = env["GIFT_TEST_EXPECT_ONEDNN_ISA"], Gemm.onednnAvailable {
            XCTAssertTrue(Gemm.onednnDescription.contains("CPU ISA \(isa)"), Gemm.onednnDescription)
        }
        guard (env["OPENBLAS_CORETYPE"] ?? "").isEmpty else { return }   // a user's choice (or a variant's) stands
        if CPU.hasAVX2 {
            XCTAssertFalse(Blas.isGeneric(core: Blas.core), "generic BLAS core on \(CPU.summary): \(Blas.summary)")
            XCTAssertFalse(Blas.runsGenericKernel)
            XCTAssertNil(Blas.genericKernelWarning)
        }
        if CPU.hasAVX512 {
            XCTAssertTrue(["skylakex", "cooperlake", "sapphirerapids"].contains(Blas.core.lowercased()),
                          "an AVX-512 CPU runs \(Blas.core): \(Blas.summary)")
        }
        if !Blas.bestCore.isEmpty {
            XCTAssertEqual(Blas.core.lowercased(), Blas.bestCore.lowercased(), Blas.summary)
            XCTAssertTrue(Blas.choiceReason.hasPrefix("chosen by gift"), Blas.choiceReason)
        }
    }

    /// The table behind the choice: generic names are recognised, and AVX-512 cores are offered only to
    /// CPUs that have AVX-512 (OpenBLAS itself would crash on an illegal instruction).
    func testCoreTable() {
        for g in ["Prescott", "core2", "NEHALEM", "Unknown"] { XCTAssertTrue(Blas.isGeneric(core: g), g) }
        for g in ["Haswell", "SkylakeX", "Zen", "Cooperlake"] { XCTAssertFalse(Blas.isGeneric(core: g), g) }
        XCTAssertEqual(gift_supported("SkylakeX"), CPU.hasAVX512)
        XCTAssertEqual(gift_supported("Cooperlake"), CPU.hasAVX512BF16)
        XCTAssertEqual(gift_supported("Haswell"), CPU.hasAVX2)
        XCTAssertFalse(gift_supported("NoSuchCore"))
        XCTAssertEqual(Blas.bestCore, CPU.hasAVX512BF16 ? "Cooperlake" : CPU.hasAVX512 ? "SkylakeX" : CPU.hasAVX2 ? "Haswell" : "")
    }

    private func gift_supported(_ core: String) -> Bool { Blas.coreSupported(core) }

    /// A generic core forced by hand is run (the user's choice) but reported in the bench log and its
    /// JSON; a core this CPU cannot run is refused by name before anything loads.
    func testGenericAndUnsupportedCoresAreReported() throws {
        guard !inVariant, CPU.hasAVX2 else { return }
        let args = ["bench", "--preset", "tiny", "--seq", "16", "--batch", "1", "--steps", "1", "--warmup", "0", "--objective", "sft"]
        let r = try runGift(args, env: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("warning: OpenBLAS runs its generic Prescott kernel"), r.stdout)
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual(summary["blas_core"] as? String, "Prescott")
        XCTAssertEqual((summary["warnings"] as? [String])?.count, 1, "\(summary)")
        let unsupported = !CPU.hasAVX512 ? "SkylakeX" : !CPU.hasAVX512BF16 ? "Cooperlake" : nil
        if let unsupported {
            let bad = try runGift(args, env: ["OPENBLAS_CORETYPE": unsupported])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains("OPENBLAS_CORETYPE=\(unsupported)") && bad.stderr.contains("cannot run"), bad.stderr)
        }
        // the caller's environment as it is: a user's core is kept and reported as the user's; none set,
        // gift chooses one by cpuid (machines set the variable because old OpenBLAS builds misbehave on
        // new CPUs, so the test never clears it; the other case is the next test's, in its own process)
        let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? ""
        let good = try runGift(args)
        XCTAssertEqual(good.status, 0, good.stderr)
        if user.isEmpty {
            XCTAssertTrue(good.stdout.contains("core \(Blas.bestCore) (chosen by gift"), good.stdout)
        } else {
            XCTAssertTrue(good.stdout.contains("OPENBLAS_CORETYPE=\(user) set by the user"), good.stdout)
        }
        if !Blas.isGeneric(core: user.isEmpty ? Blas.bestCore : user) {
            XCTAssertFalse(good.stdout.contains("generic"), good.stdout)
        }
    }

    /// A core the user names is kept and reported as the user's choice, whatever the caller's environment
    /// says (this test sets the variable for its own subprocess only).
    func testUserCoreIsKeptAndReported() throws {
        guard !inVariant, CPU.hasAVX2 else { return }
        let args = ["bench", "--preset", "tiny", "--seq", "16", "--batch", "1", "--steps", "1", "--warmup", "0", "--objective", "sft"]
        let r = try runGift(args, env: ["OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("core Haswell (OPENBLAS_CORETYPE=Haswell set by the user"), r.stdout)
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual((summary["blas_core"] as? String)?.lowercased(), "haswell", "\(summary)")
    }

    /// The variants this CPU offers: (name, OpenBLAS core, oneDNN ISA cap, the ISA oneDNN then reports).
    static var variants: [(String, String, String, String)] {
        var v: [(String, String, String, String)] = []
        if CPU.hasAVX2 { v.append(("avx2", "Haswell", "AVX2", "avx2")) }
        if CPU.hasAVX512 { v.append(("avx512", "SkylakeX", "AVX512_CORE", "avx512_core")) }
        if CPU.hasAVX512BF16 { v.append(("avx512_bf16", "Cooperlake", "AVX512_CORE_BF16", "avx512_core_bf16")) }
        return v
    }

    /// The numeric test classes again, in a process per variant (the BLAS core is fixed when it loads).
    func testNumericTestsUnderEveryKernelVariant() throws {
        guard !inVariant else { return }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        guard bundle.lastPathComponent.hasSuffix(".xctest"), FileManager.default.isExecutableFile(atPath: bundle.path) else {
            throw XCTSkip("the test bundle is not an executable here (\(bundle.path)): variants need Linux's xctest layout")
        }
        let classes = ["KernelVariantTests/testBLASCoreIsNotGeneric", "GoldenTests", "GemmBackendTests", "BF16Tests",
                       "Pass1Tests", "ModelGradientTests"].map { "GiftCoreTests." + $0 }
        XCTAssertFalse(Self.variants.isEmpty || !CPU.hasAVX2, "no kernel variant on \(CPU.summary)")
        for (name, core, isa, reported) in Self.variants {
            let r = try runProcess(bundle, [classes.joined(separator: ",")],
                                   env: [Self.variantKey: name, "OPENBLAS_CORETYPE": core, "DNNL_MAX_CPU_ISA": isa,
                                         "GIFT_TEST_EXPECT_CORE": core, "GIFT_TEST_EXPECT_ONEDNN_ISA": reported])
            let out = r.stdout + r.stderr
            let tail = out.split(separator: "\n").filter { $0.contains("Executed") }.last.map(String.init) ?? ""
            print("kernel variant \(name) (OpenBLAS \(core), oneDNN ≤ \(isa)): \(tail)")
            XCTAssertEqual(r.status, 0, "variant \(name):\n" + out.split(separator: "\n").filter {
                $0.contains("error") || $0.contains("failed") }.joined(separator: "\n"))
            // the classes really ran: well over a handful of tests, none failed
            let words = tail.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let executed = words.firstIndex(of: "Executed").flatMap { Int(words[$0 + 1]) } ?? 0
            XCTAssertGreaterThan(executed, 15, "variant \(name) ran \(executed) tests: \(tail)")
            XCTAssertTrue(tail.contains("with 0 failures"), "variant \(name): \(tail)")
        }
    }
}
