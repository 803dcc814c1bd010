import Foundation

/// The LLaDA transformer: explicit forward and backward per block over the flat parameter buffer.
/// Forward fills `Activations`; `head` computes logits only at the rows asked for (the loss needs
/// nothing else); backward takes dlogits in `acts.logits` and accumulates into the flat gradient.
///
/// q_proj, k_proj, v_proj lie back to back in the flat buffer, and so do ff_proj, up_proj: each group
/// is one [out, d] matrix, multiplied in one GEMM (bigger GEMMs run closer to the machine's peak).
public final class Transformer: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let rope: Rope

    public init(config: ModelConfig, maxSeqLen: Int? = nil) {
        self.config = config
        layout = ParameterLayout(config)
        rope = Rope(headDim: config.headDim, maxLen: maxSeqLen ?? config.maxSequenceLength, theta: config.ropeTheta)
        for b in layout.blocks {
            precondition(b.k == b.q + config.dModel * config.dModel && b.v == b.k + config.kvDim * config.dModel
                         && b.upProj == b.ffProj + config.mlpHiddenSize * config.dModel, "fused projections need adjacent tensors")
        }
    }

    var qkvWidth: Int { config.dModel + 2 * config.kvDim }

    func attnShape(_ acts: Activations) -> AttentionShape {
        let s = AttentionShape(batch: acts.batch, seqLen: acts.seqLen, heads: config.nHeads, kvHeads: config.nKVHeads,
                               headDim: config.headDim, ldQ: qkvWidth, ldKV: qkvWidth, ldO: config.dModel)
        precondition(s.scratchCount <= 2 * max(1 << 18, acts.maxSeqLen))
        return s
    }

    /// Runs the blocks and the final norm on `tokens` ([batch, seqLen], row-major).
    public func forward(_ params: UnsafePointer<Float>, tokens: [Int32], batch: Int, seqLen: Int, acts: Activations) {
        precondition(tokens.count == batch * seqLen)
        acts.setShape(batch: batch, seqLen: seqLen)
        let c = config, T = batch * seqLen, d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize, W = qkvWidth
        let eps = Float(c.rmsNormEps)
        let shape = attnShape(acts)
        for i in 0..<T {
            precondition(tokens[i] >= 0 && Int(tokens[i]) < c.vocab, "token id \(tokens[i]) outside the vocabulary")
            acts.tokens[i] = tokens[i]
        }
        acts.tokens.withUnsafeBufferPointer {
            Embedding.forward(tokens: $0.baseAddress!, table: params + layout.wte, out: acts.layers[0].xin, count: T, d: d)
        }
        for l in 0..<c.nLayers {
            let A = acts.layers[l], o = layout.blocks[l]
            let next = l + 1 < c.nLayers ? acts.layers[l + 1].xin : acts.xout
            // attention sub-block
            RMSNorm.forward(x: A.xin, weight: params + o.attnNorm, y: A.xn1, rstd: A.rstd1, rows: T, d: d, eps: eps)
            Gemm.linear(A.xn1, params + o.q, A.qkv, rows: T, inDim: d, outDim: W)
            rope.apply(A.qkv, batch: batch, seqLen: seqLen, heads: c.nHeads, rowStride: W)
            rope.apply(A.qkv + d, batch: batch, seqLen: seqLen, heads: c.nKVHeads, rowStride: W)
            Profiler.measure("  attention fwd") {
                Attention.forward(shape, q: A.qkv, k: A.qkv + d, v: A.qkv + d + kv, out: A.ao, lse: A.lse,
                                  scratch: acts.attnScratch)
            }
            A.xmid.update(from: A.xin, count: T * d)
            Gemm.linear(A.ao, params + o.attnOut, A.xmid, rows: T, inDim: d, outDim: d, accumulate: true)
            // MLP sub-block
            RMSNorm.forward(x: A.xmid, weight: params + o.ffNorm, y: A.xn2, rstd: A.rstd2, rows: T, d: d, eps: eps)
            Gemm.linear(A.xn2, params + o.ffProj, A.au, rows: T, inDim: d, outDim: 2 * ff)
            SwiGLU.forward(au: A.au, h: A.h, rows: T, ff: ff)
            if next != A.xmid { next.update(from: A.xmid, count: T * d) }
            Gemm.linear(A.h, params + o.ffOut, next, rows: T, inDim: ff, outDim: d, accumulate: true)
        }
        RMSNorm.forward(x: acts.xout, weight: params + layout.lnF, y: acts.hf, rstd: acts.rstdF, rows: T, d: d, eps: eps)
    }

    /// Logits at the given token rows (indices into batch·seqLen) into `acts.logits` [rows.count, vocab].
    @discardableResult
    public func head(_ params: UnsafePointer<Float>, rows: [Int32], acts: Activations) -> UnsafeMutablePointer<Float> {
        let d = config.dModel
        acts.headRows = rows
        for (r, t) in rows.enumerated() { (acts.hsel + r * d).update(from: acts.hf + Int(t) * d, count: d) }
        Gemm.linear(acts.hsel, params + layout.head, acts.logits, rows: rows.count, inDim: d, outDim: config.vocab)
        return acts.logits
    }

    /// Backward from dlogits (in `acts.logits`, at `acts.headRows`) to every parameter; adds into `grads`.
    /// `ready(o)` is called whenever every gradient at flat offset ≥ o is final (for overlapped sync).
    public func backward(_ params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, acts: Activations,
                         ready: ((Int) -> Void)? = nil) {
        precondition(acts.training, "backward needs training activations")
        let c = config, T = acts.batch * acts.seqLen, d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize, W = qkvWidth
        let shape = attnShape(acts)
        let R = acts.headRows.count
        // output head: dW_head += dlogitsᵀ hsel ; dhsel = dlogits W_head, scattered into dhf (acts.dxn)
        Gemm.linearBackward(x: acts.hsel, w: params + layout.head, dy: acts.logits, dx: acts.hsel, dw: grads + layout.head,
                            rows: R, inDim: d, outDim: c.vocab)
        acts.dxn.update(repeating: 0, count: T * d)
        for (r, t) in acts.headRows.enumerated() {
            let dst = acts.dxn + Int(t) * d, src = acts.hsel + r * d
            for i in 0..<d { dst[i] += src[i] }
        }
        ready?(layout.head)
        acts.dx.update(repeating: 0, count: T * d)
        RMSNorm.backward(x: acts.xout, weight: params + layout.lnF, rstd: acts.rstdF, dy: acts.dxn, dx: acts.dx,
                         dw: grads + layout.lnF, rows: T, d: d)
        ready?(layout.lnF)
        for l in stride(from: c.nLayers - 1, through: 0, by: -1) {
            let A = acts.layers[l], o = layout.blocks[l]
            // MLP: out = xmid + h W2ᵀ
            Gemm.linearBackward(x: A.h, w: params + o.ffOut, dy: acts.dx, dx: acts.dh, dw: grads + o.ffOut,
                                rows: T, inDim: ff, outDim: d)
            SwiGLU.backward(au: A.au, dh: acts.dh, dau: acts.dau, rows: T, ff: ff)
            Gemm.linearBackward(x: A.xn2, w: params + o.ffProj, dy: acts.dau, dx: acts.dxn, dw: grads + o.ffProj,
                                rows: T, inDim: d, outDim: 2 * ff)
            RMSNorm.backward(x: A.xmid, weight: params + o.ffNorm, rstd: A.rstd2, dy: acts.dxn, dx: acts.dx,
                             dw: grads + o.ffNorm, rows: T, d: d)
            // attention: xmid = xin + ao Woᵀ
            Gemm.linearBackward(x: A.ao, w: params + o.attnOut, dy: acts.dx, dx: acts.dao, dw: grads + o.attnOut,
                                rows: T, inDim: d, outDim: d)
            Profiler.measure("  attention bwd") {
                Attention.backward(shape, q: A.qkv, k: A.qkv + d, v: A.qkv + d + kv, out: A.ao, lse: A.lse,
                                   dout: acts.dao, dq: acts.dqkv, dk: acts.dqkv + d, dv: acts.dqkv + d + kv,
                                   scratch: acts.attnScratch)
            }
            rope.apply(acts.dqkv, batch: acts.batch, seqLen: acts.seqLen, heads: c.nHeads, rowStride: W, inverse: true)
            rope.apply(acts.dqkv + d, batch: acts.batch, seqLen: acts.seqLen, heads: c.nKVHeads, rowStride: W, inverse: true)
            Gemm.linearBackward(x: A.xn1, w: params + o.q, dy: acts.dqkv, dx: acts.dxn, dw: grads + o.q,
                                rows: T, inDim: d, outDim: W)
            RMSNorm.backward(x: A.xin, weight: params + o.attnNorm, rstd: A.rstd1, dy: acts.dxn, dx: acts.dx,
                             dw: grads + o.attnNorm, rows: T, d: d)
            ready?(o.attnNorm)
        }
        acts.tokens.withUnsafeBufferPointer {
            Embedding.backward(tokens: $0.baseAddress!, dx: acts.dx, dtable: grads + layout.wte, count: T, d: d)
        }
        ready?(0)
    }
}
