import Foundation
import XCTest
@testable import GiftCore

/// Every GEMM backend and precision against a plain float64 reference, on random shapes with every
/// transpose, padded leading dimensions, alpha and beta. oneDNN cases run where libdnnl is installed
/// (launch/install-deps.sh installs it, so CI runs them) and are skipped with a note elsewhere.
///
/// Bounds (ErrorBounds.swift; e = |alpha|·Σ_p |a_ip|·|b_pj| + |beta·c0_ij| per entry, the Σ|terms| of
/// Higham's bound, so they hold for every kernel and summation order with no factor for cancellation):
/// - fp32: |C − C_ref| ≤ γ_{k+4} · e. A term of the k-long dot product meets its product's rounding,
///   at most k − 1 additions, the multiplication by alpha and the addition of beta·c0 (k + 2 roundings);
///   2 more cover a kernel that blocks k and adds each panel's partial sum into C. Factor 1: γ is the
///   worst case, actual errors are ~√k·u (the largest k here is 300: γ ≈ 1.8e-5).
/// - bf16 against the reference on bf16-rounded inputs: the same γ_{k+4} · e (bf16 × bf16 products are
///   exact in float32, 8 + 8 ≤ 24 significant bits; only the float32 summation differs).
/// - bf16 against the unrounded reference: ≤ (2·2^-8 + 2^-16) · e + γ_{k+4} · e (each operand is off by at
///   most the bf16 unit roundoff 2^-8, so each product by at most 2·2^-8 + 2^-16, plus the float32 sum).
///   And it must exceed the fp32 bound somewhere when k > 4: otherwise the inputs were not rounded.
final class GemmBackendTests: XCTestCase {
    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    struct Setting { let gemm: String; let precision: Precision; let kernel: BF16Kernel? }

    /// openblas fp32/bf16-emulated always; onednn fp32, bf16 emulated and bf16 native when available.
    func settings() -> [Setting] {
        var s = [Setting(gemm: "openblas", precision: .fp32, kernel: nil),
                 Setting(gemm: "openblas", precision: .bf16, kernel: .emulated)]
        if Gemm.onednnAvailable {
            s += [Setting(gemm: "onednn", precision: .fp32, kernel: nil),
                  Setting(gemm: "onednn", precision: .bf16, kernel: .emulated),
                  Setting(gemm: "onednn", precision: .bf16, kernel: .native)]
        } else {
            print("GemmBackendTests: oneDNN cases skipped: \(Gemm.onednnDescription)")
        }
        return s
    }

    /// C = alpha op(A) op(B) + beta C0 in Double; also the error scale e per entry.
    static func reference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                   b: [Float], ldb: Int, beta: Float, c0: [Float], ldc: Int, round: Bool) -> ([Double], [Double]) {
        func A(_ i: Int, _ p: Int) -> Double {
            let v = transA ? a[p * lda + i] : a[i * lda + p]; return Double(round ? BFloat16.round(v) : v)
        }
        func B(_ p: Int, _ j: Int) -> Double {
            let v = transB ? b[j * ldb + p] : b[p * ldb + j]; return Double(round ? BFloat16.round(v) : v)
        }
        var c = [Double](repeating: 0, count: m * ldc), e = c
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, sa = 0.0
                for p in 0..<k { s += A(i, p) * B(p, j); sa += abs(A(i, p) * B(p, j)) }
                c[i * ldc + j] = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                e[i * ldc + j] = abs(Double(alpha)) * sa + abs(Double(beta) * Double(c0[i * ldc + j])) + 1e-30
            }
        }
        return (c, e)
    }

    func testEveryBackendAgreesWithTheReference() throws {
        for setting in settings() {
            try useBackend(setting.gemm, precision: setting.precision, kernel: setting.kernel)
            Self.checkRandomGEMMs(Gemm.summary, bf16: setting.precision == .bf16) { t, a, b, c in
                Gemm.mm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: t.lda,
                        b: b, ldb: t.ldb, beta: t.beta, c: &c, ldc: t.ldc)
                return true
            }
        }
    }

    /// One random GEMM of `checkRandomGEMMs`: its shape, transposes, padded leading dimensions, alpha, beta.
    struct Trial { let transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int, alpha: Float, beta: Float }

    /// 24 random GEMMs (every transpose, padded leading dimensions, alpha 1 and 0.37, beta 0, 1 and -0.5)
    /// through `gemm` (operands as floats; it returns false when the kernel refused the shape, and such
    /// trials are not checked), each against the float64 reference within the bounds in the class comment.
    /// Returns how many trials `gemm` refused.
    @discardableResult
    static func checkRandomGEMMs(_ name: String, bf16 bf: Bool,
                                 _ gemm: (Trial, [Float], [Float], inout [Float]) -> Bool) -> Int {
        let r = CounterRNG(2024, 9)
        var worstSeen = 0.0, refused = 0   // the largest error as a fraction of its bound, printed for information
        defer { print(String(format: "GemmBackendTests %@: largest error %.3f of the bound γ_{k+4}·e", name, worstSeen)) }
        for trial in 0..<24 {
            let u = UInt64(trial) * 16
            let m = 1 + Int(r.bits(u) % 70), n = 1 + Int(r.bits(u + 1) % 90), k = 1 + Int(r.bits(u + 2) % 300)
            let transA = trial % 2 == 1, transB = (trial / 2) % 2 == 1
            let padA = Int(r.bits(u + 3) % 5), padB = Int(r.bits(u + 4) % 5), padC = Int(r.bits(u + 5) % 3)
            let t = Trial(transA: transA, transB: transB, m: m, n: n, k: k, lda: (transA ? m : k) + padA,
                          ldb: (transB ? k : n) + padB, ldc: n + padC, alpha: trial % 3 == 0 ? 1 : 0.37,
                          beta: [0, 1, -0.5][trial % 3])
            let a = randomFloats((transA ? k : m) * t.lda, seed: u + 6)
            let b = randomFloats((transB ? n : k) * t.ldb, seed: u + 7)
            let c0 = randomFloats(m * t.ldc, seed: u + 8)
            var c = c0
            guard gemm(t, a, b, &c) else { refused += 1; continue }
            worstSeen = max(worstSeen, check(name, t, a, b, c0, c, bf16: bf))
        }
        return refused
    }

    /// One trial's result against the references; returns its largest error as a fraction of the fp32 bound.
    static func check(_ name: String, _ t: Trial, _ a: [Float], _ b: [Float], _ c0: [Float], _ c: [Float], bf16 bf: Bool) -> Double {
        let (m, n, k, ldc) = (t.m, t.n, t.k, t.ldc)
        func ref(_ round: Bool) -> ([Double], [Double]) {
            reference(transA: t.transA, transB: t.transB, m: m, n: n, k: k, alpha: t.alpha, a: a, lda: t.lda,
                      b: b, ldb: t.ldb, beta: t.beta, c0: c0, ldc: ldc, round: round)
        }
        let (want, e) = ref(bf), (exact, _) = ref(false)
        var worst = 0.0, worstExact = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let x = i * ldc + j
                worst = max(worst, abs(Double(c[x]) - want[x]) / e[x])
                worstExact = max(worstExact, abs(Double(c[x]) - exact[x]) / e[x])
            }
            for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "\(name): padding of C written") }
        }
        let what = "\(name) m\(m) n\(n) k\(k) tA\(t.transA) tB\(t.transB) lda\(t.lda) ldb\(t.ldb) ldc\(ldc) alpha\(t.alpha) beta\(t.beta)"
        let fp32Bound = highamGamma(k + 4)
        XCTAssertLessThanOrEqual(worst, fp32Bound, what)
        if bf {
            let operandBound = 2 * bfloat16UnitRoundoff + bfloat16UnitRoundoff * bfloat16UnitRoundoff
            XCTAssertLessThanOrEqual(worstExact, operandBound + fp32Bound, "\(what) vs unrounded inputs")
            // bf16 must really round: with random inputs the result differs from fp32's somewhere
            if k > 4 { XCTAssertGreaterThan(worstExact, fp32Bound, "\(what): inputs were not rounded to bf16") }
        }
        return worst / fp32Bound
    }

    /// The bf16 weight copy (made once per step) gives bit-identical results to rounding on the fly.
    func testWeightMirrorMatchesOnTheFlyRounding() throws {
        let rows = 37, inD = 64, outD = 48
        let x = randomFloats(rows * inD, seed: 1)
        let params = randomFloats(5000, seed: 2)   // a "flat buffer" with the weight at offset 1000
        for setting in settings() where setting.precision == .bf16 {
            try useBackend(setting.gemm, precision: .bf16, kernel: setting.kernel)
            var plain = [Float](repeating: 0, count: rows * outD), mirrored = plain
            params.withUnsafeBufferPointer { p in
                let w = p.baseAddress! + 1000
                Gemm.linear(x, w, &plain, rows: rows, inDim: inD, outDim: outD)
                Gemm.withWeightMirror(p.baseAddress!, count: p.count) {
                    XCTAssertNotNil(Gemm.mirror.rounded(w, inD) ?? Gemm.mirror.bits(w, inD).map { _ in (w, 0) })
                    Gemm.linear(x, w, &mirrored, rows: rows, inDim: inD, outDim: outD)
                }
                XCTAssertNil(Gemm.mirror.rounded(w, inD), "the copy is dropped after the step")
            }
            XCTAssertEqual(plain, mirrored, Gemm.summary)
        }
    }

    /// linearBackward converts dy once for its two GEMMs: the same bits as two plain bf16 GEMMs.
    func testBF16LinearBackwardMatchesTwoGEMMs() throws {
        let rows = 33, inD = 40, outD = 24
        let x = randomFloats(rows * inD, seed: 11), w = randomFloats(outD * inD, seed: 12), dy = randomFloats(rows * outD, seed: 13)
        let dw0 = randomFloats(outD * inD, seed: 14)
        for setting in settings() where setting.precision == .bf16 {
            try useBackend(setting.gemm, precision: .bf16, kernel: setting.kernel)
            var dw = dw0, dx = [Float](repeating: 0, count: rows * inD)
            Gemm.linearBackward(x: x, w: w, dy: dy, dx: &dx, dw: &dw, rows: rows, inDim: inD, outDim: outD)
            var dw2 = dw0, dx2 = [Float](repeating: 0, count: rows * inD)
            Gemm.mm(transA: true, m: outD, n: inD, k: rows, a: dy, lda: outD, b: x, ldb: inD, beta: 1, c: &dw2, ldc: inD)
            Gemm.mm(m: rows, n: inD, k: outD, a: dy, lda: outD, b: w, ldb: inD, c: &dx2, ldc: inD)
            XCTAssertEqual(dw, dw2, Gemm.summary)
            XCTAssertEqual(dx, dx2, Gemm.summary)
        }
    }

    func testVectorisedRoundingMatchesScalar() {
        var xs = randomFloats(1000, seed: 5, scale: 100)
        // ties (exactly half an ulp of bf16, both parities), NaNs with low payloads, infinities, extremes
        xs += [Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x7F80_0001),
               Float(bitPattern: 0xFFC0_0001), .infinity, -.infinity, .greatestFiniteMagnitude, -0.0,
               .leastNonzeroMagnitude, Float(bitPattern: 0x7F7F_FFFF), Float(bitPattern: 0x0000_8000)]
        var rounded = [Float](repeating: 0, count: xs.count), bits = [UInt16](repeating: 0, count: xs.count)
        BFloat16.roundFast(xs, into: &rounded, count: xs.count)
        BFloat16.encodeFast(xs, into: &bits, count: xs.count)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(bits[i], BFloat16.fromFloat(x), "bits of \(x) (\(String(x.bitPattern, radix: 16)))")
            XCTAssertEqual(rounded[i].bitPattern, BFloat16.round(x).bitPattern, "rounding of \(x)")
        }
        XCTAssertEqual(BFloat16.fromFloat(Float(bitPattern: 0x3F80_8000)), 0x3F80, "tie to even (down)")
        XCTAssertEqual(BFloat16.fromFloat(Float(bitPattern: 0x3F81_8000)), 0x3F82, "tie to even (up)")
        XCTAssertTrue(rounded[1002].isNaN, "a NaN whose payload is in the dropped bits stays NaN")
    }

    func testConfigureErrors() {
        XCTAssertThrowsError(try Gemm.configure(gemm: "cublas")) { e in
            XCTAssertTrue("\(e)".contains("auto, openblas or onednn"), "\(e)")
        }
        XCTAssertThrowsError(try useBackend("openblas", precision: .bf16, kernel: .native)) { e in
            XCTAssertTrue("\(e)".contains("oneDNN"), "\(e)")
        }
        // auto: OpenBLAS (the emulation in bf16) until the command measures (`KernelChoice`): no rule by ISA
        XCTAssertNoThrow(try Gemm.configure(gemm: "auto"))
        XCTAssertEqual(Gemm.backend, .openblas, "auto in fp32")
        XCTAssertNoThrow(try Gemm.configure(gemm: "auto", precision: .bf16))
        XCTAssertEqual(Gemm.backend, .openblas, "auto in bf16")
        XCTAssertEqual(Gemm.bf16Kernel, .emulated, Gemm.bf16KernelReason)
        XCTAssertTrue(Gemm.bf16KernelReason.contains("until the kernels are measured"), Gemm.bf16KernelReason)
        if Gemm.onednnAvailable {   // --gemm onednn in bf16: the native kernel where the CPU has bf16 instructions
            XCTAssertNoThrow(try Gemm.configure(gemm: "onednn", precision: .bf16))
            XCTAssertEqual(Gemm.bf16Kernel, Gemm.nativeBF16 ? .native : .emulated)
            XCTAssertTrue(Gemm.bf16KernelReason.contains(Gemm.nativeBF16 ? "bf16 instructions" : "emulation"), Gemm.bf16KernelReason)
            XCTAssertNoThrow(try Gemm.configure(gemm: "onednn", precision: .bf16, bf16Kernel: .native))
            XCTAssertEqual(Gemm.bf16Kernel, .native)
            XCTAssertTrue(Gemm.bf16KernelReason.contains("forced"), Gemm.bf16KernelReason)
        }
    }

    /// GIFT_BF16_KERNEL=native with `gift bench --gemm onednn --precision bf16`: the bench's fp32 reference
    /// lanes (OpenBLAS and oneDNN) are not bf16 settings and leave the variable alone; the bf16 lane runs
    /// the native kernel and its JSON line names it.
    func testBenchHonoursTheBF16KernelVariable() throws {
        guard Gemm.onednnAvailable else { throw XCTSkip("oneDNN not installed: \(Gemm.onednnDescription)") }
        let r = try runGift(["bench", "--preset", "tiny", "--seq", "16", "--batch", "1", "--steps", "1", "--warmup", "0",
                             "--objective", "sft", "--gemm", "onednn", "--precision", "bf16"], env: ["GIFT_BF16_KERNEL": "native"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"compute\": \"onednn bf16 (native)\""), r.stdout)
    }
}
