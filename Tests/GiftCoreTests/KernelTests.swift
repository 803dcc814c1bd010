import Foundation
import XCTest
@testable import GiftCore

/// Each kernel's backward against central finite differences of its own forward (float32 kernels,
/// Double objective Σ out·proj, inputs of order 1, h = 1e-2: truncation error O(h²) ≈ 1e-4 relative,
/// float32 rounding ≈ 1e-7/h = 1e-5 relative, so 1e-2 relative + 1e-3 of the largest entry is a
/// tolerance no real bug passes, while float noise never fails it).
final class KernelTests: XCTestCase {
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
        for i in 0..<(rows * d) { XCTAssertEqual(dx2[i], dx[i] + 1, accuracy: 1e-6) }
    }

    func testRopeIsARotationAndBackwardIsItsTranspose() {
        let hd = 8, heads = 2, L = 5
        let rope = Rope(headDim: hd, maxLen: 16, theta: 10000)
        let x = randomFloats(L * heads * hd, seed: 4), y = randomFloats(L * heads * hd, seed: 5)
        var rx = x, ry = y
        rope.apply(&rx, batch: 1, seqLen: L, heads: heads)
        rope.apply(&ry, batch: 1, seqLen: L, heads: heads, inverse: true)
        // <R x, y> = <x, Rᵀ y>
        XCTAssertEqual(project(rx, y), project(x, ry), accuracy: 1e-4)
        // norms preserved per head vector; position 0 is the identity
        for p in 0..<L {
            for h in 0..<heads {
                let s = (p * heads + h) * hd
                let n0 = x[s..<(s + hd)].reduce(0) { $0 + $1 * $1 }, n1 = rx[s..<(s + hd)].reduce(0) { $0 + $1 * $1 }
                XCTAssertEqual(n0, n1, accuracy: 1e-4)
            }
        }
        for i in 0..<(heads * hd) { XCTAssertEqual(rx[i], x[i]) }
        // rotate-half: position 1, pair (0, hd/2) rotated by angle 1 (inv_freq of j = 0 is 1)
        XCTAssertEqual(rx[heads * hd], x[heads * hd] * Float(cos(1.0)) - x[heads * hd + hd / 2] * Float(sin(1.0)), accuracy: 1e-5)
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
                XCTAssertEqual(h[r * ff + i], a / (1 + exp(-a)) * u, accuracy: 1e-5)
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
        XCTAssertLessThan(worst, 5e-7)
        let special = FastMath.exp(FastMath.V(-Float.infinity, .infinity, .nan, -100, 100, 0, -0.0, 1))
        XCTAssertEqual(special[0], 0); XCTAssertEqual(special[1], .infinity); XCTAssertTrue(special[2].isNaN)
        XCTAssertEqual(special[3], 0); XCTAssertEqual(special[4], .infinity); XCTAssertEqual(special[5], 1)
        XCTAssertEqual(special[7], Float(M_E), accuracy: 1e-6)
    }

    /// The row kernel over lengths that exercise its 16-wide, 8-wide and scalar parts.
    func testExpShiftedRowsAndSums() {
        for n in [1, 7, 8, 15, 16, 17, 31, 40, 513] {
            let x = randomFloats(n, seed: UInt64(n), scale: 4)
            var out = [Float](repeating: 0, count: n)
            let sum = FastMath.expShifted(x, &out, count: n, shift: 1.5)
            var want = 0.0
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - 1.5)
                want += e
                XCTAssertEqual(Double(out[i]), e, accuracy: 1e-6 * e, "n \(n) i \(i)")
            }
            XCTAssertEqual(Double(sum), want, accuracy: 1e-5 * want, "n \(n)")
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
            var want = 0.0
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - Double(shift))
                want += e
                XCTAssertEqual(Double(out[i]), e, accuracy: 1e-6 * e + 1e-37, "n \(n) i \(i)")
            }
            XCTAssertEqual(Double(sum), want, accuracy: 1e-5 * want, "n \(n)")
            if n > 8 { XCTAssertEqual(out[3], 0); XCTAssertEqual(out[5], 0) }
            var p = x, d = randomFloats(n, seed: UInt64(200 + n))
            let d0 = d, c: Float = 0.3
            FastMath.softmaxBackwardRow(&p, &d, count: n, lse: shift, c: c)
            for i in 0..<n {
                let e = Foundation.exp(Double(x[i]) - Double(shift))
                XCTAssertEqual(Double(p[i]), e, accuracy: 1e-6 * e + 1e-37, "n \(n) i \(i)")
                XCTAssertEqual(Double(d[i]), e * (Double(d0[i]) - Double(c)), accuracy: 1e-6 * e * (abs(Double(d0[i])) + 1) + 1e-37,
                               "n \(n) i \(i)")
            }
        }
        let special = FastMath.expSoftmax(FastMath.V(-.infinity, .nan, -100, 0, -0.0, -1, 1, 100))
        XCTAssertEqual(special[0], 0); XCTAssertTrue(special[1].isNaN); XCTAssertEqual(special[2], 0)
        XCTAssertEqual(special[3], 1); XCTAssertEqual(special[4], 1); XCTAssertEqual(special[5], Float(1 / M_E), accuracy: 1e-7)
        XCTAssertEqual(special[6], Float(M_E), accuracy: 1e-6); XCTAssertTrue(special[7].isFinite)
    }

    func testCrossEntropyAndEntropy() {
        let V = 37
        var z = randomFloats(V, seed: 9, scale: 3)
        var tmp = [Float](repeating: 0, count: V), g = [Float](repeating: 0, count: V)
        let zd = z.map(Double.init), m = zd.max()!
        let lse = m + log(zd.reduce(0) { $0 + exp($1 - m) })
        let ce = Softmax.crossEntropy(z, count: V, target: 5, grad: &g, scale: 0.7, tmp: &tmp)
        XCTAssertEqual(Double(ce), lse - zd[5], accuracy: 1e-5)
        let H = Softmax.entropy(z, count: V, tmp: &tmp)
        XCTAssertEqual(Double(H), -zd.reduce(0) { $0 + exp($1 - lse) * ($1 - lse) }, accuracy: 1e-5)
        checkGradient("ce dz", x: &z, analytic: g) { zz in
            var t = [Float](repeating: 0, count: V)
            return 0.7 * Double(Softmax.crossEntropy(zz, count: V, target: 5, grad: nil, scale: 0, tmp: &t))
        }
        // certain prediction: entropy 0, finite
        var peaked = [Float](repeating: -1e4, count: V); peaked[3] = 1e4
        XCTAssertEqual(Softmax.entropy(peaked, count: V, tmp: &tmp), 0)
        XCTAssertEqual(Softmax.entropy([Float](repeating: 2, count: V), count: V, tmp: &tmp), Float(log(Double(V))), accuracy: 1e-5)
    }

    func testLinearBackward() {
        let rows = 4, inD = 6, outD = 5
        var x = randomFloats(rows * inD, seed: 10), w = randomFloats(outD * inD, seed: 11)
        let proj = randomFloats(rows * outD, seed: 12)
        func fwd(_ x: [Float], _ w: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: rows * outD); Gemm.linear(x, w, &y, rows: rows, inDim: inD, outDim: outD); return y
        }
        let y = fwd(x, w)
        XCTAssertEqual(y[1 * outD + 2], (0..<inD).reduce(Float(0)) { $0 + x[inD + $1] * w[2 * inD + $1] }, accuracy: 1e-5)
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
        XCTAssertEqual(dt[2 * d], dx[0] + dx[2 * d], accuracy: 1e-6)
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
            for e in 0..<hd {
                let want = (0..<L).reduce(0.0) { $0 + sc[$1] / z * Double(v[(b * L + $1) * s.ldKV + g * hd + e]) }
                XCTAssertEqual(Double(out[(b * L + i) * s.ldQ + h * hd + e]), want, accuracy: 1e-5)
            }
            XCTAssertEqual(Double(lse[(b * s.heads + h) * L + i]), m + log(z), accuracy: 1e-5)
            var dq = [Float](repeating: 0, count: nq), dk = [Float](repeating: 9, count: nk), dv = [Float](repeating: 9, count: nk)
            Attention.backward(s, q: q, k: k, v: v, out: out, lse: lse, dout: proj, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch)
            let q0 = q, k0 = k, v0 = v
            checkGradient("attn dq", x: &q, analytic: dq) { project(fwd($0, k0, v0), proj) }
            checkGradient("attn dk", x: &k, analytic: dk) { project(fwd(q0, $0, v0), proj) }
            checkGradient("attn dv", x: &v, analytic: dv) { project(fwd(q0, k0, $0), proj) }
        }
    }
}
