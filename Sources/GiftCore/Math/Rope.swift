import Foundation

/// Rotary position embedding, rotate-half form (LLaDA/Llama): for j < h = headDim/2,
/// out[j] = x[j]·cos − x[j+h]·sin, out[j+h] = x[j+h]·cos + x[j]·sin, angle = pos · theta^(−2j/headDim).
/// Angles are computed in Double once per (position, j) ("rope_full_precision").
public final class Rope: @unchecked Sendable {
    public let headDim: Int
    public let maxLen: Int
    let cosT: FloatBuffer, sinT: FloatBuffer   // [maxLen, headDim/2]

    public init(headDim: Int, maxLen: Int, theta: Double) {
        self.headDim = headDim; self.maxLen = maxLen
        let h = headDim / 2
        cosT = FloatBuffer(count: maxLen * h); sinT = FloatBuffer(count: maxLen * h)
        for p in 0..<maxLen {
            for j in 0..<h {
                let invFreq = 1.0 / Foundation.pow(theta, Double(2 * j) / Double(headDim))
                let a = Double(p) * invFreq
                cosT[p * h + j] = Float(Foundation.cos(a)); sinT[p * h + j] = Float(Foundation.sin(a))
            }
        }
    }

    /// In place on x laid out [batch, seqLen] rows of `rowStride` floats (default heads·headDim), the
    /// heads' vectors at the start of each row. `inverse` applies the transposed rotation (backward).
    /// `offset`: the position of each sequence's first row (rows that continue a cached prefix).
    public func apply(_ x: UnsafeMutablePointer<Float>, batch: Int, seqLen: Int, heads: Int, rowStride: Int? = nil,
                      inverse: Bool = false, offset: Int = 0) {
        let ld = rowStride ?? heads * headDim
        precondition(offset >= 0 && seqLen + offset <= maxLen, "sequence longer than the rope table")
        let h = headDim / 2
        let sign: Float = inverse ? -1 : 1
        let cosP = cosT.pointer, sinP = sinT.pointer, headDim = headDim
        Parallel.chunks(batch * seqLen, minChunk: 16) { t0, t1 in
            for t in t0..<t1 {
                let p = t % seqLen + offset
                let c = cosP + p * h, s = sinP + p * h
                let row = x + t * ld
                for hd in 0..<heads {
                    let v = row + hd * headDim
                    for j in 0..<h {
                        let x1 = v[j], x2 = v[j + h], sn = sign * s[j]
                        v[j] = x1 * c[j] - x2 * sn
                        v[j + h] = x2 * c[j] + x1 * sn
                    }
                }
            }
        }
    }
}
