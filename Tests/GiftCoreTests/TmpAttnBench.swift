import Foundation
import XCTest
@testable import GiftCore

final class TmpAttnBench: XCTestCase {
    func testAttnTiming() {
        let s = AttentionShape(batch: 2, seqLen: 512, heads: 8, kvHeads: 8, headDim: 64)
        let n = 2 * 512 * 512
        let q = FloatBuffer(randomFloats(n, seed: 1)), k = FloatBuffer(randomFloats(n, seed: 2)), v = FloatBuffer(randomFloats(n, seed: 3))
        let o = FloatBuffer(count: n), lse = FloatBuffer(count: 2 * 8 * 512), sc = FloatBuffer(count: s.scratchCount * Parallel.workers)
        let dq = FloatBuffer(count: n), dk = FloatBuffer(count: n), dv = FloatBuffer(count: n)
        func time(_ name: String, _ f: () -> Void) {
            f()
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<5 { f() }
            print(name, Double(DispatchTime.now().uptimeNanoseconds - t0) / 5e6, "ms")
        }
        time("attn fwd") { Attention.forward(s, q: q.pointer, k: k.pointer, v: v.pointer, out: o.pointer, lse: lse.pointer, scratch: sc.pointer) }
        time("attn bwd") { Attention.backward(s, q: q.pointer, k: k.pointer, v: v.pointer, out: o.pointer, lse: lse.pointer, dout: q.pointer, dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, scratch: sc.pointer) }
        time("qk gemm x16 (1 thr)") {
            Parallel.tasks(16) { t, w in
                Gemm.mm(transB: true, m: 512, n: 512, k: 64, alpha: 0.125, a: q.pointer + (t / 8) * 512 * 512 + (t % 8) * 64, lda: 512, b: k.pointer + (t / 8) * 512 * 512 + (t % 8) * 64, ldb: 512, c: sc.pointer + w * s.scratchCount, ldc: 512)
            }
        }
        time("pv gemm x16 (1 thr)") {
            Parallel.tasks(16) { t, w in
                Gemm.mm(m: 512, n: 64, k: 512, a: sc.pointer + w * s.scratchCount, lda: 512, b: v.pointer + (t / 8) * 512 * 512 + (t % 8) * 64, ldb: 512, c: o.pointer + (t / 8) * 512 * 512 + (t % 8) * 64, ldc: 512)
            }
        }
        time("softmax x16") {
            Parallel.tasks(16) { t, w in
                let S = sc.pointer + w * s.scratchCount
                for r in 0..<512 {
                    let row = S + r * 512
                    let m = FastMath.max(row, count: 512)
                    let sum = FastMath.expShifted(row, row, count: 512, shift: m)
                    FastMath.scale(row, count: 512, by: 1 / sum)
                }
            }
        }
        let big = FloatBuffer(randomFloats(1 << 22, seed: 5))
        let out = FloatBuffer(count: 1 << 22)
        time("max 4M") { _ = FastMath.max(big.pointer, count: 1 << 22) }
        time("expShifted 4M") { _ = FastMath.expShifted(big.pointer, out.pointer, count: 1 << 22, shift: 3) }
        time("scale 4M") { FastMath.scale(out.pointer, count: 1 << 22, by: 0.5) }
        time("setThreads x32") { for _ in 0..<16 { Gemm.setThreads(1); Gemm.setThreads(2) } }
    }
}
