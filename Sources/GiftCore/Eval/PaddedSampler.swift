import Foundation

/// d1's `generate()` (eval/generate.py of dllm-reasoning/d1, LLaDA's sampler as the paper's evaluation
/// runs it) on one batch of prompts, left-padded to the batch's longest prompt with the pad token:
///
/// - x = [pad…, prompt, mask × genLength] per row; the response is denoised block by block, left to right,
///   `SamplerSchedule`'s counts per step (d1: get_num_transfer_tokens of the block's masks).
/// - Each step runs the model on the whole batch; x0 is the argmax of the logits over the whole
///   vocabulary (the mask id included, as d1 does; at temperature > 0 Gumbel-max with gift's counter
///   draws, where d1 uses torch.rand), its confidence the softmax probability of x0.
/// - The candidates are every still-masked position before the current block's end (a position that was
///   given the mask id by an earlier step stays masked and a candidate, as in d1); the k most confident are
///   committed (k = the step's count; ties go to the lower position, where torch.topk leaves the order
///   unspecified).
/// - `attendPadding`: d1 passes no attention mask, so every query attends to the padding and a problem's
///   output depends on its batch. false: padding is left out of attention (Attention's `keyStart`), so a
///   problem's output is, up to float rounding, its output alone (RoPE scores depend only on position
///   differences).
///
/// - `threshold` (Fast-dLLM's parallel decoding, opt-in): a step commits its most confident candidate and
///   every other whose confidence is at least the threshold, and a block runs steps until none of its
///   positions holds the mask id (at most the block's length of steps), so `steps` is not used.
///
/// - `cache` (Fast-dLLM's approximate KV caches, opt-in; `CacheMode`): each block's first step runs the whole
///   sequence and keeps every position's keys and values (`KVCache`); its other steps run only the block and
///   what follows it (`.prefix`) or the block alone (`.dual`) against them, and their candidates are the block's
///   masked positions. Masked padding stays masked (the cache holds the padding's rows, the key mask skips them).
///   Dream: the window starts a row before the block (that row predicts the block's first token).
///
/// Weights, activations and the model are made once for the largest batch and prompt, and reused.
public final class PaddedSampler: BatchSampler, @unchecked Sendable {
    public let options: SamplerOptions
    public let schedule: SamplerSchedule
    public let padId: Int32
    public let attendPadding: Bool
    /// The weights, model and activations (`SamplingModel`).
    let runner: SamplingModel
    public var config: ModelConfig { runner.config }
    public var maxBatch: Int { options.maxBatch }
    /// Fast-dLLM's confidence threshold (nil: d1's fixed schedule).
    public var threshold: Double?
    /// Fast-dLLM's approximate KV cache (`.none`: every step runs the whole sequence, as d1).
    public var cache = CacheMode.none
    /// The cache's buffers, made at the first batch that uses one (for the largest batch), then reused.
    private var kvCache: KVCache?
    /// Model forward passes run so far (with cfg, each counts once).
    public private(set) var forwardPasses = 0

    public convenience init(config: ModelConfig, params: FloatBuffer, options: SamplerOptions, padId: Int32, attendPadding: Bool,
                            maxPromptLength: Int) throws {
        try self.init(config: config, weights: .fp32(params), options: options, padId: padId, attendPadding: attendPadding,
                      maxPromptLength: maxPromptLength)
    }

    /// The model kept as bf16 (half the memory): each block decoded just before it runs, then dropped.
    public convenience init(config: ModelConfig, store: BF16BaseStore, options: SamplerOptions, padId: Int32,
                            attendPadding: Bool, maxPromptLength: Int) throws {
        try self.init(config: config, weights: .bf16(store), options: options, padId: padId, attendPadding: attendPadding,
                      maxPromptLength: maxPromptLength)
    }

    /// A view of weights read block by block through `source` (ZeRO-3's gathered view during training:
    /// collective, so every rank must run as many batches).
    public convenience init(config: ModelConfig, view: FloatBuffer, source: BlockWeightSource, options: SamplerOptions, padId: Int32,
                            attendPadding: Bool, maxPromptLength: Int) throws {
        try self.init(config: config, weights: .gathered(view, source), options: options, padId: padId,
                      attendPadding: attendPadding, maxPromptLength: maxPromptLength)
    }

    public init(config: ModelConfig, weights: EvalWeights, options: SamplerOptions, padId: Int32, attendPadding: Bool,
                maxPromptLength: Int) throws {
        try options.validate()
        guard padId >= 0 && Int(padId) < config.vocab else {
            throw GiftError(.config, "pad token id \(padId) is outside the model vocabulary of \(config.vocab)")
        }
        runner = try SamplingModel(config: config, weights: weights, maxBatch: options.maxBatch, copies: options.cfg > 0 ? 2 : 1,
                                   maxPromptLength: maxPromptLength, genLength: options.genLength)
        self.options = options; self.padId = padId; self.attendPadding = attendPadding
        schedule = try options.schedule
    }

    /// The genLength generated ids of each prompt (one batch, at most `options.maxBatch` prompts).
    /// `keys[i]`: prompt i's index in the random draws (temperature > 0), `seeds[i]` its seed (default
    /// `options.seed`).
    public func generate(_ prompts: [[Int32]], keys: [Int]?, seeds: [UInt64]?, paddedTo: Int) throws -> [[Int32]] {
        try runner.batch(prompts, keys: keys, seeds: seeds, seed: options.seed, paddedTo: paddedTo) {
            run(prompts, keys: $0, seeds: $1, paddedTo: paddedTo)
        }
    }

    /// The KV cache shaped for `batch` sequences of `seqLen`, made once for the largest batch and prompt.
    private func cacheBuffers(batch: Int, seqLen: Int) -> KVCache {
        let c = kvCache ?? KVCache(config: config, capacityTokens: (options.cfg > 0 ? 2 : 1) * options.maxBatch * (runner.maxPrompt + options.genLength))
        kvCache = c
        c.setShape(batch: batch, seqLen: seqLen)
        return c
    }

    func run(_ prompts: [[Int32]], keys: [Int], seeds: [UInt64], paddedTo: Int) -> [[Int32]] {
        let b = prompts.count, G = options.genLength, V = config.vocab
        let mask = Int32(config.maskTokenId)
        let useCFG = options.cfg > 0, copies = useCFG ? 2 : 1, cfg = Float(options.cfg)
        // left padding: row j starts with pad[j] pad tokens
        let padded = runner.leftPadded(prompts, padId: padId, paddedTo: paddedTo)
        var x = padded.x
        let pad = padded.pad, P = padded.promptLength, L = P + G
        // d1's prompt_index (x != mask before sampling): what the unconditional copy masks under cfg
        let promptIndex = x.map { $0 != mask }
        let keyStart: [Int]? = attendPadding ? nil : (0..<copies).flatMap { _ in pad }
        let kv = cache == .none ? nil : cacheBuffers(batch: copies * b, seqLen: L)
        for (bi, block) in schedule.blocks.enumerated() {
            let start = P + block.lowerBound, end = P + block.upperBound
            let blockDone = { (0..<b).allSatisfy { j in !x[(j * L + start)..<(j * L + end)].contains(mask) } }
            // the rows a cached step runs (the rest of the sequence is in the cache the block's first step fills)
            let window = cache.window(block: start..<end, seqLen: L, shift: config.family.predictionShift)
            var s = 0
            // d1: the schedule's steps; Fast-dLLM's threshold: until the block holds no mask id (bounded)
            while threshold == nil ? s < schedule.stepsPerBlock : (!blockDone() && s < block.count) {
                defer { s += 1 }
                let k = threshold == nil ? schedule.counts[bi][s] : Int.max, step = bi * schedule.stepsPerBlock + s
                if k == 0 { continue }   // d1 runs the model and commits nothing: x is unchanged
                let reading = kv != nil && s > 0, first = reading ? window.lowerBound : 0, S = (reading ? window.upperBound : L) - first
                // candidates: masked positions before the block's end (reading the cache: in the block), per row
                var rows: [Int32] = [], rowSeq: [Int] = [], rowPos: [Int] = [], perRow = [Int](repeating: 0, count: b)
                for j in 0..<b {
                    for t in (reading ? start : 0)..<end where x[j * L + t] == mask {
                        rows.append(Int32(j * S + t - first)); rowSeq.append(j); rowPos.append(t); perRow[j] += 1
                    }
                }
                let R = rows.count
                var input = [Int32](repeating: mask, count: copies * b * S)
                for j in 0..<b {
                    for t in first..<(first + S) {
                        input[j * S + t - first] = x[j * L + t]
                        if useCFG { input[(b + j) * S + t - first] = promptIndex[j * L + t] ? mask : x[j * L + t] }
                    }
                }
                if useCFG { for r in 0..<R { rows.append(rows[r] + Int32(b * S)) } }
                let use: KVCacheUse? = kv.map { reading ? .read($0, from: first) : .fill($0) }
                runner.forward(input, batch: copies * b, seqLen: S, outputRows: rows, keyStart: keyStart, cache: use)
                forwardPasses += 1
                let logits = runner.head(rows: rows)
                let (x0, conf) = Profiler.measure("sampler choose") {
                    Sampler.predict(logits: logits, rows: R, vocab: V, cfg: useCFG ? cfg : nil, temperature: options.temperature,
                                    remasking: options.remasking, forbid: { _ in },
                                    rng: { r in CounterRNG(seeds[rowSeq[r]], UInt64(bitPattern: Int64(keys[rowSeq[r]])), UInt64(step),
                                                           UInt64(rowPos[r] - P)) })
                }
                var r0 = 0
                for j in 0..<b {
                    let n = perRow[j]
                    let pick = (r0..<(r0 + n)).sorted { conf[$0] != conf[$1] ? conf[$0] > conf[$1] : rowPos[$0] < rowPos[$1] }
                    for (rank, r) in pick.prefix(k).enumerated() {
                        if let th = threshold, rank > 0, conf[r] < th { break }
                        x[j * L + rowPos[r]] = x0[r]
                    }
                    r0 += n
                }
            }
        }
        return (0..<b).map { j in Array(x[(j * L + P)..<((j + 1) * L)]) }
    }
}
