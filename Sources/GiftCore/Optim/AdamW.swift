import Foundation

/// AdamW (Loshchilov & Hutter) over the flat parameter buffer, with decoupled weight decay applied to
/// every matrix (embedding and output head included) and never to norm weights.
public final class AdamW: @unchecked Sendable {
    public var beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0
    public let m: FloatBuffer, v: FloatBuffer
    public private(set) var step = 0
    /// (offset, count) ranges that get weight decay.
    let decayRanges: [(Int, Int)], plainRanges: [(Int, Int)]

    public init(layout: ParameterLayout, weightDecay: Float = 0) {
        m = FloatBuffer(count: layout.count); v = FloatBuffer(count: layout.count)
        self.weightDecay = weightDecay
        decayRanges = layout.tensors.filter { !$0.isNorm }.map { ($0.offset, $0.count) }
        plainRanges = layout.tensors.filter { $0.isNorm }.map { ($0.offset, $0.count) }
    }

    /// One update with learning rate `lr`: p ← p − lr·(m̂/(√v̂ + eps) + wd·p).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float) {
        step += 1
        let bc1 = 1 - Foundation.pow(Double(beta1), Double(step)), bc2 = 1 - Foundation.pow(Double(beta2), Double(step))
        let a = Float(Double(lr) / bc1), rb2 = Float(1 / bc2.squareRoot())
        for (ranges, wd) in [(decayRanges, weightDecay), (plainRanges, Float(0))] {
            for (off, n) in ranges {
                let p = params + off, g = grads + off, mm = m.pointer + off, vv = v.pointer + off
                let b1 = beta1, b2 = beta2, eps = eps
                Parallel.chunks(n, minChunk: 1 << 16) { i0, i1 in
                    for i in i0..<i1 {
                        let gi = g[i]
                        mm[i] = b1 * mm[i] + (1 - b1) * gi
                        vv[i] = b2 * vv[i] + (1 - b2) * gi * gi
                        p[i] -= a * mm[i] / ((vv[i]).squareRoot() * rb2 + eps) + lr * wd * p[i]
                    }
                }
            }
        }
    }
}
