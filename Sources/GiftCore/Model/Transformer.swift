import Foundation

/// The transformer of both families (LLaDA, Dream: `ModelFamily`): explicit forward and backward per
/// block over the flat parameter buffer. Forward fills `Activations`; `head` computes logits only for the
/// tokens asked for (the loss needs nothing else), at the rows the family's rule says predict them;
/// backward takes dlogits in `acts.logits` and accumulates into the flat gradient.
/// Dream's q/k/v biases (one [d + 2·kv] row after v_proj's weight) are added by the fused projection.
///
/// q_proj, k_proj, v_proj lie back to back in the flat buffer, and so do ff_proj, up_proj: each group
/// is one [out, d] matrix, multiplied in one GEMM (bigger GEMMs run closer to the machine's peak).
public final class Transformer: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let rope: Rope
    /// Block weights that are not resident in the flat buffer (a bf16 frozen base): asked for each block
    /// just before it runs (forward, pass 1, backward with its recomputation) and released after.
    public var weightSource: BlockWeightSource?

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
        var s = AttentionShape(batch: acts.batch, seqLen: acts.seqLen, heads: config.nHeads, kvHeads: config.nKVHeads,
                               headDim: config.headDim, ldQ: qkvWidth, ldKV: qkvWidth, ldO: config.dModel)
        s.keyStart = acts.keyStart
        precondition(s.scratchCount <= 2 * max(1 << 18, acts.maxSeqLen))
        return s
    }

    /// Runs the blocks and the final norm on `tokens` ([batch, seqLen], row-major).
    /// `lora`: adapters added to the target layers (their training state kept when `acts.training`).
    /// `keyStart[b]`: sequence b's first real token (left padding before it is masked out of attention;
    /// inference only).
    public func forward(_ params: UnsafePointer<Float>, tokens: [Int32], batch: Int, seqLen: Int, acts: Activations,
                        lora: LoRARun? = nil, keyStart: [Int]? = nil, cache: KVCacheUse? = nil) {
        precondition((keyStart == nil && cache == nil) || !acts.training, "masked padding and caches are for inference activations")
        run(params, tokens: tokens, batch: batch, seqLen: seqLen, acts: acts, outputRows: nil, lora: lora, keyStart: keyStart,
            cache: cache)
    }

    /// Pass 1's forward, and the samplers' (inference activations only): afterwards `acts.hf` holds the final
    /// norm at the rows that predict the tokens `outputRows` (indices into batch·seqLen, each at most once; the
    /// same rows under LLaDA) and nothing else is meaningful. `keyStart`, `cache`: as in `forward`.
    /// Same arithmetic as `forward` at those rows, less work:
    /// - block 0: rows with the same token id have the same embedding, attn_norm and pre-RoPE q|k|v, so
    ///   the fused QKV GEMM runs once per distinct token (pass 1's masked response is one token repeated);
    /// - last block: keys and values (so q|k|v and attention) are needed at every row, but attn_out, the
    ///   MLP and ln_f only at `outputRows` (nothing else is read after the last block).
    public func forwardPass1(_ params: UnsafePointer<Float>, tokens: [Int32], batch: Int, seqLen: Int,
                             outputRows: [Int32], acts: Activations, lora: LoRARun? = nil, keyStart: [Int]? = nil,
                             cache: KVCacheUse? = nil) {
        precondition(!acts.training, "forwardPass1 keeps no activations: use inference activations")
        // `outputRows` are the tokens `head` will be asked for: the rows predicting them are computed
        // (Dream: each row before; two tokens may share a row, computed once)
        var rows = outputRows
        if config.family.predictionShift != 0 {
            var seen = Set<Int32>()
            rows = config.logitRows(forTokenRows: outputRows, seqLen: seqLen).filter { seen.insert($0).inserted }
        }
        run(params, tokens: tokens, batch: batch, seqLen: seqLen, acts: acts, outputRows: rows, lora: lora, keyStart: keyStart,
            cache: cache)
    }

    /// Rows with equal token ids, for block 0's QKV GEMM: the distinct ids' first rows (`tokens` order)
    /// and each row's index among them; nil when deduplicating would save under 1/8 of the rows.
    static func distinctTokens(_ tokens: [Int32], vocab: Int) -> (first: [Int], slot: [Int32])? {
        var slotOf = [Int32](repeating: -1, count: vocab), first: [Int] = [], slot = [Int32](repeating: 0, count: tokens.count)
        for (t, id) in tokens.enumerated() {
            if slotOf[Int(id)] < 0 { slotOf[Int(id)] = Int32(first.count); first.append(t) }
            slot[t] = slotOf[Int(id)]
        }
        return (tokens.count - first.count) * 8 >= tokens.count && !first.isEmpty ? (first, slot) : nil
    }

    /// `forward` when `outputRows` is nil, else `forwardPass1`'s trimmed version.
    private func run(_ params: UnsafePointer<Float>, tokens: [Int32], batch: Int, seqLen: Int, acts: Activations,
                     outputRows: [Int32]?, lora: LoRARun?, keyStart: [Int]? = nil, cache: KVCacheUse? = nil) {
        precondition(tokens.count == batch * seqLen)
        acts.setShape(batch: batch, seqLen: seqLen, keyStart: keyStart)
        let c = config, T = batch * seqLen, d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize, W = qkvWidth
        let eps = Float(c.rmsNormEps)
        let keep = acts.training
        // the adapters of block l's `target` for input x (rows × in) into y (row stride ldy)
        func adapt(_ l: Int, _ target: LoRATarget, _ x: UnsafePointer<Float>, _ rows: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
            lora?.forward(l, target, x: x, rows: rows, y: y, ldy: ldy, keep: keep && outputRows == nil)
        }
        func adaptQKV(_ l: Int, _ x: UnsafePointer<Float>, _ rows: Int, _ qkv: UnsafeMutablePointer<Float>) {
            adapt(l, .q, x, rows, qkv, W); adapt(l, .k, x, rows, qkv + d, W); adapt(l, .v, x, rows, qkv + d + kv, W)
        }
        func adaptMLPIn(_ l: Int, _ x: UnsafePointer<Float>, _ rows: Int, _ au: UnsafeMutablePointer<Float>) {
            adapt(l, .ffProj, x, rows, au, 2 * ff); adapt(l, .upProj, x, rows, au + ff, 2 * ff)
        }
        for i in 0..<T {
            precondition(tokens[i] >= 0 && Int(tokens[i]) < c.vocab, "token id \(tokens[i]) outside the vocabulary")
            acts.tokens[i] = tokens[i]
        }
        // the tensors outside the blocks (a sharded source keeps them for the whole step)
        weightSource?.begin(.forward)
        weightSource?.acquire(block: -1); weightSource?.acquire(block: c.nLayers)
        defer { weightSource?.release(block: -1); weightSource?.release(block: c.nLayers) }
        acts.tokens.withUnsafeBufferPointer {
            Embedding.forward(tokens: $0.baseAddress!, table: params + layout.wte, out: acts.layers[0].xin, count: T, d: d)
        }
        // pass 1 only: block 0's distinct tokens (compact buffers need [T, W] ≤ au's [T, 2·ff])
        let distinct = outputRows != nil && W <= 2 * ff ? Self.distinctTokens(tokens, vocab: c.vocab) : nil
        if let outputRows {
            var seen = [Bool](repeating: false, count: T)
            for t in outputRows {
                precondition(t >= 0 && Int(t) < T && !seen[Int(t)], "output row \(t) out of range or repeated")
                seen[Int(t)] = true
            }
        }
        for l in 0..<c.nLayers {
            weightSource?.acquire(block: l)
            defer { weightSource?.release(block: l) }
            let A = acts.layers[l], o = layout.blocks[l]
            let next = l + 1 < c.nLayers ? acts.layers[l + 1].xin : acts.xout
            // attention sub-block
            if l == 0, let distinct {
                // one embedding → attn_norm → q|k|v row per distinct token, in ao → xn2 → au, then copied
                // to every row of that token (before RoPE, which is where positions come in)
                let U = distinct.first.count
                for (u, t) in distinct.first.enumerated() { (A.ao + u * d).update(from: A.xin + t * d, count: d) }
                RMSNorm.forward(x: A.ao, weight: params + o.attnNorm, y: A.xn2, rstd: A.rstd1, rows: U, d: d, eps: eps)
                Gemm.linear(A.xn2, params + o.q, A.au, rows: U, inDim: d, outDim: W)
                if let b = o.qkvBias { Self.addBias(params + b, to: A.au, rows: U, width: W) }
                adaptQKV(l, A.xn2, U, A.au)
                let slot = distinct.slot, au = A.au, qkv = A.qkv
                Parallel.chunks(T, minChunk: 64) { t0, t1 in
                    for t in t0..<t1 { (qkv + t * W).update(from: au + Int(slot[t]) * W, count: W) }
                }
            } else {
                projectQKV(params, l, A, rows: T, lora: lora, keep: keep && outputRows == nil)
            }
            attend(A, acts: acts, layer: l, cache: cache)
            if l == c.nLayers - 1, let outputRows {
                // last block at the output rows only, compacted: residual in xmid, attention output in xn1,
                // block output in xout (= xin in inference activations: its other rows are read no more)
                let R = outputRows.count
                precondition(next == A.xin, "inference activations write the last block's output in place")
                for (r, t) in outputRows.enumerated() {
                    (A.xmid + r * d).update(from: A.xin + Int(t) * d, count: d)
                    (A.xn1 + r * d).update(from: A.ao + Int(t) * d, count: d)
                }
                Gemm.linear(A.xn1, params + o.attnOut, A.xmid, rows: R, inDim: d, outDim: d, accumulate: true)
                adapt(l, .attnOut, A.xn1, R, A.xmid, d)
                RMSNorm.forward(x: A.xmid, weight: params + o.ffNorm, y: A.xn2, rstd: A.rstd2, rows: R, d: d, eps: eps)
                Gemm.linear(A.xn2, params + o.ffProj, A.au, rows: R, inDim: d, outDim: 2 * ff)
                adaptMLPIn(l, A.xn2, R, A.au)
                SwiGLU.forward(au: A.au, h: A.h, rows: R, ff: ff)
                next.update(from: A.xmid, count: R * d)
                Gemm.linear(A.h, params + o.ffOut, next, rows: R, inDim: ff, outDim: d, accumulate: true)
                adapt(l, .ffOut, A.h, R, next, d)
                // ln_f at the output rows, then put back at their places in hf (where `head` reads them)
                RMSNorm.forward(x: acts.xout, weight: params + layout.lnF, y: A.xn2, rstd: acts.rstdF, rows: R, d: d, eps: eps)
                for (r, t) in outputRows.enumerated() { (acts.hf + Int(t) * d).update(from: A.xn2 + r * d, count: d) }
                return
            }
            blockTail(params, l, A, next: next, rows: T, lora: lora, keep: keep && outputRows == nil)
        }
        RMSNorm.forward(x: acts.xout, weight: params + layout.lnF, y: acts.hf, rstd: acts.rstdF, rows: T, d: d, eps: eps)
    }

    /// A forward with nothing to compute on this rank (a batch without a masked or response row) under a
    /// collective weight source: the same acquisitions as `forward` and `head`, so this rank takes part in
    /// the gathers the other ranks' forward makes. A no-op otherwise.
    /// `head`: the skipped pass would also have called `head` (which the caller then does not).
    public func skipForward(head: Bool) {
        guard let ws = weightSource, ws.isCollective else { return }
        let n = config.nLayers
        ws.begin(.forward)
        ws.acquire(block: -1); ws.acquire(block: n)
        for l in 0..<n { ws.acquire(block: l); ws.release(block: l) }
        ws.release(block: -1); ws.release(block: n)
        if head { ws.acquire(block: n); ws.release(block: n) }
    }

    /// attn_norm and the fused q|k|v projection (its biases, then block l's adapters) on every row.
    private func projectQKV(_ params: UnsafePointer<Float>, _ l: Int, _ A: LayerActs, rows T: Int, lora: LoRARun?, keep: Bool) {
        let c = config, d = c.dModel, kv = c.kvDim, W = qkvWidth, o = layout.blocks[l]
        RMSNorm.forward(x: A.xin, weight: params + o.attnNorm, y: A.xn1, rstd: A.rstd1, rows: T, d: d, eps: Float(c.rmsNormEps))
        Gemm.linear(A.xn1, params + o.q, A.qkv, rows: T, inDim: d, outDim: W)
        if let b = o.qkvBias { Self.addBias(params + b, to: A.qkv, rows: T, width: W) }
        lora?.forward(l, .q, x: A.xn1, rows: T, y: A.qkv, ldy: W, keep: keep)
        lora?.forward(l, .k, x: A.xn1, rows: T, y: A.qkv + d, ldy: W, keep: keep)
        lora?.forward(l, .v, x: A.xn1, rows: T, y: A.qkv + d + kv, ldy: W, keep: keep)
    }

    /// RoPE on q and k (where positions come in), then attention into `ao`.
    /// `cache` (inference): `.fill` keeps every row's keys and values of `layer`; `.read(c, from: p)` places
    /// the rows at positions p..., writes their keys and values into the cache there and attends to all of it.
    private func attend(_ A: LayerActs, acts: Activations, layer: Int = 0, cache: KVCacheUse? = nil) {
        let c = config, d = c.dModel, kv = c.kvDim, W = qkvWidth, B = acts.batch, S = acts.seqLen
        var offset = 0
        if case .read(_, let from)? = cache { offset = from }
        rope.apply(A.qkv, batch: B, seqLen: S, heads: c.nHeads, rowStride: W, offset: offset)
        rope.apply(A.qkv + d, batch: B, seqLen: S, heads: c.nKVHeads, rowStride: W, offset: offset)
        switch cache {
        case .fill(let kc)?:
            precondition(kc.batch == B && kc.seqLen == S, "KV cache of another shape")
            Self.store(A.qkv + d, rowStride: W, rows: B * S, kvDim: kv, into: kc, layer: layer) { $0 }
        case .read(let kc, let first)?:
            let K = kc.seqLen
            precondition(kc.batch == B && first >= 0 && first + S <= K, "KV cache of another shape")
            Self.store(A.qkv + d, rowStride: W, rows: B * S, kvDim: kv, into: kc, layer: layer) { ($0 / S) * K + first + $0 % S }
            var shape = AttentionShape(batch: B, seqLen: S, heads: c.nHeads, kvHeads: c.nKVHeads, headDim: c.headDim,
                                       ldQ: W, ldKV: kv, ldO: d, keyLen: K)
            shape.keyStart = acts.keyStart
            precondition(shape.scratchCount <= 2 * max(1 << 18, acts.maxSeqLen))
            Profiler.measure("  attention fwd") {
                Attention.forward(shape, q: A.qkv, k: kc.k[layer].pointer, v: kc.v[layer].pointer, out: A.ao, lse: nil,
                                  scratch: acts.attnScratch)
            }
            return
        case nil: break
        }
        let shape = attnShape(acts)
        Profiler.measure("  attention fwd") {
            Attention.forward(shape, q: A.qkv, k: A.qkv + d, v: A.qkv + d + kv, out: A.ao, lse: A.lse,
                              scratch: acts.attnScratch)
        }
    }

    /// Copies each row's key and value (k at `kv`, v right after it, rows `rowStride` apart) to cache row
    /// `at(row)` of `layer`.
    private static func store(_ kv: UnsafeMutablePointer<Float>, rowStride W: Int, rows: Int, kvDim: Int, into kc: KVCache,
                              layer: Int, at: (Int) -> Int) {
        let kp = kc.k[layer].pointer, vp = kc.v[layer].pointer
        Parallel.chunks(rows, minChunk: 64) { r0, r1 in
            for r in r0..<r1 {
                let src = kv + r * W, dst = at(r) * kvDim
                (kp + dst).update(from: src, count: kvDim)
                (vp + dst).update(from: src + kvDim, count: kvDim)
            }
        }
    }

    /// attn_out and the residual, then the MLP sub-block, of block l on every row, into `next`.
    private func blockTail(_ params: UnsafePointer<Float>, _ l: Int, _ A: LayerActs, next: UnsafeMutablePointer<Float>,
                           rows T: Int, lora: LoRARun?, keep: Bool) {
        let c = config, d = c.dModel, ff = c.mlpHiddenSize, o = layout.blocks[l]
        A.xmid.update(from: A.xin, count: T * d)
        Gemm.linear(A.ao, params + o.attnOut, A.xmid, rows: T, inDim: d, outDim: d, accumulate: true)
        lora?.forward(l, .attnOut, x: A.ao, rows: T, y: A.xmid, ldy: d, keep: keep)
        RMSNorm.forward(x: A.xmid, weight: params + o.ffNorm, y: A.xn2, rstd: A.rstd2, rows: T, d: d, eps: Float(c.rmsNormEps))
        Gemm.linear(A.xn2, params + o.ffProj, A.au, rows: T, inDim: d, outDim: 2 * ff)
        lora?.forward(l, .ffProj, x: A.xn2, rows: T, y: A.au, ldy: 2 * ff, keep: keep)
        lora?.forward(l, .upProj, x: A.xn2, rows: T, y: A.au + ff, ldy: 2 * ff, keep: keep)
        SwiGLU.forward(au: A.au, h: A.h, rows: T, ff: ff)
        if next != A.xmid { next.update(from: A.xmid, count: T * d) }
        Gemm.linear(A.h, params + o.ffOut, next, rows: T, inDim: ff, outDim: d, accumulate: true)
        lora?.forward(l, .ffOut, x: A.h, rows: T, y: next, ldy: d, keep: keep)
    }

    /// --recompute blocks: block l's forward again from its kept input (same operations in the same
    /// order, so the same bits; its output, rewritten, is unchanged), just before its backward.
    private func recompute(_ params: UnsafePointer<Float>, _ l: Int, acts: Activations, lora: LoRARun?) {
        let T = acts.batch * acts.seqLen, A = acts.layers[l]
        let next = l + 1 < config.nLayers ? acts.layers[l + 1].xin : acts.xout
        Profiler.measure("  recompute") {
            projectQKV(params, l, A, rows: T, lora: lora, keep: true)
            attend(A, acts: acts)
            blockTail(params, l, A, next: next, rows: T, lora: lora, keep: true)
        }
    }

    /// The logits predicting the given tokens (rows: indices into batch·seqLen) into `acts.logits`
    /// [rows.count, vocab]: row r is the model output at the row the family's rule pairs with token
    /// rows[r] (LLaDA: that row; Dream: the row before, the first row standing for itself).
    @discardableResult
    public func head(_ params: UnsafePointer<Float>, rows: [Int32], acts: Activations) -> UnsafeMutablePointer<Float> {
        let d = config.dModel
        weightSource?.acquire(block: config.nLayers)
        defer { weightSource?.release(block: config.nLayers) }
        acts.headRows = config.logitRows(forTokenRows: rows, seqLen: acts.seqLen)
        for (r, t) in acts.headRows.enumerated() { (acts.hsel + r * d).update(from: acts.hf + Int(t) * d, count: d) }
        Gemm.linear(acts.hsel, params + layout.head, acts.logits, rows: rows.count, inDim: d, outDim: config.vocab)
        return acts.logits
    }

    /// Backward from dlogits (in `acts.logits`, at `acts.headRows`) to every parameter; adds into `grads`.
    /// `ready(o)` is called whenever every gradient at flat offset ≥ o is final (for overlapped sync).
    /// `grads` nil (a frozen base under LoRA): no weight gradient is computed, only the input gradients
    /// the adapters of `lora` need (into `lora.grads`); `ready` then counts adapter offsets.
    public func backward(_ params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>?, acts: Activations,
                         lora: LoRARun? = nil, ready: ((Int) -> Void)? = nil) {
        precondition(acts.training, "backward needs training activations")
        let c = config, T = acts.batch * acts.seqLen, d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize, W = qkvWidth
        let shape = attnShape(acts)
        let R = acts.headRows.count
        let frozen = grads == nil
        precondition(!frozen || lora?.grads != nil, "backward with neither base nor adapter gradients")
        // norm weight gradients of a frozen base go to a scratch row (read by nobody)
        let normScratch = frozen ? UnsafeMutablePointer<Float>.allocate(capacity: d) : nil
        defer { normScratch?.deallocate() }
        func g(_ off: Int) -> UnsafeMutablePointer<Float>? { grads.map { $0 + off } }
        func gn(_ off: Int) -> UnsafeMutablePointer<Float> { grads.map { $0 + off } ?? normScratch! }
        func baseReady(_ off: Int) { if !frozen { ready?(off) } }
        weightSource?.begin(.backward)
        weightSource?.acquire(block: -1); weightSource?.acquire(block: c.nLayers)
        defer { weightSource?.release(block: -1); weightSource?.release(block: c.nLayers) }
        // output head: dW_head += dlogitsᵀ hsel ; dhsel = dlogits W_head, scattered into dhf (acts.dxn)
        // (added: under Dream two tokens may share a logit row)
        Gemm.linearBackward(x: acts.hsel, w: params + layout.head, dy: acts.logits, dx: acts.hsel, dw: g(layout.head),
                            rows: R, inDim: d, outDim: c.vocab)
        acts.dxn.update(repeating: 0, count: T * d)
        for (r, t) in acts.headRows.enumerated() {
            let dst = acts.dxn + Int(t) * d, src = acts.hsel + r * d
            for i in 0..<d { dst[i] += src[i] }
        }
        baseReady(layout.head)
        acts.dx.update(repeating: 0, count: T * d)
        RMSNorm.backward(x: acts.xout, weight: params + layout.lnF, rstd: acts.rstdF, dy: acts.dxn, dx: acts.dx,
                         dw: gn(layout.lnF), rows: T, d: d)
        baseReady(layout.lnF)
        for l in stride(from: c.nLayers - 1, through: 0, by: -1) {
            weightSource?.acquire(block: l)
            defer { weightSource?.release(block: l) }
            let A = acts.layers[l], o = layout.blocks[l]
            // (the last block's activations are still in the shared set from forward)
            if acts.recompute && l < c.nLayers - 1 { recompute(params, l, acts: acts, lora: lora) }
            // MLP: out = xmid + h W2ᵀ
            Gemm.linearBackward(x: A.h, w: params + o.ffOut, dy: acts.dx, dx: acts.dh, dw: g(o.ffOut),
                                rows: T, inDim: ff, outDim: d)
            lora?.backward(l, .ffOut, x: A.h, dy: acts.dx, ldy: d, dx: acts.dh, rows: T)
            SwiGLU.backward(au: A.au, dh: acts.dh, dau: acts.dau, rows: T, ff: ff)
            Gemm.linearBackward(x: A.xn2, w: params + o.ffProj, dy: acts.dau, dx: acts.dxn, dw: g(o.ffProj),
                                rows: T, inDim: d, outDim: 2 * ff)
            lora?.backward(l, .ffProj, x: A.xn2, dy: acts.dau, ldy: 2 * ff, dx: acts.dxn, rows: T)
            lora?.backward(l, .upProj, x: A.xn2, dy: acts.dau + ff, ldy: 2 * ff, dx: acts.dxn, rows: T)
            RMSNorm.backward(x: A.xmid, weight: params + o.ffNorm, rstd: A.rstd2, dy: acts.dxn, dx: acts.dx,
                             dw: gn(o.ffNorm), rows: T, d: d)
            // attention: xmid = xin + ao Woᵀ
            Gemm.linearBackward(x: A.ao, w: params + o.attnOut, dy: acts.dx, dx: acts.dao, dw: g(o.attnOut),
                                rows: T, inDim: d, outDim: d)
            lora?.backward(l, .attnOut, x: A.ao, dy: acts.dx, ldy: d, dx: acts.dao, rows: T)
            Profiler.measure("  attention bwd") {
                Attention.backward(shape, q: A.qkv, k: A.qkv + d, v: A.qkv + d + kv, out: A.ao, lse: A.lse,
                                   dout: acts.dao, dq: acts.dqkv, dk: acts.dqkv + d, dv: acts.dqkv + d + kv,
                                   scratch: acts.attnScratch)
            }
            rope.apply(acts.dqkv, batch: acts.batch, seqLen: acts.seqLen, heads: c.nHeads, rowStride: W, inverse: true)
            rope.apply(acts.dqkv + d, batch: acts.batch, seqLen: acts.seqLen, heads: c.nKVHeads, rowStride: W, inverse: true)
            if let b = o.qkvBias, let gb = g(b) { Self.addColumnSums(acts.dqkv, rows: T, width: W, into: gb) }
            Gemm.linearBackward(x: A.xn1, w: params + o.q, dy: acts.dqkv, dx: acts.dxn, dw: g(o.q),
                                rows: T, inDim: d, outDim: W)
            lora?.backward(l, .q, x: A.xn1, dy: acts.dqkv, ldy: W, dx: acts.dxn, rows: T)
            lora?.backward(l, .k, x: A.xn1, dy: acts.dqkv + d, ldy: W, dx: acts.dxn, rows: T)
            lora?.backward(l, .v, x: A.xn1, dy: acts.dqkv + d + kv, ldy: W, dx: acts.dxn, rows: T)
            if frozen {
                if let lora { ready?(lora.layout.blockStart[l]) }
                if l == 0 { break }   // nothing below block 0 is trained
            }
            RMSNorm.backward(x: A.xin, weight: params + o.attnNorm, rstd: A.rstd1, dy: acts.dxn, dx: acts.dx,
                             dw: gn(o.attnNorm), rows: T, d: d)
            baseReady(o.attnNorm)
        }
        if let grads {
            acts.tokens.withUnsafeBufferPointer {
                Embedding.backward(tokens: $0.baseAddress!, dx: acts.dx, dtable: grads + layout.wte, count: T, d: d)
            }
        }
        ready?(0)
    }

    /// y[r] += b for each of `rows` rows of `width` floats (the q|k|v bias row).
    static func addBias(_ b: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, rows: Int, width W: Int) {
        Parallel.chunks(rows, minChunk: 64) { r0, r1 in
            for r in r0..<r1 {
                let row = y + r * W
                for j in 0..<W { row[j] += b[j] }
            }
        }
    }

    /// db += the column sums of dy ([rows, width]): the bias gradient. Each column is summed in row order
    /// whatever the threads, so the same bits.
    static func addColumnSums(_ dy: UnsafePointer<Float>, rows: Int, width W: Int, into db: UnsafeMutablePointer<Float>) {
        Parallel.chunks(W, minChunk: 64) { c0, c1 in
            for r in 0..<rows {
                let row = dy + r * W
                for j in c0..<c1 { db[j] += row[j] }
            }
        }
    }
}
