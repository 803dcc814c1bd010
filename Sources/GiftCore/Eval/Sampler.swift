import Foundation

/// How a denoising step chooses which of the current block's predictions to keep (LLaDA's `remasking`).
public enum Remasking: String, CaseIterable, Sendable {
    /// Keep the predictions with the highest softmax probability (of the predicted token); the others
    /// are masked again.
    case lowConfidence = "low_confidence"
    /// Keep predictions at uniformly random positions.
    case random

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Parses `low_confidence` (also `low-confidence`) or `random`; anything else is a usage error.
    public init(name: String) throws {
        guard let r = Remasking(rawValue: name.lowercased().replacingOccurrences(of: "-", with: "_")) else {
            throw GiftError(.usage, "unknown remasking '\(name)'; known: \(Self.names)")
        }
        self = r
    }
}

/// The settings of LLaDA's sampler (`generate` in LLaDA's generate.py).
public struct SamplerOptions: Equatable, Sendable {
    /// Tokens generated after each prompt (the response starts as this many mask tokens).
    public var genLength: Int
    /// Tokens denoised together, left to right, block by block. A block length above genLength is cut
    /// to genLength (one block); when genLength is not a multiple of it, the last block is the shorter
    /// remainder (LLaDA requires a multiple; gift allows the remainder and schedules it the same way).
    public var blockLength: Int
    /// Denoising steps in total, an equal share per block (must be divisible by the number of blocks).
    /// nil: genLength / 2, rounded up to a multiple of the number of blocks (at least one per block).
    public var steps: Int?
    /// 0: argmax (greedy, deterministic). > 0: Gumbel-max sampling from softmax(logits / temperature).
    public var temperature: Double
    public var remasking: Remasking
    /// Classifier-free guidance scale; > 0 also runs the model with the prompt masked and uses
    /// uncond + (cfg + 1)(cond − uncond).
    public var cfg: Double
    /// Seed of every random draw (Gumbel noise, random remasking).
    public var seed: UInt64
    /// Sequences per forward pass (with cfg each also has its unconditional copy).
    public var maxBatch: Int
    /// Groups a batch is split into, sampled at once, each on one core (`SamplingLanes`). 0: one per core the
    /// kernels use, where the batch has that many prompts; 1: the whole batch on all cores.
    public var lanes: Int = 0

    public init(genLength: Int = 32, blockLength: Int = 32, steps: Int? = nil, temperature: Double = 0,
                remasking: Remasking = .lowConfidence, cfg: Double = 0, seed: UInt64 = 0, maxBatch: Int = 32) {
        self.genLength = genLength; self.blockLength = blockLength; self.steps = steps
        self.temperature = temperature; self.remasking = remasking; self.cfg = cfg; self.seed = seed
        self.maxBatch = maxBatch
    }

    /// Checks every field; the schedule (block count, steps) is checked by `SamplerSchedule`.
    public func validate() throws {
        if genLength < 1 { throw GiftError(.usage, "gen length must be at least 1, got \(genLength)") }
        if blockLength < 1 { throw GiftError(.usage, "block length must be at least 1, got \(blockLength)") }
        if let s = steps, s < 1 { throw GiftError(.usage, "steps must be at least 1, got \(s)") }
        if !(temperature >= 0) || !temperature.isFinite {
            throw GiftError(.usage, "temperature must be a finite number >= 0, got \(temperature)")
        }
        if !(cfg >= 0) || !cfg.isFinite { throw GiftError(.usage, "cfg must be a finite number >= 0, got \(cfg)") }
        if maxBatch < 1 { throw GiftError(.usage, "batch must be at least 1, got \(maxBatch)") }
        if lanes < 0 { throw GiftError(.usage, "lanes must be 0 (one per core) or more, got \(lanes)") }
    }

    public var schedule: SamplerSchedule {
        get throws { try SamplerSchedule(genLength: genLength, blockLength: blockLength, steps: steps) }
    }
}

/// Which response positions each block covers and how many tokens each of its steps commits.
public struct SamplerSchedule: Equatable, Sendable {
    /// Response offsets (0 = first generated token) of each block, left to right.
    public let blocks: [Range<Int>]
    public let stepsPerBlock: Int
    /// counts[b][s]: tokens committed at step s of block b (`transferCounts` of the block's length).
    public let counts: [[Int]]

    public var totalSteps: Int { stepsPerBlock * blocks.count }

    public init(genLength: Int, blockLength: Int, steps: Int?) throws {
        guard genLength >= 1, blockLength >= 1 else {
            throw GiftError(.usage, "gen length and block length must be at least 1 (got \(genLength), \(blockLength))")
        }
        let bl = min(blockLength, genLength)
        var b: [Range<Int>] = []
        var s = 0
        while s < genLength { b.append(s..<min(s + bl, genLength)); s += bl }
        let nb = b.count
        let total: Int
        if let steps {
            guard steps >= 1 else { throw GiftError(.usage, "steps must be at least 1, got \(steps)") }
            guard steps % nb == 0 else {
                throw GiftError(.usage, "steps (\(steps)) must be divisible by the number of blocks (\(nb) = "
                                + "gen length \(genLength) / block length \(bl)\(genLength % bl != 0 ? ", rounded up" : ""))")
            }
            total = steps
        } else {
            total = max(nb, (genLength / 2 + nb - 1) / nb * nb)
        }
        blocks = b
        stepsPerBlock = total / nb
        counts = b.map { Self.transferCounts(masked: $0.count, steps: total / nb) }
    }

    /// LLaDA's get_num_transfer_tokens: `masked` tokens over `steps` steps, base = masked / steps each,
    /// the first masked % steps steps one more (32 over 5: 7, 7, 6, 6, 6).
    public static func transferCounts(masked: Int, steps: Int) -> [Int] {
        precondition(masked >= 0 && steps >= 1)
        let base = masked / steps, rem = masked % steps
        return (0..<steps).map { base + ($0 < rem ? 1 : 0) }
    }
}

/// What one denoising step did to one sequence (for tests and debugging).
public struct SamplerTraceStep: Sendable {
    /// The prompt's index (as given to `generate`, or the `keys` entry).
    public let promptIndex: Int
    public let block: Int
    /// Step within the block, and over the whole generation (block · stepsPerBlock + stepInBlock).
    public let stepInBlock: Int
    public let step: Int
    /// Response offsets committed at this step, ascending (empty when the schedule commits nothing).
    public let committed: [Int]
    /// The response after this step (mask id where still masked).
    public let response: [Int32]
}

/// LLaDA's sampler: the response starts as `genLength` mask tokens after the prompt and is denoised
/// block by block, left to right. At each step the model (an inference forward, nothing kept) predicts
/// every still-masked position of the current block only; the step commits the schedule's number of
/// them (the most confident under `lowConfidence`, random ones under `random`); positions after the
/// current block stay masked until their block's turn.
///
/// Predictions never take the mask id (nor ids ≥ vocab_size, embedding padding): their logits are set
/// to −∞, so every commit is final and the counts are exact. (LLaDA's code can commit the mask id.)
/// Ties in confidence go to the lower position.
///
/// Batching: the model has no attention mask, so prompts are grouped by length (stable order) and each
/// group runs in batches of up to `maxBatch` sequences of one length, prompt + genLength; no padding
/// ever enters a sequence, and the result for a prompt does not depend on the other prompts.
///
/// Randomness: every draw comes from CounterRNG(seed, prompt key, step, position), step counted over
/// the whole generation and position from the start of the response; the Gumbel noise of vocabulary
/// entry v uses counter v, the random-remasking confidence counter 2^64 − 1.
public final class Sampler: @unchecked Sendable {
    public let config: ModelConfig
    public let options: SamplerOptions
    public let schedule: SamplerSchedule
    let params: FloatBuffer
    /// Called after every step for every sequence, in order of steps.
    public var trace: ((SamplerTraceStep) -> Void)?
    /// Where the model reads its blocks when `params` is not resident (ZeRO-3's gathered view: every rank
    /// must then sample the same prompts, as the gathers are collective).
    public var weightSource: BlockWeightSource?

    public init(config: ModelConfig, params: FloatBuffer, options: SamplerOptions) throws {
        try options.validate()
        let layout = ParameterLayout(config)
        guard params.count == layout.count else {
            throw GiftError(.mismatch, "parameter buffer has \(params.count) floats, the model needs \(layout.count)")
        }
        self.config = config; self.params = params; self.options = options
        schedule = try options.schedule
    }

    /// The responses (genLength tokens each, in input order) of `prompts`. `keys[i]` (default i) is
    /// prompt i's index in the random draws, and `seeds[i]` (default `options.seed`) its seed, so a
    /// prompt gets the same draws in any batch (several seeds can share one call and its batches).
    public func generate(_ prompts: [[Int32]], keys: [Int]? = nil, seeds: [UInt64]? = nil) throws -> [[Int32]] {
        if prompts.isEmpty { return [] }
        let keys = keys ?? Array(prompts.indices)
        let seeds = seeds ?? [UInt64](repeating: options.seed, count: prompts.count)
        precondition(keys.count == prompts.count && seeds.count == prompts.count, "one key and seed per prompt")
        let V = config.vocab
        for (i, p) in prompts.enumerated() {
            if let bad = p.first(where: { $0 < 0 || Int($0) >= V }) {
                throw GiftError(.data, "prompt \(i): token id \(bad) is outside the model vocabulary of \(V)")
            }
        }
        let G = options.genLength
        let maxLen = prompts.map(\.count).max()! + G
        guard maxLen <= config.maxSequenceLength else {
            throw GiftError(.config, "prompt + gen length (\(maxLen) tokens) exceeds the model's "
                            + "max_sequence_length \(config.maxSequenceLength)")
        }
        let copies = options.cfg > 0 ? 2 : 1
        let batchCap = min(options.maxBatch, prompts.count)
        // each lane its own model and activations, for its share of a batch
        let lanes = laneCount(batch: batchCap), laneCap = (batchCap + lanes - 1) / lanes
        let models = (0..<lanes).map { _ in
            let m = Transformer(config: config, maxSeqLen: maxLen)
            m.weightSource = weightSource
            return m
        }
        let acts = (0..<lanes).map { _ in
            Activations(config: config, capacityTokens: copies * laneCap * maxLen, maxSeqLen: maxLen, training: false)
        }
        // stable grouping by length, then batches of up to maxBatch
        let order = prompts.indices.sorted { (prompts[$0].count, $0) < (prompts[$1].count, $1) }
        var out = [[Int32]](repeating: [], count: prompts.count)
        var start = 0
        while start < order.count {
            let len = prompts[order[start]].count
            var end = start
            while end < order.count && end - start < batchCap && prompts[order[end]].count == len { end += 1 }
            let idx = Array(order[start..<end])
            // bf16: the weights' bf16 copy lives for one batch of prompts (params do not change meanwhile;
            // bf16 runs one lane); lane g samples a contiguous share of the batch
            let res = try Gemm.withWeightMirror(params.pointer, count: weightSource == nil ? params.count : 0) {
                try SamplingLanes.run(idx.count, lanes: lanes) { g, r in
                    let share = idx[r]
                    return run(prompts: share.map { prompts[$0] }, keys: share.map { keys[$0] }, seeds: share.map { seeds[$0] },
                               model: models[g], acts: acts[g])
                }
            }
            for (j, i) in idx.enumerated() { out[i] = res[j] }
            start = end
        }
        return out
    }

    /// Lanes for batches of up to `batch` prompts (`SamplingLanes.count`; one with a trace, called in step order).
    func laneCount(batch: Int) -> Int {
        SamplingLanes.count(requested: trace == nil ? options.lanes : 1, batch: batch, residentWeights: weightSource == nil)
    }

    /// One batch of prompts of one length.
    func run(prompts: [[Int32]], keys: [Int], seeds: [UInt64], model: Transformer, acts: Activations) -> [[Int32]] {
        let b = prompts.count, P = prompts[0].count, G = options.genLength, L = P + G, V = config.vocab
        let mask = Int32(config.maskTokenId)
        let useCFG = options.cfg > 0, copies = useCFG ? 2 : 1
        var x = [Int32](repeating: mask, count: b * L)
        for j in 0..<b { for t in 0..<P { x[j * L + t] = prompts[j][t] } }
        var isMasked = [Bool](repeating: true, count: b * G)
        var input = [Int32](repeating: mask, count: copies * b * L)   // uncond copies keep masked prompts
        let temperature = options.temperature, cfg = Float(options.cfg)
        let remasking = options.remasking
        let forbiddenFrom = config.vocabSize   // ids ≥ vocab_size: embedding padding
        for (bi, block) in schedule.blocks.enumerated() {
            for s in 0..<schedule.stepsPerBlock {
                let k = schedule.counts[bi][s], step = bi * schedule.stepsPerBlock + s
                var committed = [[Int]](repeating: [], count: b)
                if k > 0 {
                    // the current block's masked positions, per sequence
                    let positions: [[Int]] = (0..<b).map { j in block.filter { isMasked[j * G + $0] } }
                    var rows: [Int32] = [], rowSeq: [Int] = [], rowPos: [Int] = []
                    for j in 0..<b {
                        for p in positions[j] {
                            rows.append(Int32(j * L + P + p)); rowSeq.append(j); rowPos.append(p)
                        }
                    }
                    let R = rows.count
                    if useCFG { for r in 0..<R { rows.append(rows[r] + Int32(b * L)) } }
                    for i in 0..<(b * L) { input[i] = x[i] }
                    if useCFG {
                        for j in 0..<b {
                            for t in P..<L { input[(b + j) * L + t] = x[j * L + t] }
                        }
                    }
                    Profiler.measure("sampler forward") {   // the last block's MLP only at the rows the head reads
                        model.forwardPass1(params.pointer, tokens: input, batch: copies * b, seqLen: L, outputRows: rows, acts: acts)
                    }
                    let logits = Profiler.measure("sampler head") { model.head(params.pointer, rows: rows, acts: acts) }
                    let (x0, conf) = Profiler.measure("sampler choose") {
                        Sampler.predict(logits: logits, rows: R, vocab: V, cfg: useCFG ? cfg : nil, temperature: temperature,
                                        remasking: remasking,
                                        forbid: { z in
                                            z[Int(mask)] = -.infinity
                                            for v in forbiddenFrom..<V { z[v] = -.infinity }
                                        },
                                        rng: { r in CounterRNG(seeds[rowSeq[r]], UInt64(bitPattern: Int64(keys[rowSeq[r]])),
                                                               UInt64(step), UInt64(rowPos[r])) })
                    }
                    // per sequence: commit the k most confident (ties: lower position)
                    var r0 = 0
                    for j in 0..<b {
                        let n = positions[j].count
                        precondition(k <= n, "schedule commits \(k) of \(n) masked positions")
                        let pick = (r0..<(r0 + n)).sorted { conf[$0] != conf[$1] ? conf[$0] > conf[$1] : rowPos[$0] < rowPos[$1] }
                        for r in pick.prefix(k) {
                            let p = rowPos[r]
                            x[j * L + P + p] = x0[r]
                            isMasked[j * G + p] = false
                            committed[j].append(p)
                        }
                        committed[j].sort()
                        r0 += n
                    }
                }
                if let trace {
                    for j in 0..<b {
                        trace(SamplerTraceStep(promptIndex: keys[j], block: bi, stepInBlock: s, step: step,
                                               committed: committed[j], response: Array(x[(j * L + P)..<((j + 1) * L)])))
                    }
                }
            }
        }
        return (0..<b).map { j in Array(x[(j * L + P)..<((j + 1) * L)]) }
    }

    /// x0 and its confidence for each of the R head rows of `logits` ([R, V]; with `cfg`, the unconditional
    /// rows follow as R..<2R and each row is uncond + (cfg + 1)(cond − uncond)): `forbid` sets the entries
    /// a prediction may not take to −∞ (gift's sampler: the mask id and embedding padding; d1's: none),
    /// `choose` picks the token with row r's draws `rng(r)`, and the confidence is its softmax
    /// probability (low_confidence) or a uniform draw (random). Rows run in parallel.
    static func predict(logits: UnsafePointer<Float>, rows R: Int, vocab V: Int, cfg: Float?, temperature: Double,
                        remasking: Remasking, forbid: (UnsafeMutablePointer<Float>) -> Void,
                        rng: (Int) -> CounterRNG) -> (x0: [Int32], conf: [Double]) {
        var x0 = [Int32](repeating: 0, count: R)
        var conf = [Double](repeating: 0, count: R)
        x0.withUnsafeMutableBufferPointer { x0p in
            conf.withUnsafeMutableBufferPointer { cp in
                let x0b = x0p.baseAddress!, cb = cp.baseAddress!
                Parallel.chunks(R, minChunk: max(1, 4096 / max(1, V / 64))) { lo, hi in
                    let z = UnsafeMutablePointer<Float>.allocate(capacity: 2 * V)
                    defer { z.deallocate() }
                    let tmp = z + V
                    for r in lo..<hi {
                        let lc = logits + r * V
                        if let cfg {
                            let lu = logits + (R + r) * V
                            for v in 0..<V { z[v] = lu[v] + (cfg + 1) * (lc[v] - lu[v]) }
                        } else {
                            z.update(from: lc, count: V)
                        }
                        forbid(z)
                        let g = rng(r)
                        let tok = choose(z, count: V, temperature: temperature, rng: g)
                        x0b[r] = Int32(tok)
                        switch remasking {
                        case .lowConfidence:
                            let m = FastMath.max(z, count: V)
                            let sum = FastMath.expShifted(z, tmp, count: V, shift: m)
                            let c = Double(tmp[tok]) / Double(sum)
                            cb[r] = c.isNaN ? -.infinity : c
                        case .random:
                            cb[r] = g.uniform(UInt64.max)
                        }
                    }
                }
            }
        }
        return (x0, conf)
    }

    /// The predicted token of one row of (already guided and restricted) logits: argmax at temperature
    /// 0, else argmax of z/τ + Gumbel noise (LLaDA's add_gumbel_noise, in Double): a draw from
    /// softmax(z/τ). Entries at −∞ are never chosen while a finite one exists.
    static func choose(_ z: UnsafePointer<Float>, count V: Int, temperature: Double, rng: CounterRNG) -> Int {
        var best = -Double.infinity, idx = -1
        if temperature == 0 {
            for v in 0..<V {
                let s = Double(z[v])
                if s > best || (idx < 0 && s == best) { best = s; idx = v }
            }
        } else {
            let inv = 1 / temperature
            for v in 0..<V where z[v] > -.infinity {
                // u in (0, 1): -log(-log u) is finite
                let u = (Double(rng.bits(UInt64(v)) >> 11) + 0.5) * 0x1.0p-53
                let s = Double(z[v]) * inv - Foundation.log(-Foundation.log(u))
                if s > best || idx < 0 { best = s; idx = v }
            }
        }
        return idx < 0 ? 0 : idx
    }
}
