import Foundation
import XCTest
@testable import GiftCore

/// Each kernel's backward against central finite differences of its own forward (float32 kernels,
/// Double objective Σ out·proj, inputs of order 1, h = 1e-2: truncation error O(h²) ≈ 1e-4 relative,
/// float32 rounding ≈ 1e-7/h = 1e-5 relative, so 1e-2 relative + 1e-3 of the largest entry is a
/// tolerance no real bug passes, while float noise never fails it). That is the form of `checkGradient`
/// (TestSupport.swift): rtol 1e-2 ≥ 100× the O(h²) truncation, atol 1e-3·max|grad| ≥ 100× the rounding
/// u·|f|/h ≈ 6e-8·O(10)/1e-2 of the difference quotient (f is evaluated in Double from float32 outputs).
///
/// Direct comparisons with a float64 (or plain float32) formula use ErrorBounds.swift: u = 2^-24 times
/// the operations and reduction lengths involved, times the magnitudes (Σ|terms| or the value's own size).
final class KernelTests: XCTestCase {
    /// FastMath.exp's relative accuracy: the fitted degree-5 polynomial (≲ 1u), its six Horner FMAs (≤ 6u
    /// worst case; the terms shrink, so about 2u in practice) and the Cody–Waite reduction of r (≤ 1u):
    /// 8u ≈ 4.8e-7. (An exp argument x − shift computed in float32 adds u·|x − shift| on top.)
    static let expBound = float32Bound(reduction: 8, factor: 1)

    func testRMSNormBackward() {
        let rows = 3, d = 16
        var x = randomFloats(rows * d, seed: 1), w = randomFloats(d, seed: 2).map { 1 + 0.3 * $0 }
        let proj = randomFloats(rows * d, seed: 3)
        func fwd(_ x: [Float], _ w: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: rows * d)
            RMSNorm.forward(x: x, weight: w, y: &y, rstd: nil, rows: rows, d: d, eps: 1e-5)
            return y
        }
        var rstd = [Float](repeating: 0, count: rows), y = [Float](repeating: 0, count: rows * d)
        RMSNorm.forward(x: x, weight: w, y: &y, rstd: &rstd, rows: rows, d: d, eps: 1e-5)
        var dx = [Float](repeating: 0, count: rows * d), dw = [Float](repeating: 0, count: d)
        RMSNorm.backward(x: x, weight: w, rstd: rstd, dy: proj, dx: &dx, dw: &dw, rows: rows, d: d)
        let w0 = w, x0 = x
        checkGradient("rmsnorm dx", x: &x, analytic: dx) { project(fwd($0, w0), proj) }
        checkGradient("rmsnorm dw", x: &w, analytic: dw) { project(fwd(x0, $0), proj) }
        // accumulation: backward adds into dx
        var dx2 = [Float](repeating: 1, count: rows * d), dw2 = [Float](repeating: 0, count: d)
        RMSNorm.backward(x: x, weight: w, rstd: rstd, dy: proj, dx: &dx2, dw: &dw2, rows: rows, d: d)
        // the same per-element arithmetic as dx, then one addition into 1, and our own dx + 1: 2 roundings
        // of |dx| + 1; factor d covers an evaluation that reorders the row's d-long sum (γ_d · its size)
        for i in 0..<(rows * d) {
            XCTAssertEqual(dx2[i], dx[i] + 1, accuracy: Float(float32Bound(reduction: d + 2, factor: 1)) * (abs(dx[i]) + 1))
        }
    }

    func testRopeIsARotationAndBackwardIsItsTranspose() {
        let hd = 8, heads = 2, L = 5
        let rope = Rope(headDim: hd, maxLen: 16, theta: 10000)
        let x = randomFloats(L * heads * hd, seed: 4), y = randomFloats(L * heads * hd, seed: 5)
        var rx = x, ry = y
        rope.apply(&rx, batch: 1, seqLen: L, heads: heads)
        rope.apply(&ry, batch: 1, seqLen: L, heads: heads, inverse: true)
        // <R x, y> = <x, Rᵀ y>: project sums exactly-rounded Double products, so the error is the float32
        // rotation's: each rotated entry is off by ≤ 8u·(|x_a| + |x_b|) (cos/sin tables ≤ 2u, two products,
        // one addition, the angle pos·inv_freq ≤ 2u·pos with pos < 5 → ≤ 8u with FMA-free evaluation);
        // Σ|y_i|(|x_a| + |x_b|) ≤ 2‖x‖‖y‖ (Cauchy–Schwarz), for each side
        let nx = project(x, x).squareRoot(), ny = project(y, y).squareRoot()
        XCTAssertEqual(project(rx, y), project(x, ry), accuracy: 2 * float32Bound(reduction: 8, factor: 2 * nx * ny))
        // norms preserved per head vector; position 0 is the identity
        for p in 0..<L {
            for h in 0..<heads {
                let s = (p * heads + h) * hd
                let n0 = x[s..<(s + hd)].reduce(0) { $0 + $1 * $1 }, n1 = rx[s..<(s + hd)].reduce(0) { $0 + $1 * $1 }
                // each squared norm is an hd-long float32 sum (γ_hd · Σx²) and the rotation moves it by ≤ 2·8u·Σx²
                XCTAssertEqual(n0, n1, accuracy: Float(float32Bound(reduction: 2 * hd + 2 * 8, factor: 1)) * n0)
            }
        }
        for i in 0..<(heads * hd) { XCTAssertEqual(rx[i], x[i]) }
        // rotate-half: position 1, pair (0, hd/2) rotated by angle 1 (inv_freq of j = 0 is 1)
        // one rotated entry, both sides ≤ 8u·(|x_a| + |x_b|) as above
        let xa = x[heads * hd], xb = x[heads * hd + hd / 2]
        XCTAssertEqual(rx[heads * hd], xa * Float(cos(1.0)) - xb * Float(sin(1.0)),
                       accuracy: Float(float32Bound(reduction: 2 * 8, factor: 1)) * (abs(xa) + abs(xb)))
    }

    func testSwiGLUBackward() {
        let rows = 3, ff = 11   // ff not a multiple of 8: the scalar tail runs too
        var au = randomFloats(rows * 2 * ff, seed: 6, scale: 2)
        let proj = randomFloats(rows * ff, seed: 8)
        func fwd(_ au: [Float]) -> [Float] {
            var h = [Float](repeating: 0, count: rows * ff); SwiGLU.forward(au: au, h: &h, rows: rows, ff: ff); return h
        }
        let h = fwd(au)
        for r in 0..<rows {
            for i in 0..<ff {
                let a = au[r * 2 * ff + i], u = au[r * 2 * ff + ff + i]
                // float32 on both sides: the kernel's exp (expBound) and its 4 operations, the formula's exp
                // (1u, libm) and 4 operations; sigmoid passes exp's relative error on damped by (1 − σ) ≤ 1
                let want = a / (1 + exp(-a)) * u
                XCTAssertEqual(h[r * ff + i], want, accuracy: Float(Self.expBound + float32Bound(reduction: 9, factor: 1)) * abs(want) + .leastNormalMagnitude)
            }
        }
        var dau = [Float](repeating: 0, count: rows * 2 * ff)
        SwiGLU.backward(au: au, dh: proj, dau: &dau, rows: rows, ff: ff)
        checkGradient("swiglu d(a|u)", x: &au, analytic: dau) { project(fwd($0), proj) }
    }

    func testFastExpAccuracy() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let v = FastMath.exp(FastMath.V(repeating: x))[0]
            worst = max(worst, abs(Double(v) / Foundation.exp(Double(x)) - 1))
            x += 0.0137
        }
        print("FastMath.exp: worst relative error \(worst) (bound \(Self.expBound))")
        XCTAssertLessThan(worst, Self.expBound)
        let special = FastMath.exp(FastMath.V(-Float.infinity, .infinity, .nan, -100, 100, 0, -0.0, 1))
        XCTAssertEqual(special[0], 0); XCTAssertEqual(special[1], .infinity); XCTAssertTrue(special[2].isNaN)
        XCTAssertEqual(special[3], 0); XCTAssertEqual(special[4], .infinity); XCTAssertEqual(special[5], 1)
        XCTAssertEqual(special[7], Float(M_E), accuracy: Float(Self.expBound + float32UnitRoundoff) * Float(M_E))
    }

    /// The row kernel over lengths that exercise its 16-wide, 8-wide and scalar parts.
    func testExpShiftedRowsAndSums() {
        for n in [1, 7, 8, 15, 16, 17, 31, 40, 513] {
            let x = randomFloats(n, seed: UInt64(n), scale: 4)
            var out = [Float](repeating: 0, count: n)
            let sum = FastMath.expShifted(x, &out, count: n, shift: 1.5)
            // each output: expBound, plus u·|x − shift| from the float32 subtraction; the sum of n positive
            // terms (no cancellation): γ_n of the sum on top of the terms' own error
            var want = 0.0, worstArg = 0.0
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - 1.5)
                want += e
                let arg = abs(Double(x[i]) - 1.5); worstArg = max(worstArg, arg)
                XCTAssertEqual(Double(out[i]), e, accuracy: (Self.expBound + float32Bound(reduction: 1, factor: arg)) * e, "n \(n) i \(i)")
            }
            XCTAssertEqual(Double(sum), want, accuracy: (Self.expBound + float32Bound(reduction: 1, factor: worstArg) + highamGamma(n)) * want, "n \(n)")
            XCTAssertEqual(FastMath.max(x, count: n), x.max()!)
        }
    }

    /// The attention row kernels: exp of shifted scores (at most about 0) with their sum, and the fused
    /// softmax backward row, over lengths that exercise the 16-wide, 8-wide and scalar parts.
    func testSoftmaxRowKernels() {
        for n in [1, 7, 8, 15, 16, 17, 40, 513] {
            var x = randomFloats(n, seed: UInt64(100 + n), scale: 4)
            if n > 8 { x[3] = -.infinity; x[5] = -200 }
            let shift: Float = 4.5
            var out = [Float](repeating: 0, count: n)
            let sum = FastMath.expShiftedSoftmax(x, &out, count: n, shift: shift)
            // as in testExpShiftedRowsAndSums; + the smallest normal float for outputs that underflow
            var want = 0.0, worstArg = 0.0
            func expTol(_ arg: Double) -> Double { Self.expBound + float32Bound(reduction: 1, factor: arg.isFinite ? arg : 0) }
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - Double(shift))
                want += e
                let arg = abs(Double(x[i]) - Double(shift)); if e > 1e-30 { worstArg = max(worstArg, arg) }
                XCTAssertEqual(Double(out[i]), e, accuracy: expTol(arg) * e + Double(Float.leastNormalMagnitude), "n \(n) i \(i)")
            }
            XCTAssertEqual(Double(sum), want, accuracy: (expTol(worstArg) + highamGamma(n)) * want, "n \(n)")
            if n > 8 { XCTAssertEqual(out[3], 0); XCTAssertEqual(out[5], 0) }
            var p = x, d = randomFloats(n, seed: UInt64(200 + n))
            let d0 = d, c: Float = 0.3
            FastMath.softmaxBackwardRow(&p, &d, count: n, lse: shift, c: c)
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - Double(shift))
                // p as above; d = p·(d0 − c): p's error on |d0 − c| ≤ |d0| + |c|, plus a subtraction and a product
                let arg = abs(Double(x[i]) - Double(shift)), et = expTol(arg.isFinite ? arg : 0)
                XCTAssertEqual(Double(p[i]), e, accuracy: et * e + Double(Float.leastNormalMagnitude), "n \(n) i \(i)")
                XCTAssertEqual(Double(d[i]), e * (Double(d0[i]) - Double(c)),
                               accuracy: (et + float32Bound(reduction: 2, factor: 1)) * e * (abs(Double(d0[i])) + Double(c)) + Double(Float.leastNormalMagnitude),
                               "n \(n) i \(i)")
            }
        }
        let special = FastMath.expSoftmax(FastMath.V(-.infinity, .nan, -100, 0, -0.0, -1, 1, 100))
        XCTAssertEqual(special[0], 0); XCTAssertTrue(special[1].isNaN); XCTAssertEqual(special[2], 0)
        XCTAssertEqual(special[3], 1); XCTAssertEqual(special[4], 1); XCTAssertEqual(special[5], Float(1 / M_E), accuracy: Float(Self.expBound + float32UnitRoundoff) * Float(1 / M_E))
        XCTAssertEqual(special[6], Float(M_E), accuracy: Float(Self.expBound + float32UnitRoundoff) * Float(M_E)); XCTAssertTrue(special[7].isFinite)
    }

    func testCrossEntropyAndEntropy() {
        let V = 37
        var z = randomFloats(V, seed: 9, scale: 3)
        var tmp = [Float](repeating: 0, count: V), g = [Float](repeating: 0, count: V)
        let zd = z.map(Double.init), m = zd.max()!
        let lse = m + log(zd.reduce(0) { $0 + exp($1 - m) })
        let ce = Softmax.crossEntropy(z, count: V, target: 5, grad: &g, scale: 0.7, tmp: &tmp)
        // float32 log-sum-exp: each exp(z − m) within expBound + u·(m − z) (relative), the V-term sum γ_V, the
        // log ≤ u·|lse| absolute + the sum's relative error, the final m + log − z_t: 2u·(|m| + |lse| + |z_t|)
        let range = m - zd.min()!
        let sumErr = Self.expBound + float32Bound(reduction: V + 1, factor: 1) + float32Bound(reduction: 1, factor: range)
        XCTAssertEqual(Double(ce), lse - zd[5], accuracy: sumErr + float32Bound(reduction: 3, factor: abs(m) + abs(lse) + abs(zd[5])))
        let H = Softmax.entropy(z, count: V, tmp: &tmp)
        // entropy = log(sum) − Σ e_i(z_i − m)/sum: the weighted sum of terms |z_i − m| ≤ range carries sumErr
        // relative and its own γ_V (Σ|terms| ≤ range·sum), the division 1u, the log as above
        XCTAssertEqual(Double(H), -zd.reduce(0) { $0 + exp($1 - lse) * ($1 - lse) },
                       accuracy: sumErr * (1 + 2 * range) + float32Bound(reduction: V + 3, factor: range) + float32Bound(reduction: 2, factor: lse - m + range))
        checkGradient("ce dz", x: &z, analytic: g) { zz in
            var t = [Float](repeating: 0, count: V)
            return 0.7 * Double(Softmax.crossEntropy(zz, count: V, target: 5, grad: nil, scale: 0, tmp: &t))
        }
        // certain prediction: entropy 0, finite
        var peaked = [Float](repeating: -1e4, count: V); peaked[3] = 1e4
        XCTAssertEqual(Softmax.entropy(peaked, count: V, tmp: &tmp), 0)
        // uniform: every z − m = 0 exactly, so only log(sum) with sum = V ± γ_V·V and the log's rounding
        XCTAssertEqual(Softmax.entropy([Float](repeating: 2, count: V), count: V, tmp: &tmp), Float(log(Double(V))),
                       accuracy: Float(highamGamma(V) + Self.expBound + float32Bound(reduction: 1, factor: log(Double(V)))))
    }

    func testLinearBackward() {
        let rows = 4, inD = 6, outD = 5
        var x = randomFloats(rows * inD, seed: 10), w = randomFloats(outD * inD, seed: 11)
        let proj = randomFloats(rows * outD, seed: 12)
        func fwd(_ x: [Float], _ w: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: rows * outD); Gemm.linear(x, w, &y, rows: rows, inDim: inD, outDim: outD); return y
        }
        let y = fwd(x, w)
        // two float32 dot products of length inD, any order: each ≤ γ_inD · Σ|x_p w_p|
        let absDot = (0..<inD).reduce(0.0) { $0 + abs(Double(x[inD + $1]) * Double(w[2 * inD + $1])) }
        XCTAssertEqual(y[1 * outD + 2], (0..<inD).reduce(Float(0)) { $0 + x[inD + $1] * w[2 * inD + $1] },
                       accuracy: Float(2 * highamGamma(inD) * absDot))
        var dx = [Float](repeating: 0, count: rows * inD), dw = [Float](repeating: 0, count: outD * inD)
        Gemm.linearBackward(x: x, w: w, dy: proj, dx: &dx, dw: &dw, rows: rows, inDim: inD, outDim: outD)
        let x0 = x, w0 = w
        checkGradient("linear dx", x: &x, analytic: dx) { project(fwd($0, w0), proj) }
        checkGradient("linear dw", x: &w, analytic: dw) { project(fwd(x0, $0), proj) }
    }

    func testEmbeddingBackward() {
        let V = 7, d = 3
        let table = randomFloats(V * d, seed: 13), toks: [Int32] = [2, 5, 2, 0]
        var out = [Float](repeating: 0, count: toks.count * d)
        Embedding.forward(tokens: toks, table: table, out: &out, count: toks.count, d: d)
        XCTAssertEqual(Array(out[3..<6]), Array(table[15..<18]))
        let dx = randomFloats(toks.count * d, seed: 14)
        var dt = [Float](repeating: 0, count: V * d)
        Embedding.backward(tokens: toks, dx: dx, dtable: &dt, count: toks.count, d: d)
        // a sum of two: one rounding on each side (the table starts at 0, so the first add is exact)
        XCTAssertEqual(dt[2 * d], dx[0] + dx[2 * d], accuracy: Float(float32Bound(reduction: 2, factor: 1)) * (abs(dx[0]) + abs(dx[2 * d])))
        XCTAssertEqual(dt[1 * d], 0)
    }

    /// Attention against a naive softmax(QKᵀ/√hd)V, and its backward against finite differences;
    /// block sizes smaller than L exercise the recompute-by-blocks path.
    func testAttentionForwardBackward() {
        for blockRows in [3, 7] {
            let s = AttentionShape(batch: 2, seqLen: 7, heads: 4, kvHeads: 2, headDim: 4, blockRows: blockRows)
            let nq = s.batch * s.seqLen * s.ldQ, nk = s.batch * s.seqLen * s.ldKV
            var q = randomFloats(nq, seed: 15), k = randomFloats(nk, seed: 16), v = randomFloats(nk, seed: 17)
            let proj = randomFloats(nq, seed: 18)
            var scratch = [Float](repeating: 0, count: s.scratchCount * Parallel.workers)
            func fwd(_ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
                var o = [Float](repeating: 0, count: nq), sc = [Float](repeating: 0, count: s.scratchCount * Parallel.workers)
                Attention.forward(s, q: q, k: k, v: v, out: &o, lse: nil, scratch: &sc)
                return o
            }
            var out = [Float](repeating: 0, count: nq), lse = [Float](repeating: 0, count: s.batch * s.heads * s.seqLen)
            Attention.forward(s, q: q, k: k, v: v, out: &out, lse: &lse, scratch: &scratch)
            // naive check of one output row: batch 1, head 3 (kv group 1), query 2
            let b = 1, h = 3, g = 1, i = 2, L = s.seqLen, hd = s.headDim
            var sc = (0..<L).map { j in (0..<hd).reduce(0.0) { $0 + Double(q[(b * L + i) * s.ldQ + h * hd + $1]) * Double(k[(b * L + j) * s.ldKV + g * hd + $1]) } / 2 }
            let m = sc.max()!; sc = sc.map { exp($0 - m) }; let z = sc.reduce(0, +)
            // float32 attention against float64: scores are hd-long dots (γ_hd·Σ|q k| absolute), each exp
            // passes a score's absolute error on as relative error (+ expBound); the softmax normalises by
            // an L-term sum (γ_L) and the output is an L-term weighted sum of v (γ_L·Σ p|v|); a
            // blockwise (online) softmax rescales partial sums: + 4 roundings per block of rows
            var scoreErr = 0.0
            for j in 0..<L {
                let absDot = (0..<hd).reduce(0.0) { $0 + abs(Double(q[(b * L + i) * s.ldQ + h * hd + $1]) * Double(k[(b * L + j) * s.ldKV + g * hd + $1])) } / 2
                scoreErr = max(scoreErr, highamGamma(hd + 1) * absDot + float32UnitRoundoff * abs(log(sc[j]) + m))
            }
            let blocks = (L + blockRows - 1) / blockRows
            let pErr = 2 * (scoreErr + Self.expBound) + highamGamma(L + 4 * blocks)   // numerator and denominator
            for e in 0..<hd {
                let want = (0..<L).reduce(0.0) { $0 + sc[$1] / z * Double(v[(b * L + $1) * s.ldKV + g * hd + e]) }
                let absSum = (0..<L).reduce(0.0) { $0 + sc[$1] / z * abs(Double(v[(b * L + $1) * s.ldKV + g * hd + e])) }
                XCTAssertEqual(Double(out[(b * L + i) * s.ldQ + h * hd + e]), want, accuracy: (pErr + highamGamma(L + 4 * blocks)) * absSum)
            }
            // lse = m + log(z): the scores' error, the sum's relative error, the log's and the addition's rounding
            XCTAssertEqual(Double(lse[(b * s.heads + h) * L + i]), m + log(z),
                           accuracy: pErr + float32Bound(reduction: 2, factor: abs(m) + abs(log(z))))
            var dq = [Float](repeating: 0, count: nq), dk = [Float](repeating: 9, count: nk), dv = [Float](repeating: 9, count: nk)
            Attention.backward(s, q: q, k: k, v: v, out: out, lse: lse, dout: proj, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch)
            let q0 = q, k0 = k, v0 = v
            checkGradient("attn dq", x: &q, analytic: dq) { project(fwd($0, k0, v0), proj) }
            checkGradient("attn dk", x: &k, analytic: dk) { project(fwd(q0, $0, v0), proj) }
            checkGradient("attn dv", x: &v, analytic: dv) { project(fwd(q0, k0, $0), proj) }
        }
    }
}
