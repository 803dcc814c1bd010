/// Hands out 64-byte aligned slices of one FloatBuffer, so a model's working memory is one allocation
/// made before the first step and reused by every step.
struct Arena {
    private(set) var used = 0
    mutating func take(_ n: Int) -> Int {
        let off = used
        used += (n + 15) / 16 * 16
        return off
    }
}

/// What one transformer block keeps from forward for backward (all [tokens, width] row-major).
public struct LayerActs {
    public let xin: UnsafeMutablePointer<Float>      // block input (residual stream)
    public let rstd1: UnsafeMutablePointer<Float>
    public let xn1: UnsafeMutablePointer<Float>      // attn_norm output
    public let qkv: UnsafeMutablePointer<Float>      // [tokens, d + 2·kvDim]: q | k | v, after RoPE (q, k)
    public let ao: UnsafeMutablePointer<Float>       // attention output before attn_out
    public let lse: UnsafeMutablePointer<Float>      // [batch, heads, L]
    public let xmid: UnsafeMutablePointer<Float>     // residual after attention
    public let rstd2: UnsafeMutablePointer<Float>
    public let xn2: UnsafeMutablePointer<Float>      // ff_norm output
    public let au: UnsafeMutablePointer<Float>       // [tokens, 2·ff]: ff_proj | up_proj
    public let h: UnsafeMutablePointer<Float>        // silu(a)·u [tokens, ff]
}

/// Working memory of the model for batches of up to `capacityTokens` tokens and sequences of up to
/// `maxSeqLen`. Training activations keep every block's tensors (O(L·d) per block, no [heads, L, L]);
/// inference activations (`training: false`) share one set of buffers between all blocks. With
/// `recompute` (training) only each block's input is kept per block and the rest is one shared set that
/// backward refills block by block (`--recompute blocks`): memory grows with one block, not all.
public final class Activations: @unchecked Sendable {
    public let capacityTokens: Int
    public let maxSeqLen: Int
    public let training: Bool
    public let recompute: Bool
    let storage: FloatBuffer
    public let layers: [LayerActs]
    public let xout: UnsafeMutablePointer<Float>     // last block's output (input of ln_f)
    public let rstdF: UnsafeMutablePointer<Float>
    public let hf: UnsafeMutablePointer<Float>       // ln_f output [tokens, d]
    public let hsel: UnsafeMutablePointer<Float>     // ln_f output gathered at the head's rows
    public let logits: UnsafeMutablePointer<Float>   // [head rows, vocab]; holds dlogits for backward
    public let attnScratch: UnsafeMutablePointer<Float>
    // backward scratch (training only; aliases nothing above)
    let dx, dxn, dqkv, dao, dau, dh: UnsafeMutablePointer<Float>
    public var tokens: [Int32]
    public private(set) var batch = 0, seqLen = 0
    public internal(set) var headRows: [Int32] = []
    /// Per sequence of the current batch, its first key that attention may see (the rows before it are
    /// left padding, masked out of every query's attention); nil: every key (the training case).
    public internal(set) var keyStart: [Int]?

    /// Where each buffer lies in the one allocation (float offsets), and its size.
    struct Layout {
        struct LayerOff { var xin, rstd1, xn1, qkv, ao, lse, xmid, rstd2, xn2, au, h: Int }
        var layers: [LayerOff] = []
        var xout = 0, rstdF = 0, hf = 0, hsel = 0, logits = 0, scratch = 0
        var back = [Int](repeating: 0, count: 6)
        var floats = 0
    }

    static func layout(config c: ModelConfig, capacityTokens T: Int, maxSeqLen: Int, training: Bool,
                       recompute: Bool = false) -> Layout {
        let d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize, V = c.vocab
        let lseCount = T * c.nHeads   // batch·heads·L
        var arena = Arena(), l = Layout()
        func layerOff(_ ar: inout Arena) -> Layout.LayerOff {
            Layout.LayerOff(xin: ar.take(T * d), rstd1: ar.take(T), xn1: ar.take(T * d), qkv: ar.take(T * (d + 2 * kv)),
                            ao: ar.take(T * d), lse: ar.take(lseCount), xmid: ar.take(T * d), rstd2: ar.take(T),
                            xn2: ar.take(T * d), au: ar.take(T * 2 * ff), h: ar.take(T * ff))
        }
        if training && recompute {
            let shared = layerOff(&arena)
            for _ in 0..<c.nLayers { var o = shared; o.xin = arena.take(T * d); l.layers.append(o) }
        } else if training {
            for _ in 0..<c.nLayers { l.layers.append(layerOff(&arena)) }
        } else {
            let shared = layerOff(&arena)
            l.layers = Array(repeating: shared, count: c.nLayers)
        }
        l.xout = training ? arena.take(T * d) : l.layers[0].xin   // inference: blocks write back in place
        l.rstdF = arena.take(T); l.hf = arena.take(T * d); l.hsel = arena.take(T * d); l.logits = arena.take(T * V)
        // attention: per worker, two [block rows × L] blocks (block rows · L ≤ max(2^18, L))
        l.scratch = arena.take(Parallel.workers * 2 * max(1 << 18, maxSeqLen))
        if training {
            l.back = [arena.take(T * d), arena.take(T * d), arena.take(T * (d + 2 * kv)), arena.take(T * d),
                      arena.take(T * 2 * ff), arena.take(T * ff)]
        }
        l.floats = arena.used
        return l
    }

    /// Bytes `Activations(config:capacityTokens:maxSeqLen:training:)` allocates (its exact arena), without
    /// allocating them: for memory plans.
    public static func bytes(config c: ModelConfig, capacityTokens T: Int, maxSeqLen: Int, training: Bool,
                             recompute: Bool = false) -> Int {
        layout(config: c, capacityTokens: T, maxSeqLen: maxSeqLen, training: training, recompute: recompute).floats * 4
    }

    public init(config c: ModelConfig, capacityTokens T: Int, maxSeqLen: Int, training: Bool, recompute: Bool = false) {
        capacityTokens = T; self.maxSeqLen = maxSeqLen; self.training = training; self.recompute = training && recompute
        let l = Activations.layout(config: c, capacityTokens: T, maxSeqLen: maxSeqLen, training: training,
                                   recompute: training && recompute)
        storage = FloatBuffer(count: l.floats)
        let p = storage.pointer
        layers = l.layers.map { o in
            LayerActs(xin: p + o.xin, rstd1: p + o.rstd1, xn1: p + o.xn1, qkv: p + o.qkv, ao: p + o.ao,
                      lse: p + o.lse, xmid: p + o.xmid, rstd2: p + o.rstd2, xn2: p + o.xn2, au: p + o.au, h: p + o.h)
        }
        xout = p + l.xout; rstdF = p + l.rstdF; hf = p + l.hf; hsel = p + l.hsel; logits = p + l.logits
        attnScratch = p + l.scratch
        let back = l.back
        dx = p + back[0]; dxn = p + back[1]; dqkv = p + back[2]; dao = p + back[3]; dau = p + back[4]; dh = p + back[5]
        tokens = [Int32](repeating: 0, count: T)
    }

    /// Bytes held (for memory reports).
    public var bytes: Int { storage.count * 4 }

    func setShape(batch b: Int, seqLen l: Int, keyStart ks: [Int]? = nil) {
        precondition(b * l <= capacityTokens && l <= maxSeqLen, "batch \(b)×\(l) exceeds activation capacity")
        precondition(ks == nil || (ks!.count == b && ks!.allSatisfy { $0 >= 0 }), "one key start per sequence")
        batch = b; seqLen = l; keyStart = ks
    }
}
