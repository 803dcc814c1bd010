import Foundation

/// Everything a training run is made of. Resolved from (lowest first) the defaults, a config file, and
/// command-line flags; written to RUN_DIR/config.json so a run can be read, compared and repeated.
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
    /// Dtype of gradients on the wire: fp32, or bf16 (half the bytes; the owners sum in fp32).
    public var gradReduceDtype = "fp32"
    /// Size of the gradient allreduce buckets, MiB.
    public var bucketMB = 4.0
    /// Task accuracy at every evaluation ("" for none): a built-in task's test split, sampled with the
    /// LLaDA sampler (one seed during training, three at the end).
    public var evalTask = ""
    public var evalN = 64
    /// Matrix-multiply backend: auto (see `Gemm.configure`: OpenBLAS for fp32, oneDNN for bf16 with AMX), openblas or onednn.
    public var gemm = "auto"
    /// Precision of matmul inputs: fp32, or bf16 (fp32 accumulation; weights, gradients and optimizer
    /// state stay fp32).
    public var precision = Precision.fp32
    /// LoRA adapters on a frozen base (r 0: full fine-tuning of every parameter).
    public var lora = LoRAConfig()
    /// A PEFT adapter folder to continue training from ("" for none); its config sets the LoRA fields.
    public var adapter = ""
    /// Activation recomputation: "none" (keep every block's activations for backward) or "blocks" (keep
    /// each block's input only; backward recomputes the block: one more block forward per block, activation
    /// memory of one block instead of all). Same bits either way.
    public var recompute = "none"
    /// Storage of a LoRA run's frozen base: fp32, or bf16 (`BF16BaseStore`: half the memory of the blocks,
    /// one block decoded at a time; the weights are then the bf16-rounded ones).
    public var baseDtype = "fp32"
    /// s1K records (`--data-format s1k`): d1's system prompt and tags unless set.
    public var s1kSystemPrompt = S1KLayout.d1SystemPrompt, s1kReasoningTag = "reasoning", s1kAnswerTag = "answer"
    /// The bytes a rank may use ("8G", "512M", a byte count; "" for the node's own report): `gift train`
    /// refuses, before loading the model, a memory plan above it (`MemoryFit`).
    public var memoryLimit = ""
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

    // MARK: the file form (flat, snake_case keys)

    public var json: [String: Any] {
        [
            "model": model, "data": data, "task_examples": taskExamples,
            "objective": objective.kind.rawValue, "entropy_power": objective.entropyPower,
            "gift_weight": objective.giftWeight.rawValue, "beta_reference": objective.betaReference.rawValue,
            "time_epsilon": objective.timeEpsilon, "loss_norm": objective.lossNorm.rawValue, "dream_p": objective.dreamP,
            "micro_batch": microBatch, "grad_accum": gradAccum, "max_steps": maxSteps, "epochs": epochs,
            "lr": lr, "warmup_ratio": warmupRatio, "schedule": schedule.rawValue, "weight_decay": weightDecay,
            "beta1": beta1, "beta2": beta2, "adam_eps": adamEps, "max_grad_norm": maxGradNorm,
            "max_length": maxLength, "seed": seed, "out": out, "eval_every": evalEvery,
            "validation_fraction": validationFraction, "skip_bad_lines": skipBadLines, "data_format": dataFormat.rawValue,
            "max_bad_steps": maxBadSteps, "init_seed": initSeed, "zero": zero, "grad_reduce_dtype": gradReduceDtype, "group_by_length": groupByLength, "pad_loss": padLoss.rawValue, "bucket_mb": bucketMB, "eval_task": evalTask, "eval_n": evalN,
            "gemm": gemm, "precision": precision.rawValue,
            "lora_r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
            "lora_targets": lora.targets.map(\.rawValue).joined(separator: ","), "lora_rslora": lora.rslora, "adapter": adapter, "recompute": recompute, "base_dtype": baseDtype,
            "s1k_system_prompt": s1kSystemPrompt, "s1k_reasoning_tag": s1kReasoningTag, "s1k_answer_tag": s1kAnswerTag,
            "extra_eos": extraEOS, "min_lr_ratio": minLRRatio, "memory_limit": memoryLimit,
        ]
    }

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

    /// Sets one field from a command-line value (String, Int, Double or Bool).
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
        func bad(_ want: String) -> GiftError { GiftError(.config, "\(source): field '\(key)' must be \(want), got \(v.brief)") }
        func str() throws -> String { guard case .string(let s) = v else { throw bad("a string") }; return s }
        func num() throws -> Double {
            guard case .number(let t) = v, let d = Double(t), d.isFinite else { throw bad("a number") }
            return d
        }
        func int() throws -> Int { guard let i = v.intValue else { throw bad("an integer") }; return i }
        func nonneg() throws -> Int { let i = try int(); if i < 0 { throw bad("a non-negative integer") }; return i }
        func pos() throws -> Int { let i = try int(); if i <= 0 { throw bad("a positive integer") }; return i }
        func choice<T: RawRepresentable>(_: T.Type, _ all: [T]) throws -> T where T.RawValue == String {
            guard let c = T(rawValue: try str()) else { throw bad("one of " + all.map(\.rawValue).joined(separator: ", ")) }
            return c
        }
        switch key {
        case "model": model = try str()
        case "data": data = try str()
        case "task_examples": taskExamples = try pos()
        case "objective": objective.kind = try choice(ObjectiveKind.self, ObjectiveKind.allCases)
        case "entropy_power": objective.entropyPower = try num()
        case "gift_weight": objective.giftWeight = try choice(GiftWeight.self, GiftWeight.allCases)
        case "beta_reference": objective.betaReference = try choice(BetaReference.self, BetaReference.allCases)
        case "time_epsilon": objective.timeEpsilon = try num()
        case "loss_norm": objective.lossNorm = try choice(LossNorm.self, LossNorm.allCases)
        case "dream_p": objective.dreamP = try num()
        case "micro_batch": microBatch = try pos()
        case "grad_accum": gradAccum = try pos()
        case "max_steps": maxSteps = try nonneg()
        case "epochs": epochs = try nonneg()
        case "lr": lr = try num()
        case "warmup_ratio": warmupRatio = try num()
        case "schedule": schedule = try choice(LRSchedule.self, LRSchedule.allCases)
        case "min_lr_ratio": minLRRatio = try num()
        case "extra_eos": extraEOS = try nonneg(); if extraEOS > 1 { throw bad("0 or 1") }
        case "weight_decay": weightDecay = try num()
        case "beta1": beta1 = try num()
        case "beta2": beta2 = try num()
        case "adam_eps": adamEps = try num()
        case "max_grad_norm": maxGradNorm = try num()
        case "max_length": maxLength = try pos()
        case "seed": seed = UInt64(try nonneg())
        case "out": out = try str()
        case "eval_every": evalEvery = try nonneg()
        case "validation_fraction": validationFraction = try num()
        case "skip_bad_lines": guard case .bool(let b) = v else { throw bad("true or false") }; skipBadLines = b
        case "data_format": dataFormat = try choice(DataFormat.self, DataFormat.allCases)
        case "pad_loss": padLoss = try choice(PadLoss.self, PadLoss.allCases)
        case "max_bad_steps": maxBadSteps = try pos()
        case "init_seed": initSeed = UInt64(try nonneg())
        case "zero": zero = try nonneg(); if zero > 3 { throw bad("0, 1, 2 or 3") }
        case "grad_reduce_dtype": gradReduceDtype = try str(); if !["fp32", "bf16"].contains(gradReduceDtype) { throw bad("fp32 or bf16") }
        case "group_by_length": guard case .bool(let b) = v else { throw bad("true or false") }; groupByLength = b
        case "bucket_mb": bucketMB = try num(); if !(bucketMB > 0) { throw bad("a positive number") }
        case "eval_task":
            evalTask = try str()
            if !evalTask.isEmpty && (try? BuiltinTask(name: evalTask)) == nil {
                throw bad("a built-in task (\(BuiltinTask.names.joined(separator: ", "))) or \"\"")
            }
        case "eval_n": evalN = try pos()
        case "gemm":
            gemm = try str()
            if !["auto", "openblas", "onednn"].contains(gemm) { throw bad("auto, openblas or onednn") }
        case "precision":
            guard let p = Precision(rawValue: try str()) else { throw bad("fp32 or bf16") }
            precision = p
        case "lora_r": lora.r = try nonneg()
        case "lora_alpha": lora.alpha = try num(); if !(lora.alpha > 0) { throw bad("a positive number") }
        case "lora_dropout": lora.dropout = try num(); if !(lora.dropout >= 0 && lora.dropout < 1) { throw bad("a number in [0, 1)") }
        case "lora_targets": lora.targets = try LoRAConfig.parseTargets(try str(), source: "\(source): field 'lora_targets'")
        case "lora_rslora": guard case .bool(let b) = v else { throw bad("true or false") }; lora.rslora = b
        case "adapter": adapter = try str()
        case "s1k_system_prompt": s1kSystemPrompt = try str()
        case "s1k_reasoning_tag": s1kReasoningTag = try str(); if s1kReasoningTag.isEmpty { throw bad("a tag name") }
        case "s1k_answer_tag": s1kAnswerTag = try str(); if s1kAnswerTag.isEmpty { throw bad("a tag name") }
        case "base_dtype": baseDtype = try str(); if !["fp32", "bf16"].contains(baseDtype) { throw bad("fp32 or bf16") }
        case "memory_limit":
            if case .number(let t) = v { memoryLimit = t } else { memoryLimit = try str() }
            if !memoryLimit.isEmpty && MemoryFit.parseBytes(memoryLimit) == nil { throw bad("a size such as 8G, 512M or a byte count") }
        case "recompute": recompute = try str(); if !["none", "blocks"].contains(recompute) { throw bad("none or blocks") }
        default:
            throw GiftError(.config, "\(source): unknown field '\(key)'; known fields: \(json.keys.sorted().joined(separator: ", "))")
        }
    }

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
        if baseDtype == "bf16" && !lora.enabled && adapter.isEmpty {
            throw bad("base_dtype bf16 stores a frozen base: it needs LoRA (--lora-r or --adapter); a full fine-tune keeps fp32 master weights")
        }
    }
}
