import Foundation

/// Bidirectional softmax attention with grouped-query heads, flash-attention style: forward keeps only
/// each row's log-sum-exp (O(L) per head), backward recomputes the scores a block of query rows at a
/// time, so memory is O(L·d) per layer plus one [block × L] scratch, never [heads, L, L].
///
/// Layouts: q, out [batch·L, heads·hd]; k, v [batch·L, kvHeads·hd]; lse [batch, heads, L].
public struct AttentionShape: Sendable {
    public let batch, seqLen, heads, kvHeads, headDim: Int
    public var qStride: Int { heads * headDim }
    public var kvStride: Int { kvHeads * headDim }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
    /// Query rows per block: by default the [rows × L] score block is about 256K floats (1 MiB).
    public var blockRows: Int
    /// Floats of scratch one worker needs in backward (forward needs half).
    public var scratchCount: Int { 2 * blockRows * seqLen }

    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int, blockRows: Int? = nil) {
        self.batch = batch; self.seqLen = seqLen; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.blockRows = blockRows ?? max(1, min(seqLen, (1 << 18) / max(seqLen, 1)))
    }
}

public enum Attention {
    /// `scratch` holds `Parallel.workers × s.scratchCount` floats: (batch, kv group) pairs run in parallel.
    public static func forward(_ s: AttentionShape, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                               v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               lse: UnsafeMutablePointer<Float>?, scratch scratch0: UnsafeMutablePointer<Float>) {
        let L = s.seqLen, hd = s.headDim, group = s.heads / s.kvHeads, blk = s.blockRows
        Parallel.tasks(s.batch * s.kvHeads) { task, worker in
            let b = task / s.kvHeads, g = task % s.kvHeads
            let scratch = scratch0 + worker * s.scratchCount
            for h in (g * group)..<((g + 1) * group) {
                let qh = q + b * L * s.qStride + h * hd
                let kh = k + b * L * s.kvStride + g * hd, vh = v + b * L * s.kvStride + g * hd
                let oh = out + b * L * s.qStride + h * hd
                var i0 = 0
                while i0 < L {
                    let rows = min(blk, L - i0)
                    // S = scale · Q_blk Kᵀ
                    Gemm.mm(transB: true, m: rows, n: L, k: hd, alpha: s.scale, a: qh + i0 * s.qStride, lda: s.qStride,
                            b: kh, ldb: s.kvStride, c: scratch, ldc: L)
                    for r in 0..<rows {
                        let row = scratch + r * L
                        let m = FastMath.max(row, count: L)
                        let sum = FastMath.expShifted(row, row, count: L, shift: m)
                        FastMath.scale(row, count: L, by: 1 / sum)
                        lse?[(b * s.heads + h) * L + i0 + r] = m + Foundation.log(sum)
                    }
                    // O_blk = P V
                    Gemm.mm(m: rows, n: hd, k: L, a: scratch, lda: L, b: vh, ldb: s.kvStride,
                            c: oh + i0 * s.qStride, ldc: s.qStride)
                    i0 += rows
                }
            }
        }
    }

    /// Gradients: dq is overwritten; dk and dv are overwritten too (zeroed here, then accumulated
    /// over the heads of each group).
    public static func backward(_ s: AttentionShape, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                v: UnsafePointer<Float>, out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                                dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                scratch scratch0: UnsafeMutablePointer<Float>) {
        let L = s.seqLen, hd = s.headDim, group = s.heads / s.kvHeads, blk = s.blockRows
        dk.update(repeating: 0, count: s.batch * L * s.kvStride)
        dv.update(repeating: 0, count: s.batch * L * s.kvStride)
        // one task per (batch, kv group): the heads sharing a dK/dV slice run in one task, so no races
        Parallel.tasks(s.batch * s.kvHeads) { task, worker in
            let b = task / s.kvHeads, g = task % s.kvHeads
            let P = scratch0 + worker * s.scratchCount, dP = P + blk * L
            for h in (g * group)..<((g + 1) * group) {
                let qh = q + b * L * s.qStride + h * hd, oh = out + b * L * s.qStride + h * hd
                let doh = dout + b * L * s.qStride + h * hd, dqh = dq + b * L * s.qStride + h * hd
                let kh = k + b * L * s.kvStride + g * hd, vh = v + b * L * s.kvStride + g * hd
                let dkh = dk + b * L * s.kvStride + g * hd, dvh = dv + b * L * s.kvStride + g * hd
                let lseh = lse + (b * s.heads + h) * L
                var i0 = 0
                while i0 < L {
                    let rows = min(blk, L - i0)
                    let qb = qh + i0 * s.qStride, dob = doh + i0 * s.qStride
                    // Recompute P = exp(scale · Q Kᵀ − lse)
                    Gemm.mm(transB: true, m: rows, n: L, k: hd, alpha: s.scale, a: qb, lda: s.qStride,
                            b: kh, ldb: s.kvStride, c: P, ldc: L)
                    for r in 0..<rows {
                        _ = FastMath.expShifted(P + r * L, P + r * L, count: L, shift: lseh[i0 + r])
                    }
                    // dV += Pᵀ dO ; dP = dO Vᵀ
                    Gemm.mm(transA: true, m: L, n: hd, k: rows, a: P, lda: L, b: dob, ldb: s.qStride,
                            beta: 1, c: dvh, ldc: s.kvStride)
                    Gemm.mm(transB: true, m: rows, n: L, k: hd, a: dob, lda: s.qStride, b: vh, ldb: s.kvStride,
                            c: dP, ldc: L)
                    // dS = P ∘ (dP − rowsum(dO ∘ O))
                    for r in 0..<rows {
                        let di = FastMath.dot(dob + r * s.qStride, oh + (i0 + r) * s.qStride, count: hd)
                        let pr = P + r * L, dpr = dP + r * L
                        var j = 0
                        let dv8 = FastMath.V(repeating: di)
                        while j + 8 <= L {
                            FastMath.store(FastMath.load(pr + j) * (FastMath.load(dpr + j) - dv8), dpr + j)
                            j += 8
                        }
                        while j < L { dpr[j] = pr[j] * (dpr[j] - di); j += 1 }
                    }
                    // dQ_blk = scale · dS K ; dK += scale · dSᵀ Q_blk
                    Gemm.mm(m: rows, n: hd, k: L, alpha: s.scale, a: dP, lda: L, b: kh, ldb: s.kvStride,
                            c: dqh + i0 * s.qStride, ldc: s.qStride)
                    Gemm.mm(transA: true, m: L, n: hd, k: rows, alpha: s.scale, a: dP, lda: L, b: qb, ldb: s.qStride,
                            beta: 1, c: dkh, ldc: s.kvStride)
                    i0 += rows
                }
            }
        }
    }
}
