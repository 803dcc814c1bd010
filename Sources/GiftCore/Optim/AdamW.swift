import Foundation

/// AdamW (Loshchilov & Hutter) over the flat parameter buffer, with decoupled weight decay applied to
/// every matrix (embedding and output head included) and never to norm weights.
public final class AdamW: @unchecked Sendable {
    public var beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.0
    public let m: FloatBuffer, v: FloatBuffer
    /// Updates applied so far (its bias correction); restored on resume.
    public var step = 0
    /// (offset, count) ranges that get weight decay.
    let decayRanges: [(Int, Int)], plainRanges: [(Int, Int)]

    /// The flat offsets this optimizer owns: everything, or one rank's shard under ZeRO-1.
    public let shard: Range<Int>

    public convenience init(layout: ParameterLayout, weightDecay: Double = 0, shard: Range<Int>? = nil) {
        self.init(table: layout.table, weightDecay: weightDecay, shard: shard)
    }

    /// Over any flat buffer's table (a LoRA run's adapters: every one a matrix, so all decay).
    public init(table layout: TensorTable, weightDecay: Double = 0, shard: Range<Int>? = nil) {
        let sh = shard ?? 0..<layout.count
        self.shard = sh
        m = FloatBuffer(count: sh.count); v = FloatBuffer(count: sh.count)
        self.weightDecay = weightDecay
        func clipped(_ t: TensorInfo) -> (Int, Int)? {
            let lo = max(t.offset, sh.lowerBound), hi = min(t.offset + t.count, sh.upperBound)
            return lo < hi ? (lo, hi - lo) : nil
        }
        decayRanges = layout.tensors.filter(\.decays).compactMap(clipped)
        plainRanges = layout.tensors.filter { !$0.decays }.compactMap(clipped)
    }

    /// One update with learning rate `lr`: p ← p − lr·(m̂/(√v̂ + eps) + wd·p), over the shard.
    /// `grads` is indexed like `params` (flat offsets); only the shard's entries are read.
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float) {
        step += 1
        let bc1 = 1 - Foundation.pow(beta1, Double(step)), bc2 = 1 - Foundation.pow(beta2, Double(step))
        let a = Float(Double(lr) / bc1), rb2 = Float(1 / bc2.squareRoot())
        // (1 − beta) in Double first: Float(0.999) is 0.99900001, whose complement is 1.3e-5 off
        let b1 = Float(beta1), c1 = Float(1 - beta1), b2 = Float(beta2), c2 = Float(1 - beta2), eps = Float(eps)
        for (ranges, wdD) in [(decayRanges, weightDecay), (plainRanges, 0.0)] {
            let wd = Float(wdD)
            for (off, n) in ranges {
                let p = params + off, g = grads + off
                let mm = m.pointer + (off - shard.lowerBound), vv = v.pointer + (off - shard.lowerBound)
                Parallel.chunks(n, minChunk: 1 << 16) { i0, i1 in
                    // 8 lanes at a time with exactly the scalar tail's operations in the same order (no
                    // fused multiply-adds), so every element gets the same bits either way
                    typealias V = SIMD8<Float>
                    let vb1 = V(repeating: b1), vc1 = V(repeating: c1), vb2 = V(repeating: b2), vc2 = V(repeating: c2)
                    let va = V(repeating: a), vrb2 = V(repeating: rb2), veps = V(repeating: eps), vlr = V(repeating: lr)
                    let vwd = V(repeating: wd)
                    var i = i0
                    while i + 8 <= i1 {
                        let gi = FastMath.load(g + i)
                        let mi = vb1 * FastMath.load(mm + i) + vc1 * gi
                        let vi = vb2 * FastMath.load(vv + i) + vc2 * gi * gi
                        let pi = FastMath.load(p + i)
                        FastMath.store(mi, mm + i); FastMath.store(vi, vv + i)
                        FastMath.store(pi - (va * mi / (vi.squareRoot() * vrb2 + veps) + vlr * vwd * pi), p + i)
                        i += 8
                    }
                    while i < i1 {
                        let gi = g[i]
                        mm[i] = b1 * mm[i] + c1 * gi
                        vv[i] = b2 * vv[i] + c2 * gi * gi
                        p[i] -= a * mm[i] / ((vv[i]).squareRoot() * rb2 + eps) + lr * wd * p[i]
                        i += 1
                    }
                }
            }
        }
    }
}
