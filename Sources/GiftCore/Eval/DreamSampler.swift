import Foundation

/// Dream's sampler (`diffusion_generate` / `_sample` of Dream's generation_utils.py) on batches of prompts
/// left-padded with the pad token, the padding masked out of attention as Dream's attention mask does:
///
/// - x = [pad…, prompt, mask × genLength]; every step runs the model on the whole sequence and reads the
///   logits of every position holding the mask id through the family's row rule (Dream: row i−1 predicts
///   token i, `cat([logits[:, :1], logits[:, :-1]])`).
/// - Timesteps linspace(1, eps, steps + 1) (`DreamSchedule`); at step i, with t, s = t_i, t_{i+1}:
///   - `origin`: each masked position is committed with probability 1 − s/t (all at the last step), to its
///     prediction;
///   - the others: each sequence commits int(n · (1 − s/t)) of its n masked positions (all at the last
///     step), those of highest confidence (`alg_temp` 0; ties go to the lower position) or drawn without
///     replacement from softmax(confidence / alg_temp) (Gumbel top-k).
/// - A prediction is Dream's sample_tokens: logits / temperature (> 0), then top_p and top_k filtering, p =
///   softmax; at temperature 0 the argmax, else a draw from p (Gumbel-max); confidence p[x0] (maskgit_plus),
///   top1 − top2 of p (topk_margin), Σ p·log(p + 1e−10) (entropy). The mask id may be predicted, as in
///   Dream; such a position stays masked and a candidate later.
///
/// Where gift differs: the count uses each sequence's own masked count (Dream: the batch mean, the same
/// whenever no step committed the mask id); confidences are computed in float64 (Dream: the model dtype);
/// draws come from CounterRNG(seed, prompt key, step, position from the response start) — Gumbel noise of
/// vocabulary entry v at counter v, the origin transfer and alg_temp draws at counter 2^64 − 1 — so a
/// prompt's output does not depend on its batch (up to float rounding of the padded forward). Dream runs
/// the model at every step; gift skips a forward that could commit nothing (unless the weights are
/// gathered collectively, where every rank must run as many).
public final class DreamSampler: BatchSampler, @unchecked Sendable {
    /// Gen length, steps (nil: `DreamSettings.defaultSteps`), temperature, seed and batch; LLaDA's block
    /// length and remasking are not read, and cfg must be 0.
    public let options: SamplerOptions
    public let dream: DreamSettings
    public let schedule: DreamSchedule
    public let padId: Int32
    let runner: SamplingModel
    public var config: ModelConfig { runner.config }
    public var maxBatch: Int { options.maxBatch }
    public private(set) var forwardPasses = 0

    public init(config: ModelConfig, weights: EvalWeights, options: SamplerOptions, dream: DreamSettings, padId: Int32,
                maxPromptLength: Int) throws {
        try options.validate()
        try dream.validate()
        guard options.cfg == 0 else { throw GiftError(.usage, "Dream's sampler has no classifier-free guidance (cfg \(options.cfg))") }
        guard padId >= 0 && Int(padId) < config.vocab else {
            throw GiftError(.config, "pad token id \(padId) is outside the model vocabulary of \(config.vocab)")
        }
        runner = try SamplingModel(config: config, weights: weights, maxBatch: options.maxBatch, maxPromptLength: maxPromptLength,
                                   genLength: options.genLength)
        self.options = options; self.dream = dream; self.padId = padId
        schedule = try DreamSchedule(steps: options.steps ?? DreamSettings.defaultSteps(genLength: options.genLength), eps: dream.eps)
    }

    public convenience init(config: ModelConfig, params: FloatBuffer, options: SamplerOptions, dream: DreamSettings,
                            padId: Int32? = nil, maxPromptLength: Int) throws {
        try self.init(config: config, weights: .fp32(params), options: options, dream: dream,
                      padId: padId ?? Int32(config.padTokenId), maxPromptLength: maxPromptLength)
    }

    /// Dream's sampler over `options.lanes` lanes (`SamplingLanes`): one sampler, or one per lane.
    public static func laned(config: ModelConfig, weights: EvalWeights, options: SamplerOptions, dream: DreamSettings,
                             padId: Int32? = nil, maxPromptLength: Int) throws -> BatchSampler {
        try SamplingLanes.sampler(options: options, weights: weights) { o in
            try DreamSampler(config: config, weights: weights, options: o, dream: dream, padId: padId ?? Int32(config.padTokenId),
                             maxPromptLength: maxPromptLength)
        }
    }

    public func generate(_ prompts: [[Int32]], keys: [Int]?, seeds: [UInt64]?, paddedTo: Int) throws -> [[Int32]] {
        try runner.batch(prompts, keys: keys, seeds: seeds, seed: options.seed, paddedTo: paddedTo) {
            run(prompts, keys: $0, seeds: $1, paddedTo: paddedTo)
        }
    }

    /// The counter of the origin transfer and alg_temp draws (the Gumbel noise of entry v uses v).
    static let positionCounter = UInt64.max

    func run(_ prompts: [[Int32]], keys: [Int], seeds: [UInt64], paddedTo: Int) -> [[Int32]] {
        let b = prompts.count, mask = Int32(config.maskTokenId)
        let padded = runner.leftPadded(prompts, padId: padId, paddedTo: paddedTo)
        var x = padded.x
        let P = padded.promptLength, L = P + options.genLength
        let keyStart: [Int]? = padded.pad.contains { $0 > 0 } ? padded.pad : nil
        let origin = dream.alg == .origin
        for i in 0..<schedule.steps {
            func rng(_ j: Int, _ t: Int) -> CounterRNG {
                CounterRNG(seeds[j], UInt64(bitPattern: Int64(keys[j])), UInt64(i), UInt64(bitPattern: Int64(t - P)))
            }
            // candidates: every masked position (origin: those its draw commits this step), per sequence
            let pTransfer = Double(schedule.transferProbability(step: i))
            var rows: [Int32] = [], rowSeq: [Int] = [], rowPos: [Int] = [], perRow = [Int](repeating: 0, count: b)
            for j in 0..<b {
                for t in 0..<L where x[j * L + t] == mask
                    && (!origin || rng(j, t).uniform(Self.positionCounter) < pTransfer) {
                    rows.append(Int32(j * L + t)); rowSeq.append(j); rowPos.append(t); perRow[j] += 1
                }
            }
            let counts = origin ? perRow : perRow.map { schedule.transferCount(masked: $0, step: i) }
            if counts.allSatisfy({ $0 == 0 }) && !runner.isCollective { continue }
            runner.forward(x, batch: b, seqLen: L, keyStart: keyStart)
            forwardPasses += 1
            // (collective gathers: the head runs on every rank, on one row if there is nothing to predict)
            let logits = runner.head(rows: rows.isEmpty ? [0] : rows)
            if rows.isEmpty { continue }
            let (x0, conf) = Profiler.measure("sampler choose") {
                predict(logits: logits, rows: rows.count, rng: { r in rng(rowSeq[r], rowPos[r]) })
            }
            var r0 = 0
            for j in 0..<b {
                let n = perRow[j], range = r0..<(r0 + n)
                r0 += n
                for r in origin ? Array(range) : select(range, count: counts[j], conf: conf, rowPos: rowPos,
                                                         rng: { rng(j, rowPos[$0]) }) {
                    x[j * L + rowPos[r]] = x0[r]
                }
            }
        }
        return (0..<b).map { j in Array(x[(j * L + P)..<((j + 1) * L)]) }
    }

    /// The `count` rows of `range` a step commits: the most confident (ties: lower position), or with
    /// alg_temp > 0 a draw without replacement from softmax(conf / alg_temp): the largest conf / alg_temp
    /// + Gumbel noise.
    func select(_ range: Range<Int>, count: Int, conf: [Double], rowPos: [Int], rng: (Int) -> CounterRNG) -> [Int] {
        guard count > 0 else { return [] }
        precondition(count <= range.count, "schedule commits \(count) of \(range.count) masked positions")
        var key = conf
        if dream.algTemp > 0 {
            for r in range {
                let u = (Double(rng(r).bits(Self.positionCounter) >> 11) + 0.5) * 0x1.0p-53
                key[r] = conf[r] / dream.algTemp - Foundation.log(-Foundation.log(u))
            }
        }
        let order = range.sorted { key[$0] != key[$1] ? key[$0] > key[$1] : rowPos[$0] < rowPos[$1] }
        return Array(order.prefix(count))
    }

    /// x0 and the algorithm's confidence for each of the R rows of `logits` ([R, vocab]), in parallel.
    func predict(logits: UnsafePointer<Float>, rows R: Int, rng: (Int) -> CounterRNG) -> (x0: [Int32], conf: [Double]) {
        let V = config.vocab
        var x0 = [Int32](repeating: 0, count: R), conf = [Double](repeating: 0, count: R)
        x0.withUnsafeMutableBufferPointer { xp in
            conf.withUnsafeMutableBufferPointer { cp in
                let xb = xp.baseAddress!, cb = cp.baseAddress!
                Parallel.chunks(R, minChunk: max(1, 4096 / max(1, V / 64))) { lo, hi in
                    let zf = UnsafeMutablePointer<Float>.allocate(capacity: V)
                    let p = UnsafeMutablePointer<Double>.allocate(capacity: V)
                    defer { zf.deallocate(); p.deallocate() }
                    for r in lo..<hi {
                        let (tok, c) = Self.sampleToken(logits + r * V, vocab: V, temperature: options.temperature,
                                                        settings: dream, rng: rng(r), zf: zf, p: p)
                        xb[r] = Int32(tok)
                        cb[r] = c.isNaN ? -.infinity : c
                    }
                }
            }
        }
        return (x0, conf)
    }

    /// Dream's sample_tokens on one row `z`: logits / temperature (> 0), top_p then top_k filtering
    /// (removed entries −∞), p = softmax in float64; the token is the argmax (temperature 0) or a Gumbel-max
    /// draw (`Sampler.choose`), the confidence per `settings.alg`. `zf`, `p`: scratch of `vocab` entries.
    static func sampleToken(_ z: UnsafePointer<Float>, vocab V: Int, temperature: Double, settings: DreamSettings,
                            rng: CounterRNG, zf: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Double>) -> (Int, Double) {
        let inv = temperature > 0 ? 1 / temperature : 1
        for v in 0..<V { p[v] = Double(z[v]) * inv }
        filter(p, count: V, topP: settings.topP, topK: settings.topK)
        for v in 0..<V { zf[v] = p[v] == -.infinity ? -.infinity : z[v] }
        let tok = Sampler.choose(zf, count: V, temperature: temperature, rng: rng)
        softmax(p, count: V)
        switch settings.alg {
        case .origin, .maskgitPlus:
            return (tok, p[tok])
        case .topkMargin:
            var top1 = -Double.infinity, top2 = -Double.infinity
            for v in 0..<V {
                if p[v] > top1 { top2 = top1; top1 = p[v] } else if p[v] > top2 { top2 = p[v] }
            }
            return (tok, top1 - (V > 1 ? top2 : 0))
        case .entropy:
            var s = 0.0
            for v in 0..<V { s += p[v] * Foundation.log(p[v] + 1e-10) }
            return (tok, s)
        }
    }

    /// top_p_logits (keep the most probable entries until their cumulative probability exceeds topP, the
    /// first always) then top_k_logits (drop entries below the k-th largest), removed entries set to −∞.
    static func filter(_ z: UnsafeMutablePointer<Double>, count V: Int, topP: Double?, topK: Int?) {
        if let topP, topP < 1 {
            let order = (0..<V).sorted { z[$0] != z[$1] ? z[$0] > z[$1] : $0 < $1 }
            let m = z[order[0]]
            var sum = 0.0
            for v in 0..<V { sum += Foundation.exp(z[v] - m) }
            var cum = 0.0
            for (rank, v) in order.enumerated() {
                let removed = rank > 0 && cum > topP
                cum += Foundation.exp(z[v] - m) / sum
                if removed { z[v] = -.infinity }
            }
        }
        if let topK, topK < V {
            var sorted = (0..<V).map { z[$0] }
            sorted.sort(by: >)
            let kth = sorted[topK - 1]
            for v in 0..<V where z[v] < kth { z[v] = -.infinity }
        }
    }

    /// softmax in place (float64).
    static func softmax(_ z: UnsafeMutablePointer<Double>, count V: Int) {
        var m = -Double.infinity
        for v in 0..<V { m = max(m, z[v]) }
        var sum = 0.0
        for v in 0..<V { z[v] = Foundation.exp(z[v] - m); sum += z[v] }
        for v in 0..<V { z[v] /= sum }
    }
}
