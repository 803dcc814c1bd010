import Foundation

/// Global-norm gradient clipping over the flat gradient buffer.
public enum GradClip {
    /// ‖g‖₂ accumulated in Double (in chunks, so the sum does not depend on the thread count).
    public static func norm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        let chunk = 1 << 16
        let n = (count + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: n)
        partial.withUnsafeMutableBufferPointer { pb in
            let pp = pb.baseAddress!
            Parallel.chunks(n) { c0, c1 in
                for c in c0..<c1 {
                    var s = 0.0
                    for i in (c * chunk)..<min(count, (c + 1) * chunk) { s += Double(g[i]) * Double(g[i]) }
                    pp[c] = s
                }
            }
        }
        return partial.reduce(0, +).squareRoot()
    }

    /// Scales g so that its norm is at most `maxNorm` (PyTorch's clip_grad_norm_: factor
    /// maxNorm / (norm + 1e-6) when below 1). Returns the norm before clipping.
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
        let n = norm(g, count: count)
        scale(g, count: count, norm: n, maxNorm: maxNorm)
        return n
    }

    /// The scaling step alone, for a norm computed elsewhere (ZeRO-1: over every rank's shard).
    public static func scale(_ g: UnsafeMutablePointer<Float>, count: Int, norm n: Double, maxNorm: Double) {
        guard maxNorm > 0, n.isFinite, n > 0 else { return }
        let f = maxNorm / (n + 1e-6)
        if f < 1 {
            let ff = Float(f)
            Parallel.chunks(count, minChunk: 1 << 16) { i0, i1 in for i in i0..<i1 { g[i] *= ff } }
        }
    }
}
