import Foundation

/// One training sequence of a batch: prompt + response (EOS-padded to the batch length).
public struct TrainSequence: Sendable {
    public var tokens: [Int32]
    public var promptLength: Int
    /// Global index of the example: keys its random draws, whatever the ranks and micro-batches.
    public var exampleIndex: Int
    /// Fixed time and mask (inspect, tests); drawn from (seed, step, exampleIndex) when nil.
    public var fixedT: Double?
    public var fixedMask: [Bool]?
    /// gift-ref: betas of the response positions from the frozen initial weights.
    public var cachedBetas: [Float]?

    public init(tokens: [Int32], promptLength: Int, exampleIndex: Int = 0, fixedT: Double? = nil,
                fixedMask: [Bool]? = nil, cachedBetas: [Float]? = nil) {
        self.tokens = tokens; self.promptLength = promptLength; self.exampleIndex = exampleIndex
        self.fixedT = fixedT; self.fixedMask = fixedMask; self.cachedBetas = cachedBetas
    }
    public var responseLength: Int { tokens.count - promptLength }
    /// `--pad-loss off`: tokens[contentLength...] is padding, never masked, in no loss and no normaliser
    /// (still visible to attention). nil: padding is response (LLaDA's convention).
    public var contentLength: Int? = nil
    /// The response positions that are masked and trained: all of them, or without the padding.
    public var trainedResponseLength: Int { (contentLength ?? tokens.count) - promptLength }
}

/// The denominators of objective.md's normalisation, counted over the whole global batch
/// (all ranks, all accumulation micro-batches).
public struct LossNormalizer: Sendable {
    public var responseTokens: Int
    public var sequences: Int
    public init(responseTokens: Int, sequences: Int) { self.responseTokens = responseTokens; self.sequences = sequences }
    public static func of(_ seqs: [TrainSequence]) -> LossNormalizer {
        LossNormalizer(responseTokens: seqs.reduce(0) { $0 + $1.trainedResponseLength }, sequences: seqs.count)
    }
}

/// Sums a step reports (add them over micro-batches and ranks, then read the means).
public struct StepStats: Sendable {
    public var loss = 0.0
    public var maskedTokens = 0
    public var responseTokens = 0
    public var weightSum = 0.0
    public var betaSum = 0.0
    public var betaCount = 0
    public var nonFinite = 0
    public init() {}
    public var maskRate: Double { responseTokens > 0 ? Double(maskedTokens) / Double(responseTokens) : 0 }
    public var meanWeight: Double { maskedTokens > 0 ? weightSum / Double(maskedTokens) : 0 }
    public var meanBeta: Double { betaCount > 0 ? betaSum / Double(betaCount) : 0 }
    public mutating func add(_ o: StepStats) {
        loss += o.loss; maskedTokens += o.maskedTokens; responseTokens += o.responseTokens
        weightSum += o.weightSum; betaSum += o.betaSum; betaCount += o.betaCount; nonFinite += o.nonFinite
    }
}

/// What pass 1 and the draws decided for a batch, per position ([batch·L]).
public struct PreparedBatch: Sendable {
    public var batch: Int, seqLen: Int
    public var noisy: [Int32]
    public var masked: [Bool]
    public var weights: [Double]
    public var betas: [Double]
    public var times: [Double]
    /// Response positions whose beta or importance was not finite (the step must not be trained on).
    public var nonFinite = 0
}

/// Runs an objective on a batch: pass 1 (betas, no activations kept), masks and weights, pass 2 forward,
/// the weighted cross-entropy at masked positions only, and backward into the flat gradient.
public final class ObjectiveRunner: @unchecked Sendable {
    public let model: Transformer
    public var options: ObjectiveOptions
    public let train: Activations
    public let infer: Activations
    var tmp: [Float]
    /// Where the betas come from; nil: the objective's own (`ObjectiveKind.betaSource`). `.cached` runs any
    /// beta objective on betas computed elsewhere and carried by the sequences, as gift-ref runs gift's.
    public var betaSource: BetaSource?
    /// LoRA (`attachLoRA`): adapters on a frozen base; `run`'s `grads` are then the adapters' gradients.
    public private(set) var loraTrain: LoRARun?, loraInfer: LoRARun?

    /// From now on every pass runs the base at `params` plus these adapters (pass 1 and validation
    /// without dropout), and backward computes adapter gradients only.
    public func attachLoRA(_ layout: LoRALayout, weights: UnsafePointer<Float>) {
        loraTrain = LoRARun(layout: layout, weights: weights, capacityTokens: train.capacityTokens, training: true)
        loraInfer = LoRARun(layout: layout, weights: weights, capacityTokens: infer.capacityTokens, training: false)
    }

    /// `recompute`: keep only each block's input for backward and recompute the rest (`--recompute blocks`).
    public init(model: Transformer, options: ObjectiveOptions, capacityTokens: Int, maxSeqLen: Int, recompute: Bool = false) {
        self.model = model; self.options = options
        train = Activations(config: model.config, capacityTokens: capacityTokens, maxSeqLen: maxSeqLen, training: true,
                            recompute: recompute)
        infer = Activations(config: model.config, capacityTokens: capacityTokens, maxSeqLen: maxSeqLen, training: false)
        tmp = [Float](repeating: 0, count: model.config.vocab + 16)
    }

    static func shape(_ seqs: [TrainSequence]) -> (Int, Int) {
        let L = seqs.first?.tokens.count ?? 0
        precondition(seqs.allSatisfy { $0.tokens.count == L }, "sequences of a batch must share one length")
        return (seqs.count, L)
    }

    /// Pass 1: betas at every response position ([batch·L], 0 on prompts): entropy^gamma of the model's
    /// prediction with the whole response masked, or for `nll` the NLL of the true token. No gradient.
    public func pass1Betas(_ params: UnsafePointer<Float>, _ seqs: [TrainSequence]) -> [Double] {
        let (B, L) = Self.shape(seqs)
        let M = Int32(model.config.maskTokenId), V = model.config.vocab
        var input = [Int32](), rows = [Int32]()
        input.reserveCapacity(B * L)
        for (b, s) in seqs.enumerated() {
            // --pad-loss off: padding is context, as in pass 2 (never masked)
            let end = s.promptLength + s.trainedResponseLength
            for i in 0..<L {
                let resp = i >= s.promptLength && i < end
                input.append(resp ? M : s.tokens[i])
                if resp { rows.append(Int32(b * L + i)) }
            }
        }
        var betas = [Double](repeating: 0, count: B * L)
        if rows.isEmpty { model.skipForward(head: true); return betas }
        // only the response rows' final states are read: the trimmed forward computes little else
        Profiler.measure("  pass 1 forward") {
            model.forwardPass1(params, tokens: input, batch: B, seqLen: L, outputRows: rows, acts: infer, lora: loraInfer)
        }
        let logits = Profiler.measure("  pass 1 head") { model.head(params, rows: rows, acts: infer) }
        let gamma = options.gamma, nll = options.kind == .nll, stride = V + 16
        if tmp.count < Parallel.workers * stride { tmp = [Float](repeating: 0, count: Parallel.workers * stride) }
        // rows are independent: split them over the workers, each with its own scratch row
        Profiler.measure("  pass 1 entropy") {
        tmp.withUnsafeMutableBufferPointer { tb in betas.withUnsafeMutableBufferPointer { out in
            let R = rows.count, parts = min(R, Parallel.workers)
            Parallel.tasks(parts) { part, worker in
                let scratch = tb.baseAddress! + worker * stride
                for r in (R * part / parts)..<(R * (part + 1) / parts) {
                    let pos = Int(rows[r]), z = logits + r * V
                    let v: Float
                    if nll {
                        let target = seqs[pos / L].tokens[pos % L]
                        v = Softmax.crossEntropy(z, count: V, target: Int(target), grad: nil, scale: 0, tmp: scratch)
                    } else {
                        v = Softmax.entropy(z, count: V, tmp: scratch)
                    }
                    out[pos] = Foundation.pow(max(0, Double(v)), gamma)
                }
            }
        } }
        }
        return betas
    }

    /// Masks, weights and noisy inputs for a batch. Draws are keyed by (seed, step, exampleIndex).
    public func prepare(_ params: UnsafePointer<Float>, _ seqs: [TrainSequence], seed: UInt64, step: Int) -> PreparedBatch {
        let (B, L) = Self.shape(seqs)
        let o = options, cfg = model.config
        var betas = [Double](repeating: 0, count: B * L)
        switch o.kind.usesBetas ? (betaSource ?? o.kind.betaSource) : nil {
        case .pass1?:
            betas = Profiler.measure("pass 1 (betas)") { pass1Betas(params, seqs) }
        case .cached?:
            for (b, s) in seqs.enumerated() {
                guard let cb = s.cachedBetas, cb.count == s.responseLength else {
                    preconditionFailure("\(o.kind.rawValue) needs cached betas for example \(s.exampleIndex)")
                }
                for i in 0..<s.responseLength { betas[b * L + s.promptLength + i] = Double(cb[i]) }
            }
        case nil:
            break
        }
        var p = PreparedBatch(batch: B, seqLen: L, noisy: [], masked: Array(repeating: false, count: B * L),
                              weights: Array(repeating: 0, count: B * L), betas: betas, times: [])
        p.noisy.reserveCapacity(B * L)
        for (b, s) in seqs.enumerated() {
            let rng = CounterRNG(seed, UInt64(step), UInt64(s.exampleIndex))
            let t = s.fixedT ?? Masking.time(u: rng.uniform(0), eps: o.timeEpsilon)
            p.times.append(t)
            let P = s.promptLength, n = s.trainedResponseLength
            var r = [Double](repeating: 1, count: n)
            if o.kind.usesBetas {
                let resp = Array(betas[(b * L + P)..<(b * L + P + n)])
                let include = (0..<n).map { i in
                    o.betaReference == .response ||
                        (Int(s.tokens[P + i]) != cfg.eosTokenId && Int(s.tokens[P + i]) != cfg.padTokenId)
                }
                r = Masking.importance(betas: resp, include: include)
                p.nonFinite += r.filter { !$0.isFinite }.count
            }
            var maskedRow = [Bool](repeating: false, count: L)
            for i in 0..<n {
                if let fm = s.fixedMask {
                    maskedRow[P + i] = fm[P + i]
                } else {
                    maskedRow[P + i] = rng.uniform(UInt64(1 + P + i)) < Masking.maskProbability(o, r: r[i], t: t)
                }
            }
            let dream = o.kind == .dream ? Masking.dreamWeights(masked: maskedRow, p: o.dreamP) : []
            for i in 0..<L {
                let pos = b * L + i
                p.masked[pos] = maskedRow[i]
                p.noisy.append(maskedRow[i] ? Int32(cfg.maskTokenId) : s.tokens[i])
                if maskedRow[i] {
                    p.weights[pos] = o.kind == .dream ? dream[i] : Masking.weight(o, r: r[i - P], t: t)
                }
            }
        }
        return p
    }

    /// Pass 2 and (when `grads` is given) backward. Adds into `grads`; returns this batch's share of the
    /// normalised loss and statistics. `captureLogits` ([batch·L·V]) asks for logits at every position.
    @discardableResult
    public func run(_ params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>?, _ seqs: [TrainSequence],
                    seed: UInt64, step: Int, normalizer: LossNormalizer,
                    captureLogits: UnsafeMutablePointer<Float>? = nil,
                    ready: ((Int) -> Void)? = nil) -> (StepStats, PreparedBatch) {
        // bf16: one bf16 copy of the weights for both passes and backward (a no-op in fp32 or when a
        // caller already made one for the whole step)
        // (not over a bf16 base's reserved range: the mirror would decode it whole)
        Gemm.withWeightMirror(params, count: model.weightSource == nil ? model.layout.count : 0) {
            runPasses(params, grads: grads, seqs, seed: seed, step: step, normalizer: normalizer,
                      captureLogits: captureLogits, ready: ready)
        }
    }

    private func runPasses(_ params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>?, _ seqs: [TrainSequence],
                           seed: UInt64, step: Int, normalizer: LossNormalizer,
                           captureLogits: UnsafeMutablePointer<Float>?,
                           ready: ((Int) -> Void)?) -> (StepStats, PreparedBatch) {
        let prep = prepare(params, seqs, seed: seed, step: step)
        let B = prep.batch, L = prep.seqLen, V = model.config.vocab
        var st = StepStats()
        st.nonFinite = prep.nonFinite
        for (b, s) in seqs.enumerated() {
            st.responseTokens += s.trainedResponseLength
            if options.kind.usesBetas {
                st.betaCount += s.trainedResponseLength
                for i in s.promptLength..<(s.promptLength + s.trainedResponseLength) { st.betaSum += prep.betas[b * L + i] }
            }
        }
        var rows: [Int32] = []
        for pos in 0..<(B * L) where prep.masked[pos] || captureLogits != nil { rows.append(Int32(pos)) }
        let acts = train
        if let lora = loraTrain {
            // dropout only in a training forward (PEFT's train mode); validation runs without
            lora.draws = grads != nil && lora.layout.lora.dropout > 0
                ? LoRARun.Draws(seed: seed, step: step, examples: seqs.map(\.exampleIndex), seqLen: L) : nil
            lora.grads = grads
        }
        if grads != nil || captureLogits != nil || !rows.isEmpty {
            Profiler.measure("pass 2 forward") {
                model.forward(params, tokens: prep.noisy, batch: B, seqLen: L, acts: acts, lora: loraTrain)
            }
        } else {
            model.skipForward(head: false)   // (the head below still runs, on no rows)
        }
        let logits = Profiler.measure("pass 2 head") { model.head(params, rows: rows, acts: acts) }
        if let captureLogits { captureLogits.update(from: logits, count: B * L * V) }
        var loss = 0.0
        Profiler.measure("loss") { tmp.withUnsafeMutableBufferPointer { tb in
            for (r, pos32) in rows.enumerated() {
                let pos = Int(pos32), z = logits + r * V
                guard prep.masked[pos] else {
                    z.update(repeating: 0, count: V)   // no loss at unmasked positions
                    continue
                }
                let b = pos / L, s = seqs[b]
                let denom = options.lossNorm == .token
                    ? Double(normalizer.responseTokens)
                    : Double(s.trainedResponseLength) * Double(normalizer.sequences)
                let w = prep.weights[pos]
                let scale = w / denom
                let ce = Softmax.crossEntropy(z, count: V, target: Int(s.tokens[pos % L]),
                                              grad: grads != nil ? z : nil, scale: Float(scale), tmp: tb.baseAddress!)
                if !ce.isFinite || !w.isFinite { st.nonFinite += 1 }
                loss += scale * Double(ce)
                st.maskedTokens += 1
                st.weightSum += w
            }
        } }
        // never average a non-finite value in silently: the loss says so and the caller skips the step
        st.loss = st.nonFinite > 0 ? .nan : loss
        if let grads {
            Profiler.measure("backward") {
                model.backward(params, grads: loraTrain == nil ? grads : nil, acts: acts, lora: loraTrain, ready: ready)
            }
        }
        return (st, prep)
    }
}
