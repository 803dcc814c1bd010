import Foundation

/// Everything a training run is made of. Resolved from (lowest first) the defaults, a config file, and
/// command-line flags; written to RUN_DIR/config.json so a run can be read, compared and repeated.
/// Each field's key, flag, help and checks are declared in `RunSettings.all`; its default is here.
public struct RunConfig: Equatable, Sendable {
    /// A model folder (Hugging Face LLaDA layout) or a preset name (trained from scratch).
    public var model = "small"
    /// A JSONL file or a built-in task name (countdown, sudoku).
    public var data = "countdown"
    /// Examples generated for a built-in task.
    public var taskExamples = 4000
    public var objective = ObjectiveOptions(kind: .gift)
    public var microBatch = 8
    public var gradAccum = 1
    /// Optimizer steps; 0 means `epochs` full passes over the training split.
    public var maxSteps = 0
    public var epochs = 5
    public var lr = 2e-5
    public var warmupRatio = 0.1
    public var schedule = LRSchedule.cosine
    /// The cosine schedule's floor as a fraction of lr (HF's cosine_with_min_lr, min_lr_rate); 0: decay to 0.
    public var minLRRatio = 0.0
    public var weightDecay = 0.0
    public var beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8
    public var maxGradNorm = 1.0
    public var maxLength = 2048
    public var seed: UInt64 = 42
    public var out = ""
    /// Validation loss every N optimizer steps (0: only at the end).
    public var evalEvery = 0
    public var validationFraction = 0.05
    /// EOS tokens appended to every sequence beyond its response (`Batching.pad`'s minEOS): 1 teaches
    /// even the batch's longest response to end with EOS (built-in tasks carry none themselves).
    public var extraEOS = 1
    public var skipBadLines = false
    /// How JSONL records become conversations (`DataFormat`); text goes through the model folder's
    /// tokenizer.json and chat template.
    public var dataFormat = DataFormat.auto
    /// Global batches of examples of similar length (`EpochOrder(lengths:...)`): less padding.
    public var groupByLength = false
    /// Whether the EOS padding is trained (`PadLoss`).
    public var padLoss = PadLoss.on
    /// Consecutive non-finite steps (skipped with a warning) before the run stops.
    public var maxBadSteps = 3
    /// Seed of a preset model's initial weights.
    public var initSeed: UInt64 = 0
    /// ZeRO stage: 0 every rank holds everything (bucketed allreduce); 1 the AdamW moments sharded
    /// (reduce-scatter, update a shard, allgather); 2 also the gradients (each bucket reduce-scattered
    /// while backward runs, only this rank's shard kept); 3 also the parameters (each block all-gathered
    /// before it runs and freed after, the next one prefetched). All train the same model.
    public var zero = 0
    public var gradReduceDtype = GradReduceDtype.fp32
    /// Size of the gradient allreduce buckets, MiB.
    public var bucketMB = 4.0
    /// Task accuracy at every evaluation ("" for none): a built-in task's test split, sampled with the
    /// LLaDA sampler (one seed during training, three at the end).
    public var evalTask = ""
    public var evalN = 64
    public var gemm = GemmBackendChoice.auto
    /// Precision of matmul inputs: fp32, or bf16 (fp32 accumulation; weights, gradients and optimizer
    /// state stay fp32).
    public var precision = Precision.fp32
    /// LoRA adapters on a frozen base (r 0: full fine-tuning of every parameter).
    public var lora = LoRAConfig()
    /// A PEFT adapter folder to continue training from ("" for none); its config sets the LoRA fields.
    public var adapter = ""
    public var recompute = Recompute.none
    public var baseDtype = BaseDtype.fp32
    /// s1K records (`--data-format s1k`): d1's system prompt and tags unless set.
    public var s1kSystemPrompt = S1KLayout.d1SystemPrompt, s1kReasoningTag = "reasoning", s1kAnswerTag = "answer"
    /// The bytes a rank may use ("8G", "512M", a byte count; "" for the node's own report): `gift train`
    /// refuses, before loading the model, a memory plan above it (`MemoryFit`).
    public var memoryLimit = ""
    /// One of the paper's benchmarks at every evaluation ("" for none; `TrainBenchmark`): its test file,
    /// and the generation length (d1's block 32 and steps gen/2, batches of 8, padding masked).
    public var evalBenchmark = "", evalData = ""
    public var evalGenLength = 256
    /// TensorBoard event files beside metrics.jsonl (`RunReporter`).
    public var reportTo = ReportTo.none
    public var s1kLayout: S1KLayout { S1KLayout(systemPrompt: s1kSystemPrompt, reasoningTag: s1kReasoningTag, answerTag: s1kAnswerTag) }

    public init() {}

    /// `gift train` with no config, model or data: a small model from scratch on Sudoku (4×4) with GIFT,
    /// about two minutes on 2 cores, ending well above the untrained model's accuracy. Chosen by
    /// measurement: on Countdown the same budget leaves accuracy at 0.000 (the model learns the format,
    /// not the arithmetic); on Sudoku 6 epochs of 4000 puzzles reach 0.865 ± 0.002 (64 problems × 3 seeds)
    /// against the untrained 0.000, 2 epochs already 0.61. Every other run starts from the paper's
    /// full-parameter recipe (AdamW 0.9/0.999/1e-8, lr 2e-5, cosine, warmup 0.1, max grad norm 1.0).
    public static var quickstart: RunConfig {
        var c = RunConfig()
        c.model = "mini"; c.data = "sudoku"; c.taskExamples = 4000
        c.microBatch = 32; c.epochs = 6; c.lr = 2e-3; c.warmupRatio = 0.05; c.weightDecay = 0.01
        c.maxLength = 40; c.evalEvery = 50; c.evalTask = "sudoku"; c.evalN = 64
        return c
    }

    // MARK: the file form (flat, snake_case keys: `RunSettings.all`)

    public var json: [String: Any] { Dictionary(uniqueKeysWithValues: RunSettings.all.map { ($0.key, $0.read(self)) }) }

    public func jsonData() -> Data {
        try! JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }

    /// Applies a config file's fields; an unknown key or a wrong type is an error naming file and key.
    public mutating func apply(file path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "\(path): cannot read the config file (\(error.localizedDescription))")
        }
        let root: StrictJSON
        do { root = try StrictJSON.parse([UInt8](data)) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(path): not valid JSON at byte \(e.offset): \(e.message)")
        }
        guard case .object(let o) = root else {
            throw GiftError(.format, "\(path): a config file is one JSON object of fields (see `gift help train`)")
        }
        for key in o.keys.sorted() { try set(key, o[key]!, source: path) }
    }

    /// Applies `gift train`'s run-setting flags, in command-line order.
    public mutating func apply(_ flags: RunSettingFlags) throws {
        for (setting, value) in flags.given { try set(setting.key, value, source: setting.flag) }
    }

    /// Sets one field from a String, Int, Double or Bool.
    public mutating func set(_ key: String, _ v: Any, source: String) throws {
        let j: StrictJSON
        switch v {
        case let b as Bool: j = .bool(b)
        case let i as Int: j = .number(String(i))
        case let d as Double: j = .number(String(d))
        default: j = .string("\(v)")
        }
        try set(key, j, source: source)
    }

    /// Sets one field from a JSON value.
    mutating func set(_ key: String, _ v: StrictJSON, source: String) throws {
        guard let setting = RunSettings.byKey[key] else {
            let keys = RunSettings.all.map(\.key)
            let near = Spelling.closest(to: key, among: keys).map { " (did you mean '\($0)'?)" } ?? ""
            throw GiftError(.config, "\(source): unknown field '\(key)'\(near); known fields: \(keys.sorted().joined(separator: ", "))")
        }
        try setting.write(&self, RunSetting.Value(json: v, key: key, source: source))
    }

    /// Why LoRA has no ZeRO-3 (the message of both refusals).
    public static let loraZeroThree = "--zero 3 shards trained parameters; under LoRA only the adapters train (the base is frozen; keep it in bf16 with --base-dtype bf16): use --zero 1 or 2 to shard the adapters' moments and gradients"

    /// Range checks that a flag or file cannot express.
    public func validate() throws {
        try objective.validate()
        func bad(_ m: String) -> GiftError { GiftError(.config, m) }
        if !(lr > 0) { throw bad("lr must be positive, got \(lr)") }
        if !(warmupRatio >= 0 && warmupRatio < 1) { throw bad("warmup_ratio must be in [0, 1), got \(warmupRatio)") }
        if !(weightDecay >= 0) { throw bad("weight_decay must be >= 0") }
        if !(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1) { throw bad("beta1 and beta2 must be in [0, 1)") }
        if !(adamEps > 0) { throw bad("adam_eps must be positive") }
        if !(maxGradNorm >= 0) { throw bad("max_grad_norm must be >= 0 (0 disables clipping)") }
        if !(minLRRatio >= 0 && minLRRatio <= 1) { throw bad("min_lr_ratio must be in [0, 1], got \(minLRRatio)") }
        if minLRRatio > 0 && schedule != .cosine { throw bad("min_lr_ratio is the cosine schedule's floor; schedule is \(schedule.rawValue)") }
        if !(validationFraction >= 0 && validationFraction < 1) { throw bad("validation_fraction must be in [0, 1)") }
        if maxLength < 2 { throw bad("max_length must be at least 2") }
        if maxSteps == 0 && epochs == 0 { throw bad("set max_steps or epochs (both are 0)") }
        if !evalBenchmark.isEmpty && evalData.isEmpty {
            throw bad("eval_benchmark \(evalBenchmark) needs eval_data: the benchmark's test file (--eval-data FILE)")
        }
        if baseDtype == .bf16 && !lora.enabled && adapter.isEmpty {
            throw bad("base_dtype bf16 stores a frozen base: it needs LoRA (--lora-r or --adapter); a full fine-tune keeps fp32 master weights")
        }
        // refused here, before any model is loaded (the trainer refuses it too)
        if zero == 3 && (lora.enabled || !adapter.isEmpty) { throw bad(Self.loraZeroThree) }
    }
}
