import Foundation

/// One generated answer of an evaluation.
public struct EvalRecord: Equatable, Sendable {
    /// Which repetition (0..<seeds) and its seed (problem set and sampling).
    public var seedIndex: Int
    public var seed: UInt64
    /// The problem's index within its repetition's problem set.
    public var index: Int
    public var prompt: String
    /// The generator's answer (one right answer; the verifier accepts any right one).
    public var reference: String
    /// The decoded response, up to its first EOS.
    public var output: String
    public var score: Double

    public var json: [String: Any] {
        ["seed_index": seedIndex, "seed": seed, "index": index, "prompt": prompt, "reference": reference,
         "output": output, "score": score]
    }
}

/// The outcome of `Evaluate.run`.
public struct EvalResult: Sendable {
    public var task: BuiltinTask
    /// Problems per repetition.
    public var n: Int
    /// The seed of each repetition.
    public var seeds: [UInt64]
    /// Mean score of each repetition.
    public var accuracies: [Double]
    /// Mean over repetitions, and its standard error (see `Evaluate.meanAndStandardError`).
    public var accuracy: Double
    public var stderr: Double
    public var seconds: Double
    public var options: SamplerOptions
    public var records: [EvalRecord]

    /// `{"task": ..., "n": ..., "accuracy": ..., "stderr": ..., "seconds": ..., "seeds": ..., "per_seed": [...]}`
    public var jsonLine: String {
        let o: [String: Any] = ["task": task.name, "n": n, "accuracy": accuracy, "stderr": stderr,
                                "seconds": (seconds * 1000).rounded() / 1000, "seeds": seeds.count,
                                "per_seed": accuracies]
        let d = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        return String(decoding: d, as: UTF8.self)
    }
}

/// Accuracy of a model on a built-in task's test split, with its family's sampler (LLaDA's or Dream's).
///
/// Repetition r (0..<seeds) uses seed S + r (S = `seed`) twice: it draws its own n test problems with
/// `task.generate(n:seed: S + r, split: .test)`, and samples with sampler seed S + r. So repetitions
/// differ in problems even at temperature 0 (where sampling is deterministic), and the standard error
/// covers the problem draw as well as the sampling noise.
public enum Evaluate {
    /// The sampler settings `run` uses by default: gen length = the task's longest answer plus its
    /// EOS (Countdown 11, Sudoku 17: the response length a `gift train` run on the task ends with),
    /// one block, steps = gen length / 2, temperature 0, low-confidence remasking.
    public static func defaultOptions(for task: BuiltinTask) -> SamplerOptions {
        SamplerOptions(genLength: task.maxAnswerLength + 1, blockLength: 32)
    }

    /// Evaluates `params` (a model of `config`) on n problems × `seeds` repetitions of `task`'s test
    /// split. `options` (default `defaultOptions(for:)`) gives the sampler settings; its seed is
    /// replaced by each repetition's. `log` receives one line per repetition.
    /// A Dream model samples with Dream's sampler (`DreamSampler`, settings `dream`, default
    /// `DreamSettings()`; `options`' block length and remasking unused); `dream` on LLaDA is refused.
    /// `fast`: sample with d1's rules on padded batches plus Fast-dLLM's threshold and/or KV cache
    /// (`PaddedSampler`) instead of LLaDA's sampler.
    /// `weightSource`: where the model reads its blocks when `params` is a view that is not resident
    /// (ZeRO-3 during training: collective, so every rank evaluates the same problems).
    public static func run(config: ModelConfig, params: FloatBuffer, task: BuiltinTask, n: Int = 256,
                           seeds: Int = 3, seed: UInt64 = 0, options: SamplerOptions? = nil, fast: FastDecoding? = nil,
                           weightSource: BlockWeightSource? = nil, dream: DreamSettings? = nil,
                           log: ((String) -> Void)? = nil) throws -> EvalResult {
        guard n >= 1 else { throw GiftError(.usage, "n must be at least 1, got \(n)") }
        guard seeds >= 1 else { throw GiftError(.usage, "seeds must be at least 1, got \(seeds)") }
        let tok = try CharTokenizer(vocabSize: config.vocab, eosId: config.eosTokenId, maskId: config.maskTokenId)
        let base = options ?? defaultOptions(for: task)
        try base.validate()
        let start = Date()
        // every repetition's problems in one sampler call (bigger batches), each with its own seed
        var pairs: [[(prompt: String, answer: String)]] = [], seedList: [UInt64] = []
        var prompts: [[Int32]] = [], keys: [Int] = [], promptSeeds: [UInt64] = []
        for r in 0..<seeds {
            let s = seed &+ UInt64(r)
            let p = task.generate(n: n, seed: s, split: .test)
            guard !p.isEmpty else { throw GiftError(.data, "\(task.name): no test problems for seed \(s)") }
            pairs.append(p); seedList.append(s)
            for (i, q) in p.enumerated() {
                prompts.append(try tok.encode(q.prompt)); keys.append(i); promptSeeds.append(s)
            }
        }
        var opt = base
        opt.seed = seed
        let outs: [[Int32]]
        if config.family == .dream {
            guard fast == nil else { throw GiftError(.usage, "Fast-dLLM's threshold and prefix cache are LLaDA's; Dream's sampler has neither") }
            let weights: EvalWeights = weightSource.map { .gathered(params, $0) } ?? .fp32(params)
            outs = try DreamSampler.laned(config: config, weights: weights, options: opt, dream: dream ?? DreamSettings(),
                                          maxPromptLength: prompts.map(\.count).max()!)
                .generateAll(prompts, keys: keys, seeds: promptSeeds)
        } else if dream != nil {
            throw GiftError(.usage, "Dream's sampler settings given for a LLaDA model")
        } else if let fast {
            precondition(weightSource == nil, "the padded sampler reads resident weights")
            outs = try fast.sampler(config: config, params: params, options: opt, maxPromptLength: prompts.map(\.count).max()!)
                .generateAll(prompts, keys: keys)
        } else {
            let sampler = try Sampler(config: config, params: params, options: opt)
            sampler.weightSource = weightSource
            outs = try sampler.generate(prompts, keys: keys, seeds: promptSeeds)
        }
        var records: [EvalRecord] = [], accs: [Double] = []
        var k = 0
        for (r, p) in pairs.enumerated() {
            var sum = 0.0
            for (i, q) in p.enumerated() {
                let text = tok.decode(outs[k]); k += 1
                let sc = task.score(prompt: q.prompt, output: text)
                sum += sc
                records.append(EvalRecord(seedIndex: r, seed: seedList[r], index: i, prompt: q.prompt, reference: q.answer,
                                          output: text, score: sc))
            }
            let acc = sum / Double(p.count)
            accs.append(acc)
            log?(String(format: "seed %llu: accuracy %.4f on %d problems", seedList[r], acc, p.count))
        }
        let (mean, se) = seeds >= 2 ? meanAndStandardError(accs)
            : meanAndStandardError(records.map(\.score))
        return EvalResult(task: task, n: n, seeds: seedList, accuracies: accs, accuracy: mean, stderr: se,
                          seconds: Date().timeIntervalSince(start), options: base, records: records)
    }

    /// Mean and standard error of the mean (sample standard deviation / √count; 0 for one value).
    /// `run` applies it to the per-repetition accuracies, or, with a single repetition, to its
    /// per-problem scores.
    public static func meanAndStandardError(_ xs: [Double]) -> (mean: Double, stderr: Double) {
        guard !xs.isEmpty else { return (0, 0) }
        let m = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return (m, 0) }
        let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
        return (m, (v / Double(xs.count)).squareRoot())
    }

    /// Writes one JSON object per record (keys sorted), atomically.
    public static func writeJSONL(_ records: [EvalRecord], to path: String) throws {
        var data = Data()
        for r in records {
            data.append(try JSONSerialization.data(withJSONObject: r.json, options: [.sortedKeys]))
            data.append(0x0A)
        }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw GiftError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// A model folder, or a training run folder holding one in `model/`: whenever DIR/model/config.json
    /// exists, DIR/model (a run folder's own config.json is the run config, not a model's).
    public static func modelDirectory(_ dir: String) -> String {
        let sub = (dir as NSString).appendingPathComponent("model")
        if FileManager.default.fileExists(atPath: (sub as NSString).appendingPathComponent(ModelFolder.configFile)) {
            return sub
        }
        return dir
    }
}

/// Fast-dLLM's switches (`--threshold`, `--cache prefix|dual`): sampling then follows d1's rules on left-padded
/// batches (`PaddedSampler`, padding masked out of attention) with them on top.
public struct FastDecoding: Sendable {
    public var threshold: Double?
    public var cache: CacheMode
    public init(threshold: Double?, cache: CacheMode) { self.threshold = threshold; self.cache = cache }

    /// d1's sampler with these switches over `options.lanes` lanes (`SamplingLanes`), padding masked.
    public func sampler(config: ModelConfig, params: FloatBuffer, options: SamplerOptions, maxPromptLength: Int) throws -> BatchSampler {
        try sampler(config: config, weights: .fp32(params), options: options, padId: Int32(config.padTokenId), attendPadding: false,
                    maxPromptLength: maxPromptLength)
    }

    /// d1's sampler with these switches over `options.lanes` lanes: one sampler, or one per lane.
    public func sampler(config: ModelConfig, weights: EvalWeights, options: SamplerOptions, padId: Int32, attendPadding: Bool,
                        maxPromptLength: Int) throws -> BatchSampler {
        try SamplingLanes.sampler(options: options, weights: weights) { o in
            let s = try PaddedSampler(config: config, weights: weights, options: o, padId: padId, attendPadding: attendPadding,
                                      maxPromptLength: maxPromptLength)
            s.threshold = threshold; s.cache = cache
            return s
        }
    }
}
