import Foundation

/// LoRA's part of one forward (and backward) of the model: the adapter weights and gradients, the
/// dropout draws, and what forward keeps for backward. For a target layer y = x Wᵀ the model adds
///     u = dropout(x) Aᵀ  [rows, r],   y += scale · u Bᵀ
/// and backward, given dy, adds
///     dB += scale · dyᵀ u,   du = scale · dy B,   dA += duᵀ dropout(x),   dx += dropoutᵀ(du A).
/// Dropout (PEFT's: on the adapter's input only, kept values scaled by 1/(1−p)) is drawn from
/// (seed, step, example, layer, target, position, feature): the same mask whatever the ranks,
/// micro-batches or padded length. Inference forwards (pass 1, validation, sampling) draw none.
public final class LoRARun: @unchecked Sendable {
    public let layout: LoRALayout
    public var weights: UnsafePointer<Float>
    /// Adapter gradients backward adds into; nil for forward-only use.
    public var grads: UnsafeMutablePointer<Float>?

    /// The draws of a training forward: row t of the batch is example `examples[t / seqLen]` at
    /// position t % seqLen.
    public struct Draws: Sendable {
        public var seed: UInt64, step: Int, examples: [Int], seqLen: Int
        public init(seed: UInt64, step: Int, examples: [Int], seqLen: Int) {
            self.seed = seed; self.step = step; self.examples = examples; self.seqLen = seqLen
        }
    }
    /// Set for a training forward with dropout > 0; nil: no dropout.
    public var draws: Draws?

    let training: Bool
    let capacityTokens: Int
    private let storage: FloatBuffer
    /// training: per (layer, module) the offsets of u [T, r] and of dropout(x) [T, in] (−1: none kept)
    private var uOff: [[Int]] = [], xdOff: [[Int]] = []
    private let scratchU: Int, scratchX: Int
    /// Whether the last forward of (layer, module) applied dropout (backward must use the same input).
    private var dropped: [[Bool]]

    /// `training`: keep every layer's u (and dropped inputs when dropout > 0) for backward; otherwise
    /// one scratch shared by all layers.
    public init(layout: LoRALayout, weights: UnsafePointer<Float>, capacityTokens T: Int, training: Bool) {
        self.layout = layout; self.weights = weights; self.training = training; capacityTokens = T
        let a = Self.arena(layout, capacityTokens: T, training: training)
        uOff = a.u; xdOff = a.xd; scratchU = a.scratchU; scratchX = a.scratchX
        storage = FloatBuffer(count: a.floats)
        dropped = layout.blocks.map { $0.map { _ in false } }
    }

    public var bytes: Int { storage.count * 4 }

    /// The arena's offsets and size in floats (`gift plan` counts it without allocating).
    static func arena(_ layout: LoRALayout, capacityTokens T: Int, training: Bool)
        -> (u: [[Int]], xd: [[Int]], scratchU: Int, scratchX: Int, floats: Int) {
        let r = layout.lora.r, maxIn = layout.blocks.joined().map(\.inDim).max() ?? 0
        var arena = Arena(), u: [[Int]] = [], xd: [[Int]] = []
        if training {
            for mods in layout.blocks {
                u.append(mods.map { _ in arena.take(T * r) })
                xd.append(mods.map { layout.lora.dropout > 0 ? arena.take(T * $0.inDim) : -1 })
            }
        }
        let su = arena.take(T * r), sx = arena.take(T * maxIn)
        return (u, xd, su, sx, arena.used)
    }

    /// The bytes a run of `layout` allocates, without making one.
    public static func bytes(_ layout: LoRALayout, capacityTokens T: Int, training: Bool) -> Int {
        4 * arena(layout, capacityTokens: T, training: training).floats
    }

    /// Adds the adapter of block `l`'s `target` to y (rows × out, row stride `ldy`) for input x (rows × in,
    /// contiguous). `keep`: this is pass 2's forward of a training step (keep u for backward, draw dropout).
    func forward(_ l: Int, _ target: LoRATarget, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>,
                 ldy: Int, keep: Bool) {
        guard let mi = layout.blocks[l].firstIndex(where: { $0.target == target }) else { return }
        precondition(rows <= capacityTokens && (!keep || training))
        let m = layout.blocks[l][mi], r = layout.lora.r, p = storage.pointer
        let u = keep ? p + uOff[l][mi] : p + scratchU
        var input = x
        let drop = keep && draws != nil && layout.lora.dropout > 0
        if drop {
            let xd = p + xdOff[l][mi]
            applyDropout(l, m, src: x, dst: xd, rows: rows)
            input = UnsafePointer(xd)
        }
        if keep { dropped[l][mi] = drop }
        Gemm.mm(transB: true, m: rows, n: r, k: m.inDim, a: input, lda: m.inDim, b: weights + m.a, ldb: m.inDim,
                beta: 0, c: u, ldc: r)
        Gemm.mm(transB: true, m: rows, n: m.outDim, k: r, alpha: layout.lora.scale, a: u, lda: r, b: weights + m.b,
                ldb: r, beta: 1, c: y, ldc: ldy)
    }

    /// Backward of `forward` (with keep): dy (rows × out, stride `ldy`), x the layer's input as in forward;
    /// adds into the adapter gradients and into dx (rows × in, contiguous).
    func backward(_ l: Int, _ target: LoRATarget, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, ldy: Int,
                  dx: UnsafeMutablePointer<Float>, rows: Int) {
        guard let mi = layout.blocks[l].firstIndex(where: { $0.target == target }), let g = grads else { return }
        let m = layout.blocks[l][mi], r = layout.lora.r, p = storage.pointer, s = layout.lora.scale
        let u = p + uOff[l][mi], du = p + scratchU
        let input = dropped[l][mi] ? UnsafePointer(p + xdOff[l][mi]) : x
        Gemm.mm(transA: true, m: m.outDim, n: r, k: rows, alpha: s, a: dy, lda: ldy, b: u, ldb: r, beta: 1,
                c: g + m.b, ldc: r)
        Gemm.mm(m: rows, n: r, k: m.outDim, alpha: s, a: dy, lda: ldy, b: weights + m.b, ldb: r, beta: 0, c: du, ldc: r)
        Gemm.mm(transA: true, m: r, n: m.inDim, k: rows, a: du, lda: r, b: input, ldb: m.inDim, beta: 1,
                c: g + m.a, ldc: m.inDim)
        if dropped[l][mi] {
            let dxd = p + scratchX
            Gemm.mm(m: rows, n: m.inDim, k: r, a: du, lda: r, b: weights + m.a, ldb: m.inDim, beta: 0, c: dxd, ldc: m.inDim)
            applyDropout(l, m, src: UnsafePointer(dxd), dst: dxd, rows: rows)
            let n = rows * m.inDim
            Parallel.chunks(n, minChunk: 1 << 14) { i0, i1 in for i in i0..<i1 { dx[i] += dxd[i] } }
        } else {
            Gemm.mm(m: rows, n: m.inDim, k: r, a: du, lda: r, b: weights + m.a, ldb: m.inDim, beta: 1, c: dx, ldc: m.inDim)
        }
    }

    /// dst = src ⊙ mask / (1 − p) (the mask is its own transpose, so backward applies the same).
    private func applyDropout(_ l: Int, _ m: LoRAModule, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                              rows: Int) {
        guard let d = draws else { return }
        let p = layout.lora.dropout, keepScale = Float(1 / (1 - p)), n = m.inDim
        let tIdx = UInt64(LoRATarget.allCases.firstIndex(of: m.target)!)
        let layerKey = (UInt64(l) &* 8 &+ tIdx) << 44
        Parallel.chunks(rows, minChunk: 8) { t0, t1 in
            var lastB = -1, rng = CounterRNG(0)
            for t in t0..<t1 {
                let b = t / d.seqLen, pos = UInt64(t % d.seqLen)
                if b != lastB { rng = CounterRNG(d.seed, 0xD0_0D, UInt64(d.step), UInt64(d.examples[b])); lastB = b }
                let sr = src + t * n, dr = dst + t * n, rowKey = layerKey | (pos << 20)
                for j in 0..<n { dr[j] = rng.uniform(rowKey | UInt64(j)) < p ? 0 : sr[j] * keepScale }
            }
        }
    }
}
