import Foundation

/// Bidirectional softmax attention with grouped-query heads, flash-attention style: forward keeps only
/// each row's log-sum-exp (O(L) per head), backward recomputes the scores a block of query rows at a
/// time, so memory is O(L·d) per layer plus one [block × L] scratch per worker, never [heads, L, L].
///
/// Layouts (row-major, token rows of batch·L): q and dq rows of `ldQ` floats, head h at column h·hd;
/// k, v, dk, dv rows of `ldKV`, kv head g at g·hd; out and dout rows of `ldO`; lse [batch, heads, L].
/// The model passes q, k, v as column blocks of one fused [tokens, d + 2·kvDim] projection.
public struct AttentionShape: Sendable {
    public let batch, seqLen, heads, kvHeads, headDim: Int
    public let ldQ, ldKV, ldO: Int
    public var scale: Float { 1 / Float(headDim).squareRoot() }
    /// Query rows per block. By default the [rows × L] score block is 128K floats (512 KiB), so that in
    /// backward it and its dP twin (1 MiB together) stay in L2 between the GEMM that writes them, the
    /// softmax pass and the GEMMs that read them back; smaller blocks cost more than they save, as each
    /// GEMM call packs all of K (or V) again. Never below 64 rows while a block stays within 256K floats
    /// (1 MiB), the bound the model's scratch is sized for.
    public var blockRows: Int
    /// Per sequence, the first key its queries attend to (keys before it, left padding, are left out as if
    /// masked with −∞: exactly zero weight); nil: all keys. Forward only.
    public var keyStart: [Int]?
    /// Keys (and values) per sequence: `seqLen` (self-attention over the same rows), or more when the queries
    /// are the last `seqLen` rows of a longer sequence whose earlier keys come from a cache (`k`, `v` then
    /// hold `keyLen` rows per sequence). Forward only.
    public var keyLen: Int
    /// Floats of scratch one worker needs in backward (forward needs half).
    public var scratchCount: Int { 2 * blockRows * keyLen }

    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int, blockRows: Int? = nil,
                ldQ: Int? = nil, ldKV: Int? = nil, ldO: Int? = nil, keyLen: Int? = nil) {
        self.batch = batch; self.seqLen = seqLen; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.keyLen = keyLen ?? seqLen
        let n = max(keyLen ?? seqLen, 1)
        self.blockRows = blockRows ?? max(1, min(seqLen, max((1 << 17) / n, min(64, (1 << 18) / n))))
        self.ldQ = ldQ ?? heads * headDim
        self.ldKV = ldKV ?? kvHeads * headDim
        self.ldO = ldO ?? heads * headDim
    }
}

public enum Attention {
    /// `scratch` holds `Parallel.workers × s.scratchCount` floats: (batch, kv group) pairs run in parallel.
    public static func forward(_ s: AttentionShape, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                               v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               lse: UnsafeMutablePointer<Float>?, scratch scratch0: UnsafeMutablePointer<Float>) {
        let L = s.seqLen, K = s.keyLen, hd = s.headDim, group = s.heads / s.kvHeads, blk = s.blockRows
        Parallel.tasks(s.batch * s.kvHeads) { task, worker in
            let b = task / s.kvHeads, g = task % s.kvHeads
            let S = scratch0 + worker * s.scratchCount, inv = S + blk * K   // inv: the spare half
            // keys [k0, K): the sequence's own tokens (N of them), its left padding left out
            let k0 = s.keyStart?[b] ?? 0, N = K - k0
            let kh = k + (b * K + k0) * s.ldKV + g * hd, vh = v + (b * K + k0) * s.ldKV + g * hd
            for h in (g * group)..<((g + 1) * group) {
                let qh = q + b * L * s.ldQ + h * hd, oh = out + b * L * s.ldO + h * hd
                var i0 = 0
                while i0 < L {
                    let rows = min(blk, L - i0)
                    // S = scale · Q_blk Kᵀ, softmax by rows (keeping lse), O_blk = P V
                    Gemm.mm(transB: true, m: rows, n: N, k: hd, alpha: s.scale, a: qh + i0 * s.ldQ, lda: s.ldQ,
                            b: kh, ldb: s.ldKV, c: S, ldc: N)
                    // (normalising the hd-wide output rows is cheaper than the L-wide score rows)
                    for r in 0..<rows {
                        let row = S + r * N
                        let m = FastMath.max(row, count: N)
                        let sum = FastMath.expShiftedSoftmax(row, row, count: N, shift: m)
                        inv[r] = 1 / sum
                        lse?[(b * s.heads + h) * L + i0 + r] = m + Foundation.log(sum)
                    }
                    let ob = oh + i0 * s.ldO
                    Gemm.mm(m: rows, n: hd, k: N, a: S, lda: N, b: vh, ldb: s.ldKV, c: ob, ldc: s.ldO)
                    for r in 0..<rows { FastMath.scale(ob + r * s.ldO, count: hd, by: inv[r]) }
                    i0 += rows
                }
            }
        }
    }

    /// Gradients: dq, dk and dv are overwritten (dk and dv summed over each group's heads and row blocks).
    public static func backward(_ s: AttentionShape, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                v: UnsafePointer<Float>, out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                                dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                scratch scratch0: UnsafeMutablePointer<Float>) {
        precondition(s.keyStart == nil && s.keyLen == s.seqLen, "masked padding and cached keys are forward only")
        let L = s.seqLen, hd = s.headDim, group = s.heads / s.kvHeads, blk = s.blockRows
        // one task per (batch, kv group): the heads sharing a dK/dV slice run in one task, so no races
        Parallel.tasks(s.batch * s.kvHeads) { task, worker in
            let b = task / s.kvHeads, g = task % s.kvHeads
            let P = scratch0 + worker * s.scratchCount, dP = P + blk * L
            let kh = k + b * L * s.ldKV + g * hd, vh = v + b * L * s.ldKV + g * hd
            let dkh = dk + b * L * s.ldKV + g * hd, dvh = dv + b * L * s.ldKV + g * hd
            for h in (g * group)..<((g + 1) * group) {
                let qh = q + b * L * s.ldQ + h * hd, dqh = dq + b * L * s.ldQ + h * hd
                let oh = out + b * L * s.ldO + h * hd, doh = dout + b * L * s.ldO + h * hd
                let lseh = lse + (b * s.heads + h) * L
                var i0 = 0
                while i0 < L {
                    let rows = min(blk, L - i0)
                    let qb = qh + i0 * s.ldQ, dob = doh + i0 * s.ldO
                    // the group's first block overwrites dK and dV (no zeroing pass), later ones accumulate
                    let acc: Float = h == g * group && i0 == 0 ? 0 : 1
                    // Recompute S = scale · Q Kᵀ, and dP = dO Vᵀ
                    Gemm.mm(transB: true, m: rows, n: L, k: hd, alpha: s.scale, a: qb, lda: s.ldQ,
                            b: kh, ldb: s.ldKV, c: P, ldc: L)
                    Gemm.mm(transB: true, m: rows, n: L, k: hd, a: dob, lda: s.ldO, b: vh, ldb: s.ldKV, c: dP, ldc: L)
                    // one pass per row: P = exp(S − lse), dS = P ∘ (dP − rowsum(dO ∘ O))
                    for r in 0..<rows {
                        let di = FastMath.dot(dob + r * s.ldO, oh + (i0 + r) * s.ldO, count: hd)
                        FastMath.softmaxBackwardRow(P + r * L, dP + r * L, count: L, lse: lseh[i0 + r], c: di)
                    }
                    // dV += Pᵀ dO
                    Gemm.mm(transA: true, m: L, n: hd, k: rows, a: P, lda: L, b: dob, ldb: s.ldO,
                            beta: acc, c: dvh, ldc: s.ldKV)
                    // dQ_blk = scale · dS K ; dK += scale · dSᵀ Q_blk
                    Gemm.mm(m: rows, n: hd, k: L, alpha: s.scale, a: dP, lda: L, b: kh, ldb: s.ldKV,
                            c: dqh + i0 * s.ldQ, ldc: s.ldQ)
                    Gemm.mm(transA: true, m: L, n: hd, k: rows, alpha: s.scale, a: dP, lda: L, b: qb, ldb: s.ldQ,
                            beta: acc, c: dkh, ldc: s.ldKV)
                    i0 += rows
                }
            }
        }
    }
}
