import CDNNLShim
import Foundation
import XCTest
@testable import GiftCore

/// Which oneDNN gift loads, and that both API generations compute the same GEMM: Debian's libdnnl.so.2
/// (the 2.x API) by default, a 3.x build (the 3.x API: memory descriptors as objects, alpha as a runtime
/// source scale) when GIFT_ONEDNN_LIB names one. A process loads one oneDNN, so the 3.x checks re-run
/// this class and GemmBackendTests in a process of their own.
final class OneDNNLibraryTests: XCTestCase {
    /// Set in the re-run process: "<major version>|<library path>" that it must have loaded.
    static let expectKey = "GIFT_TEST_EXPECT_ONEDNN"
    static var env: [String: String] { ProcessInfo.processInfo.environment }

    /// A oneDNN 3.x with the OpenMP runtime, where one is installed: GIFT_TEST_ONEDNN3 names one, else
    /// the one launch/test.sh puts in the test venv (PyPI's onednn-cpu-gomp, next to GIFT_PYTHON).
    static var onednn3: String? {
        var candidates = [env["GIFT_TEST_ONEDNN3"] ?? ""]
        if let python = env["GIFT_PYTHON"] {
            let venv = URL(fileURLWithPath: python).deletingLastPathComponent().deletingLastPathComponent()
            candidates.append(venv.appendingPathComponent("lib/libdnnl.so.3").path)
        }
        return candidates.first { !$0.isEmpty && FileManager.default.fileExists(atPath: $0) }
    }

    /// gift's shim called directly (Gemm.mm would hide a refused shape by falling back to OpenBLAS): every
    /// f32 trial runs on oneDNN and matches the float64 reference (GemmBackendTests' random shapes, every
    /// transpose, padded leading dimensions, alpha and beta); so does bf16 where oneDNN takes it. On a CPU
    /// without bf16 instructions oneDNN may refuse bf16 matmuls (2.6 and 3.2 do on AVX2): then all of them,
    /// and gift runs the emulation.
    func testShimAgreesWithTheReference() throws {
        guard Gemm.onednnAvailable else { throw XCTSkip("oneDNN not available: \(Gemm.onednnDescription)") }
        if let expected = Self.env[Self.expectKey] {
            let parts = expected.split(separator: "|", maxSplits: 1).map(String.init)
            XCTAssertEqual(Gemm.onednnAPI, Int(parts[0]), Gemm.onednnDescription)
            XCTAssertTrue(Gemm.onednnDescription.hasPrefix("oneDNN \(parts[0])."), Gemm.onednnDescription)
            XCTAssertTrue(Gemm.onednnDescription.contains("(\(parts[1]))"), "the path loaded: \(Gemm.onednnDescription)")
            XCTAssertNil(Gemm.onednnWarning)
        }
        let name = "oneDNN \(Gemm.onednnAPI).x shim"
        let f32 = GemmBackendTests.checkRandomGEMMs(name + " f32", bf16: false) { t, a, b, c in
            Self.shim(0, t, a, b, &c)
        }
        XCTAssertEqual(f32, 0, "\(name): oneDNN refused f32 GEMMs: \(Gemm.onednnDescription)")
        let bits = { (x: [Float]) in x.map(BFloat16.fromFloat) }
        let bf16 = GemmBackendTests.checkRandomGEMMs(name + " bf16", bf16: true) { t, a, b, c in
            Self.shim(1, t, bits(a), bits(b), &c)
        }
        if Gemm.nativeBF16 { XCTAssertEqual(bf16, 0, "\(name): bf16 refused on a CPU with bf16 instructions") }
        XCTAssertTrue(bf16 == 0 || bf16 == 24, "\(name): bf16 refused for \(bf16) of 24 shapes: \(Gemm.onednnDescription)")
        if bf16 > 0 { print("OneDNNLibraryTests: \(Gemm.onednnDescription) refuses bf16 matmuls on this CPU") }
    }

    /// One trial through gift_dnnl_gemm: dtype 0 with float operands, 1 with bf16 bits; false if refused.
    static func shim<T>(_ dtype: Int32, _ t: GemmBackendTests.Trial, _ a: [T], _ b: [T], _ c: inout [Float]) -> Bool {
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                gift_dnnl_gemm(dtype, t.transA ? 1 : 0, t.transB ? 1 : 0, t.m, t.n, t.k, t.alpha, pa.baseAddress, t.lda,
                               pb.baseAddress, t.ldb, t.beta, &c, t.ldc) == 0
            }
        }
    }

    /// The 3.x library in a process of its own: the shim test above and GemmBackendTests pass on it, and
    /// `gift bench`'s log and JSON name its version and path.
    func testOneDNN3InItsOwnProcess() throws {
        guard Self.env[Self.expectKey] == nil else { return }
        guard let lib = Self.onednn3 else {
            throw XCTSkip("no oneDNN 3.x here: launch/test.sh installs PyPI's onednn-cpu-gomp into the test venv"
                          + " (GIFT_PYTHON's), or GIFT_TEST_ONEDNN3=/path/libdnnl.so.3 names one")
        }
        let (r, tail, executed) = try rerunTests(["OneDNNLibraryTests/testShimAgreesWithTheReference", "GemmBackendTests"],
                                                 env: ["GIFT_ONEDNN_LIB": lib, Self.expectKey: "3|\(lib)"])
        let out = r.stdout + r.stderr
        XCTAssertEqual(r.status, 0, out.split(separator: "\n").filter { $0.contains(": error") || $0.contains("skipped") }
            .joined(separator: "\n"))
        XCTAssertGreaterThan(executed, 5, tail)
        XCTAssertTrue(tail.contains("with 0 failures"), tail)
        XCTAssertFalse(out.contains("oneDNN cases skipped"), "GemmBackendTests ran its oneDNN cases on \(lib)")

        let bench = try runGift(Self.benchArgs + ["--gemm", "onednn"], env: ["GIFT_ONEDNN_LIB": lib])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertTrue(bench.stdout.contains("onednn: oneDNN 3.") && bench.stdout.contains("(\(lib))"), bench.stdout)
        let json = try Self.summary(bench.stdout)
        XCTAssertTrue((json["onednn"] as? String)?.hasPrefix("oneDNN 3.") == true, "\(json)")
    }

    static let benchArgs = ["bench", "--preset", "tiny", "--seq", "16", "--batch", "1", "--steps", "1", "--warmup", "0",
                            "--objective", "sft"]

    static func summary(_ stdout: String) throws -> [String: Any] {
        let last = stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] ?? [:]
    }

    /// A GIFT_ONEDNN_LIB that cannot be used (no such file, a file that is no library, a library that is
    /// not oneDNN) is named with the reason in the log and the bench JSON's warnings, and gift goes on
    /// with the default oneDNN, or OpenBLAS without one; `--gemm onednn` then runs on the default or
    /// fails with a message that names the variable. No crash.
    func testUnusableLibraryIsReportedAndTheDefaultUsed() throws {
        let dir = try temporaryDirectory(self)
        let junk = dir.appendingPathComponent("libdnnl.so.3")
        try Data("not a shared library\n".utf8).write(to: junk)
        let missing = dir.appendingPathComponent("missing/libdnnl.so.3").path
        for (lib, reason) in [(missing, "No such file"), (junk.path, junk.path), ("libzstd.so.1", "lacks dnnl_")] {
            let r = try runGift(Self.benchArgs, env: ["GIFT_ONEDNN_LIB": lib])
            XCTAssertEqual(r.status, 0, r.stderr)
            let warning = "warning: GIFT_ONEDNN_LIB=\(lib) could not be used ("
            let line = r.stdout.split(separator: "\n").first { $0.contains(warning) }.map(String.init) ?? ""
            XCTAssertTrue(line.contains(reason) && line.contains("using the default oneDNN"), r.stdout)
            let json = try Self.summary(r.stdout)
            XCTAssertTrue((json["warnings"] as? [String] ?? []).contains { $0.hasPrefix(warning) }, "\(json)")
            let onednn = json["onednn"] as? String ?? ""
            XCTAssertTrue(onednn.hasPrefix("oneDNN unavailable") || !onednn.contains(lib), onednn)
        }
        let forced = try runGift(Self.benchArgs + ["--gemm", "onednn"], env: ["GIFT_ONEDNN_LIB": missing])
        if forced.status == 0 {
            XCTAssertTrue(forced.stdout.contains("\"compute\": \"onednn fp32\""), forced.stdout)
        } else {
            XCTAssertTrue(forced.stderr.contains("GIFT_ONEDNN_LIB=\(missing)"), forced.stderr)
            XCTAssertFalse(forced.stderr.contains("Fatal error"), forced.stderr)
        }
    }
}
