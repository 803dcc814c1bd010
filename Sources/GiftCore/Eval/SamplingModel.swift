import Foundation

/// The model a sampler of left-padded prompt batches runs (d1's `PaddedSampler`, Dream's `DreamSampler`):
/// the weights (fp32, a bf16 store decoded a block at a time, or ZeRO-3's gathered view), the Transformer
/// and its inference activations, made once for the largest batch and prompt and reused by every batch.
public final class SamplingModel: @unchecked Sendable {
    public let config: ModelConfig
    /// The flat parameters the model reads; `owner` keeps them alive.
    let params: UnsafePointer<Float>
    let owner: AnyObject
    /// Where the model reads its blocks when `params` is not resident (a bf16 store, ZeRO-3's gathers).
    let store: BlockWeightSource?
    let model: Transformer
    let acts: Activations
    public let maxBatch: Int
    public let maxPrompt: Int
    public let genLength: Int

    /// `copies`: forward sequences per prompt (2 with classifier-free guidance).
    init(config: ModelConfig, weights: UnsafePointer<Float>, owner: AnyObject, store: BlockWeightSource?, maxBatch: Int,
         copies: Int = 1, maxPromptLength: Int, genLength: Int) throws {
        let maxLen = maxPromptLength + genLength
        guard maxLen <= config.maxSequenceLength else {
            throw GiftError(.config, "prompt + gen length (\(maxPromptLength) + \(genLength) tokens) exceeds the "
                            + "model's max_sequence_length \(config.maxSequenceLength)")
        }
        self.config = config; self.params = weights; self.owner = owner; self.store = store
        self.maxBatch = maxBatch; self.maxPrompt = maxPromptLength; self.genLength = genLength
        model = Transformer(config: config, maxSeqLen: maxLen)
        model.weightSource = store
        acts = Activations(config: config, capacityTokens: copies * maxBatch * maxLen, maxSeqLen: maxLen, training: false)
    }

    /// The model over fp32 parameters (checked against the config's layout).
    convenience init(config: ModelConfig, params: FloatBuffer, maxBatch: Int, copies: Int = 1, maxPromptLength: Int,
                     genLength: Int) throws {
        guard params.count == ParameterLayout(config).count else {
            throw GiftError(.mismatch, "parameter buffer has \(params.count) floats, the model needs \(ParameterLayout(config).count)")
        }
        try self.init(config: config, weights: params.pointer, owner: params, store: nil, maxBatch: maxBatch, copies: copies,
                      maxPromptLength: maxPromptLength, genLength: genLength)
    }

    /// The model over an eval's weights: fp32, a bf16 store, or ZeRO-3's gathered view (collective).
    public convenience init(config: ModelConfig, weights: EvalWeights, maxBatch: Int, copies: Int = 1, maxPromptLength: Int,
                            genLength: Int) throws {
        switch weights {
        case .fp32(let p):
            try self.init(config: config, params: p, maxBatch: maxBatch, copies: copies, maxPromptLength: maxPromptLength,
                          genLength: genLength)
        case .bf16(let store):
            try self.init(config: config, weights: store.view, owner: store, store: store, maxBatch: maxBatch, copies: copies,
                          maxPromptLength: maxPromptLength, genLength: genLength)
        case .gathered(let view, let source):
            try self.init(config: config, weights: view.pointer, owner: view, store: source, maxBatch: maxBatch, copies: copies,
                          maxPromptLength: maxPromptLength, genLength: genLength)
        }
    }

    /// Whether blocks are read through collective gathers (every rank must then run as many forward passes).
    var isCollective: Bool { store?.isCollective ?? false }

    /// One batch: refused if this model was not made for it (`check`), else `body` with every prompt's key
    /// (default: its index) and seed (default: `seed`), the weights ready (`withWeights`).
    func batch(_ prompts: [[Int32]], keys: [Int]?, seeds: [UInt64]?, seed: UInt64, paddedTo: Int,
               _ body: (_ keys: [Int], _ seeds: [UInt64]) -> [[Int32]]) throws -> [[Int32]] {
        if prompts.isEmpty { return [] }
        try check(prompts, paddedTo: paddedTo)
        let keys = keys ?? Array(prompts.indices)
        let seeds = seeds ?? [UInt64](repeating: seed, count: prompts.count)
        precondition(keys.count == prompts.count && seeds.count == prompts.count, "one key and seed per prompt")
        return withWeights { body(keys, seeds) }
    }

    /// Refuses a batch this model was not made for: more than `maxBatch` prompts, an empty or too long
    /// prompt (or padding), an id outside the vocabulary.
    func check(_ prompts: [[Int32]], paddedTo: Int = 0) throws {
        guard prompts.count <= maxBatch else {
            throw GiftError(.usage, "\(prompts.count) prompts in one batch; the sampler was made for \(maxBatch)")
        }
        guard paddedTo <= maxPrompt else {
            throw GiftError(.usage, "padding to \(paddedTo) tokens; the sampler was made for prompts of up to \(maxPrompt)")
        }
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty, p.count <= maxPrompt else {
                throw GiftError(.data, "prompt \(i) has \(p.count) tokens; the sampler was made for 1 to \(maxPrompt)")
            }
            if let bad = p.first(where: { $0 < 0 || Int($0) >= config.vocab }) {
                throw GiftError(.data, "prompt \(i): token id \(bad) is outside the model vocabulary of \(config.vocab)")
            }
        }
    }

    /// `body` with the weights ready for bf16 matmuls: a bf16 copy of fp32 weights for the batch (a bf16
    /// store's blocks are decoded as they run).
    func withWeights<R>(_ body: () throws -> R) rethrows -> R {
        if store != nil { return try body() }
        return try Gemm.withWeightMirror(params, count: ParameterLayout(config).count, body)
    }

    /// x = [pad…, prompt, mask × genLength] per row (all rows as long as the longest prompt, or `paddedTo`
    /// where longer, + genLength), and each row's count of left padding.
    func leftPadded(_ prompts: [[Int32]], padId: Int32, paddedTo: Int = 0) -> (x: [Int32], pad: [Int], promptLength: Int) {
        let b = prompts.count, P = max(paddedTo, prompts.map(\.count).max()!), L = P + genLength
        let pad = prompts.map { P - $0.count }
        var x = [Int32](repeating: Int32(config.maskTokenId), count: b * L)
        for j in 0..<b {
            for t in 0..<pad[j] { x[j * L + t] = padId }
            for (t, id) in prompts[j].enumerated() { x[j * L + pad[j] + t] = id }
        }
        return (x, pad, P)
    }

    /// The inference forward of `tokens` ([batch, seqLen]); `keyStart[b]`: row b's first key (left padding
    /// before it masked out of attention). `outputRows`: the token rows `head` will be asked for (the last
    /// block's attention output and MLP then run at the rows predicting them alone); nil: every row.
    func forward(_ tokens: [Int32], batch: Int, seqLen: Int, outputRows: [Int32]? = nil, keyStart: [Int]?, cache: KVCacheUse? = nil) {
        Profiler.measure("sampler forward") {
            if let outputRows {
                model.forwardPass1(params, tokens: tokens, batch: batch, seqLen: seqLen, outputRows: outputRows, acts: acts,
                                   keyStart: keyStart, cache: cache)
            } else {
                model.forward(params, tokens: tokens, batch: batch, seqLen: seqLen, acts: acts, keyStart: keyStart, cache: cache)
            }
        }
    }

    /// The logits predicting the token rows `rows` (indices into batch·seqLen; the family's row rule),
    /// [rows.count, vocab], valid until the next forward.
    func head(rows: [Int32]) -> UnsafeMutablePointer<Float> {
        Profiler.measure("sampler head") { model.head(params, rows: rows, acts: acts) }
    }
}

/// A sampler of one left-padded batch at a time (`PaddedSampler`, `DreamSampler`), as `BenchmarkEval` runs it.
public protocol BatchSampler: AnyObject {
    var maxBatch: Int { get }
    /// Model forward passes run so far.
    var forwardPasses: Int { get }
    /// The genLength generated ids of each prompt (at most `maxBatch`); `keys[i]`: prompt i's index in
    /// the random draws, `seeds[i]` its seed (default: the options' seed). Prompts are left-padded to the
    /// longest, or to `paddedTo` tokens where that is longer (a lane pads its share as the whole batch).
    func generate(_ prompts: [[Int32]], keys: [Int]?, seeds: [UInt64]?, paddedTo: Int) throws -> [[Int32]]
}

extension BatchSampler {
    public func generate(_ prompts: [[Int32]], keys: [Int]? = nil, seeds: [UInt64]? = nil) throws -> [[Int32]] {
        try generate(prompts, keys: keys, seeds: seeds, paddedTo: 0)
    }

    /// `generate` over any number of prompts, `maxBatch` at a time in the given order.
    public func generateAll(_ prompts: [[Int32]], keys: [Int]? = nil, seeds: [UInt64]? = nil) throws -> [[Int32]] {
        let keys = keys ?? Array(prompts.indices)
        var out: [[Int32]] = []
        var i = 0
        while i < prompts.count {
            let j = min(prompts.count, i + maxBatch)
            out += try generate(Array(prompts[i..<j]), keys: Array(keys[i..<j]), seeds: seeds.map { Array($0[i..<j]) })
            i = j
        }
        return out
    }
}
