import ArgumentParser
import Foundation
import GiftCore

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune (or train from scratch) with GIFT, SFT or an ablation.",
        discussion: """
        With no --config, --model or --data, trains the built-in quickstart: a small model ("mini" preset) \
        from scratch on the 4×4 Sudoku task with GIFT, about two minutes on 2 cores, ending with the test \
        accuracy beside the untrained model's (measured: 0.865 against 0.000).

        Otherwise every setting starts from the paper's full-parameter recipe (AdamW 0.9/0.999/1e-8, lr 2e-5, \
        cosine schedule decaying to 0 (--min-lr-ratio sets a floor), warmup ratio 0.1, max grad norm 1.0), \
        then the --config file (JSON, snake_case keys as written to RUN_DIR/config.json), then the flags.

        Data: a JSONL file ({"prompt": "...", "response": "..."} per line with the character tokenizer, or \
        {"prompt_ids": [...], "response_ids": [...]}; with a model folder holding tokenizer.json, chat records \
        per --data-format), a folder written by `gift data prepare` (memory-mapped; refused when its tokenizer \
        or chat template differs from --model's) or a built-in task (countdown, sudoku). A fraction of it \
        (--validation-fraction, default 0.05, chosen by a hash of --seed) is held out for the validation loss \
        and never trained on; the start log says how many examples that is.

        Padding: every sequence of a batch is padded with EOS to the batch's longest, plus one more EOS than \
        its response carries (--extra-eos 1, the default), so even the longest response learns to end; \
        --extra-eos 0 pads to the longest only, as a plain PyTorch collator does.

        Writes RUN_DIR/config.json (resolved), metrics.jsonl (one line per optimizer step), loss.svg, \
        summary.txt, the trained model (RUN_DIR/model, Hugging Face layout) and checkpoints \
        (RUN_DIR/checkpoints/step-NNNNNNNN: one zstd shard per rank, manifest.json written last, `latest`; \
        every --checkpoint-every steps and at the end). --resume auto continues bit-identically from the \
        newest complete checkpoint, also with another number of ranks (same global batch).

        A run whose final parameters or validation loss are not finite says so first in its summary, saves the \
        last parameters at which a training step was finite as RUN_DIR/model (the final ones stay in the last \
        checkpoint) and exits non-zero.

        Under mpirun each rank takes its slice of every global batch (ranks × micro-batch × grad-accum).

        LoRA (--lora-r R): the base is frozen and only adapters on --lora-targets are trained (PEFT's \
        initialisation and scaling alpha/r; dropout on the adapter input, none in pass 1); RUN_DIR/adapter is a \
        PEFT adapter folder, `gift export RUN --merge --out DIR` writes the merged model, --adapter DIR continues \
        one. --base-dtype bf16 keeps the frozen base in bf16; --recompute blocks trades a block forward for \
        activation memory.

        Examples:
          gift train
          gift train --model runs/base --data train.jsonl --objective gift --epochs 3 --out runs/gift1
          mpirun -np 2 gift train --model mini --data sudoku --micro-batch 16 --min-lr-ratio 0.1 --out runs/sudoku-2ranks
          gift train --config cluster/recipes/s1k-lora.json --model LLaDA-8B-Instruct --data s1k.jsonl
        """)

    @Option(help: "Run config file (JSON).") var config: String?
    @Option(help: "Model folder or preset (tiny, mini, small, base) to train from scratch.") var model: String?
    @Option(help: "JSONL file or built-in task (countdown, sudoku).") var data: String?
    @Option(help: "Examples generated for a built-in task.") var taskExamples: Int?
    @Option(help: "Objective: \(ObjectiveKind.names).") var objective: String?
    @Option(help: "gamma in beta = H^gamma.") var entropyPower: Double?
    @Option(help: "inverse or exact.") var giftWeight: String?
    @Option(help: "response or content.") var betaReference: String?
    @Option(help: "token or sequence.") var lossNorm: String?
    @Option(help: "eps of the time draw.") var timeEpsilon: Double?
    @Option(help: "Sequences per micro-batch (per rank).") var microBatch: Int?
    @Option(help: "Micro-batches accumulated per optimizer step.") var gradAccum: Int?
    @Option(help: "Optimizer steps (0: use --epochs).") var maxSteps: Int?
    @Option(help: "Passes over the training split.") var epochs: Int?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(help: "Fraction of the steps spent warming up.") var warmupRatio: Double?
    @Option(help: "linear, cosine or constant (after warmup).") var schedule: String?
    @Option(help: "AdamW decoupled weight decay (matrices only; never norm weights).") var weightDecay: Double?
    @Option(help: "Global gradient-norm clip (0 disables).") var maxGradNorm: Double?
    @Option(help: "AdamW beta1 (default 0.9).") var beta1: Double?
    @Option(help: "AdamW beta2 (default 0.999).") var beta2: Double?
    @Option(help: "AdamW epsilon (default 1e-8).") var adamEps: Double?
    @Option(help: "Floor of the cosine schedule as a fraction of --lr, as HF's cosine_with_min_lr (min_lr_rate): lr·(r + (1 − r)·½(1 + cos(π·progress))) after warmup (default 0: decay to 0).") var minLrRatio: Double?
    @Option(help: "EOS tokens appended to every sequence beyond its response: 1 (default) teaches even a batch's longest response to end with EOS (built-in tasks carry no EOS themselves); 0 pads only to the batch's longest, as a plain PyTorch collator does.") var extraEos: Int?
    @Option(help: "Truncate examples to this many tokens (counted in the log).") var maxLength: Int?
    @Option(help: "Seed of the data order, the masks and the times.") var seed: UInt64?
    @Option(help: "Seed of a preset model's initial weights (ignored with a model folder).") var initSeed: Int?
    @Option(help: "Run folder (default runs/<objective>-<time>).") var out: String?
    @Option(help: "Validation loss every N steps (0: at the end only).") var evalEvery: Int?
    @Option(help: "Held-out fraction of the data (JSONL file or built-in task) for the validation loss, chosen by a hash of --seed; the start log names the count (default 0.05: 5% of a JSONL file is not trained on; 0 keeps all).") var validationFraction: Double?
    @Flag(help: "Skip malformed JSONL lines (counted) instead of stopping at the first.") var skipBadLines = false
    @Option(help: "JSONL records: auto (by fields), messages, prompt-response, s1k (d1's layout) or ids; text goes through the model folder's tokenizer.json and chat template.")
    var dataFormat: String?
    @Option(help: "Consecutive non-finite steps tolerated before stopping.") var maxBadSteps: Int?
    @Flag(help: "Group examples of similar length into each global batch (HF Trainer's megabatches of 50 batches, sorted, then batches shuffled; deterministic by seed): less padding on data of mixed lengths.")
    var groupByLength = false
    @Option(help: "on (LLaDA's convention, default): the EOS padding is response, masked and trained, and counts in the loss normaliser; off: padding is never masked and counts nowhere (still seen by attention).")
    var padLoss: String?
    @Option(help: "Task accuracy (countdown, sudoku; test split) at every --eval-every and at the end, logged in metrics.jsonl and the plot.")
    var evalTask: String?
    @Option(help: "Test problems per accuracy evaluation.") var evalN: Int?
    @Option(help: "ZeRO stage, what is sharded over ranks: 0 nothing; 1 the AdamW moments; 2 also the gradients (reduce-scattered bucket by bucket during backward); 3 also the parameters (each block gathered just before it runs, freed after, the next prefetched). Same model at every stage; `gift plan` shows the memory of each.") var zero: Int?
    @Option(help: "Gradients on the wire: fp32, or bf16 (half the bytes; each rank's contribution rounded to bf16, the owner sums in fp32).") var gradReduceDtype: String?
    @Option(help: "Gradient allreduce bucket size in MiB (buckets start while backward runs).") var bucketMb: Double?
    @Option(help: "Matrix-multiply backend: auto (OpenBLAS for fp32; for bf16 oneDNN where its bf16 kernel is the faster one, AMX, else OpenBLAS with bf16-rounded operands), openblas or onednn.") var gemm: String?
    @Option(help: "Matmul input precision: fp32 or bf16 (fp32 accumulation; master weights, gradients, AdamW state, softmax, norms, entropy and loss stay fp32).") var precision: String?
    @Option(help: "LoRA rank (0: full fine-tuning of every parameter). The paper's s1K recipe: 128.") var loraR: Int?
    @Option(help: "LoRA alpha: the adapter is scaled by alpha/r (alpha/sqrt(r) with --lora-rslora). Default 16.") var loraAlpha: Double?
    @Option(help: "Dropout on the adapters' input during training (PEFT's lora_dropout). Default 0.") var loraDropout: Double?
    @Option(help: "Comma-separated block layers to adapt: q_proj, k_proj, v_proj, attn_out, ff_proj, up_proj, ff_out. Default q_proj,k_proj,v_proj.") var loraTargets: String?
    @Flag(help: "Scale adapters by alpha/sqrt(r) (rsLoRA) instead of alpha/r.") var loraRslora = false
    @Option(help: "A PEFT adapter folder (adapter_config.json + adapter_model.safetensors) to continue training; its config sets the --lora-* values.") var adapter: String?
    @Option(help: "Activation recomputation: none, or blocks (keep only each block's input for backward and recompute the block there: activation memory of one block instead of all, one more forward per block; bit-identical results).") var recompute: String?
    @Option(help: "LoRA: store the frozen base as fp32 or bf16 (half the memory of the blocks, decoded one block at a time; the embedding and head stay fp32; the weights are then the bf16-rounded ones, exact for a bf16 model folder).") var baseDtype: String?
    @Option(help: "s1K records (--data-format s1k): the system prompt that leads the user turn (default: d1's SFT code's).") var s1kSystemPrompt: String?
    @Option(help: "s1K records: the reasoning tag, <TAG>thinking</TAG> (default reasoning).") var s1kReasoningTag: String?
    @Option(help: "s1K records: the answer tag, <TAG>attempt</TAG> (default answer).") var s1kAnswerTag: String?
    @Option(help: "The memory a rank may use (8G, 512M, bytes). Before loading the model gift train prints its memory plan (`gift plan`) and stops, suggesting the cheapest ZeRO stage, recompute or rank count that fits, when the plan exceeds this or, without it, what the node reports (MemAvailable or the cgroup's room, divided by the ranks on this node, and any address-space limit).")
    var memoryLimit: String?
    @Option(help: "Resume: auto (the run folder's newest complete checkpoint; none: start fresh) or a checkpoint folder.")
    var resume: String?
    @Option(help: "Checkpoint every N optimizer steps (0: only at the end).") var checkpointEvery: Int = 0
    @Option(help: "Keep the newest K checkpoints.") var keepLast: Int = 2
    @Option(help: "Also keep every checkpoint whose step is a multiple of M (0: none).") var keepEvery: Int = 0
    @Option(help: "zstd level of checkpoint shards (1-19; 1 measured fastest at the best ratio).") var compressionLevel: Int = 1
    @Option(help: "zstd worker threads per rank for checkpoints (0: one thread; default: cores, at most 4).") var compressionWorkers: Int = CheckpointOptions.defaultWorkers
    @Option(help: "Nice value of background checkpoint threads (19: training first; 0: equal).") var checkpointNice: Int = 19
    @Flag(help: "Write checkpoints in the step loop instead of in the background.") var syncCheckpoints = false
    @Option(help: "Stop after this many steps (with a checkpoint), as a preempted job would; --resume auto continues.")
    var stopAtStep: Int?

    func resolve() throws -> RunConfig {
        let quick = config == nil && model == nil && data == nil
        var c = quick ? RunConfig.quickstart : RunConfig()
        if let config { try c.apply(file: config) }
        let flags: [(String, Any?)] = [
            ("model", model), ("data", data), ("task_examples", taskExamples), ("objective", objective),
            ("entropy_power", entropyPower), ("gift_weight", giftWeight), ("beta_reference", betaReference),
            ("loss_norm", lossNorm), ("time_epsilon", timeEpsilon), ("micro_batch", microBatch), ("grad_accum", gradAccum),
            ("max_steps", maxSteps), ("epochs", epochs), ("lr", lr), ("warmup_ratio", warmupRatio), ("schedule", schedule),
            ("weight_decay", weightDecay), ("max_grad_norm", maxGradNorm), ("max_length", maxLength),
            ("seed", seed.map { Int($0) }), ("out", out), ("eval_every", evalEvery),
            ("validation_fraction", validationFraction), ("max_bad_steps", maxBadSteps), ("zero", zero), ("grad_reduce_dtype", gradReduceDtype), ("bucket_mb", bucketMb), ("eval_task", evalTask), ("eval_n", evalN),
            ("gemm", gemm), ("precision", precision), ("init_seed", initSeed), ("data_format", dataFormat), ("pad_loss", padLoss),
            ("lora_r", loraR), ("lora_alpha", loraAlpha), ("lora_dropout", loraDropout), ("lora_targets", loraTargets),
            ("adapter", adapter), ("recompute", recompute), ("base_dtype", baseDtype),
            ("s1k_system_prompt", s1kSystemPrompt), ("s1k_reasoning_tag", s1kReasoningTag), ("s1k_answer_tag", s1kAnswerTag),
            ("beta1", beta1), ("beta2", beta2), ("adam_eps", adamEps), ("min_lr_ratio", minLrRatio), ("extra_eos", extraEos),
            ("memory_limit", memoryLimit),
        ]
        for (k, v) in flags { if let v { try c.set(k, v, source: "--" + k.replacingOccurrences(of: "_", with: "-")) } }
        if skipBadLines { c.skipBadLines = true }
        if groupByLength { c.groupByLength = true }
        if loraRslora { c.lora.rslora = true }
        if c.out.isEmpty {
            let f = DateFormatter(); f.dateFormat = "yyyyMMdd-HHmmss"
            c.out = "runs/\(c.objective.kind.rawValue)-\(f.string(from: Date()))"
        }
        try c.validate()
        if quick { FileHandle.standardError.write(Data("gift train: no --config, --model or --data: running the built-in quickstart (mini model from scratch, Sudoku, GIFT, lr 2e-3); see `gift help train`\n".utf8)) }
        return c
    }

    func run() throws {
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        var failed = false
        do {
            var cfg = try resolve()
            // the data (token ids) before the model: the memory plan needs the run's padded length.
            // A prepared set: rank 0 verifies the whole token file, the others read only their examples
            // (gift-ref caches every example's betas on every rank: all verify)
            let data = try TrainData.load(cfg, model: try Plan.modelConfig(cfg.model),
                                          verify: comm.rank == 0 || cfg.objective.kind == .giftRef)
            try checkMemoryPlan(cfg, data: data, comm: comm)
            // --base-dtype bf16 from a model folder: read straight into the bf16 store a block at a time (the
            // peak is the bf16 base plus one block, never the fp32 model); a preset (or a ZeRO-3 shard) is
            // made in fp32, rounded, and the fp32 copy freed
            let mc: ModelConfig
            var params: FloatBuffer, store: BF16BaseStore? = nil
            let folder = FileManager.default.fileExists(atPath: cfg.model + "/" + ModelFolder.configFile)
            if cfg.baseDtype == "bf16" && folder && !(cfg.zero == 3 && comm.size > 1) {
                let (c, s) = try BF16BaseStore.load(cfg.model)
                mc = c; store = s
                params = FloatBuffer(viewOf: s.view, count: ParameterLayout(c).count, owner: s)
            } else {
                let loaded = try loadModel(cfg, comm: comm)
                mc = loaded.0; params = loaded.1
                if cfg.baseDtype == "bf16" {
                    let s = try withExtendedLifetime(params) { try BF16BaseStore(config: mc, from: params.pointer) }
                    store = s
                    params = FloatBuffer(viewOf: s.view, count: params.count, owner: s)
                }
            }
            let adapters = try loadAdapter(&cfg, model: mc)
            let trainer = try Trainer(config: cfg, comm: comm, modelConfig: mc, params: params, data: data, adapters: adapters,
                                      baseStore: store)
            guard checkpointEvery >= 0, keepLast >= 1, keepEvery >= 0, (1...22).contains(compressionLevel), compressionWorkers >= 0 else {
                throw ValidationError("--checkpoint-every, --keep-every >= 0, --keep-last >= 1, --compression-level 1-22, --compression-workers >= 0")
            }
            var co = CheckpointOptions()
            co.every = checkpointEvery; co.keepLast = keepLast; co.keepEvery = keepEvery
            co.level = compressionLevel; co.workers = compressionWorkers; co.async = !syncCheckpoints
            co.writerNice = min(19, max(0, checkpointNice))
            trainer.checkpointOptions = co
            trainer.resumeSpec = resume
            trainer.stopAtStep = stopAtStep
            let summary = try trainer.run(outDir: cfg.out)
            if comm.rank == 0 { print(summary.text) }
            (comm as? MPICommunicator)?.finalize()
            failed = summary.failure != nil
        } catch let e as RankAgreementError {
            // every rank reached this verdict together (after the same collectives): rank 0 says it once and
            // every rank ends normally with status 1, no abort needed
            if comm.rank == 0 { FileHandle.standardError.write(Data("error: \(e.message)\n".utf8)) }
            (comm as? MPICommunicator)?.finalize()
            throw ExitCode.failure
        } catch where comm.size > 1 {
            // one rank's error stops every rank, naming this rank and the cause
            comm.abort("\(error)")
        }
        // a broken run (non-finite final parameters or validation loss) exits non-zero after its summary
        if failed && comm.rank == 0 { throw GiftError(.numeric, "the run diverged; see the summary above") }
        if failed { throw ExitCode.failure }
    }

    /// --adapter: the folder's LoRA config becomes the run's (a differing --lora-* flag is an error).
    func loadAdapter(_ cfg: inout RunConfig, model: ModelConfig) throws -> FloatBuffer? {
        guard !cfg.adapter.isEmpty else { return nil }
        let (lc, weights) = try PEFTAdapter.load(cfg.adapter, model: model)
        if cfg.lora.enabled && (cfg.lora.r != lc.r || cfg.lora.alpha != lc.alpha || cfg.lora.targets != lc.targets) {
            throw GiftError(.config, "--adapter \(cfg.adapter) has r \(lc.r), alpha \(lc.alpha), targets \(lc.targets.map(\.rawValue).joined(separator: ",")); the --lora-* flags say r \(cfg.lora.r), alpha \(cfg.lora.alpha), targets \(cfg.lora.targets.map(\.rawValue).joined(separator: ",")): leave them out to continue the adapter as it is")
        }
        let dropout = loraDropout ?? lc.dropout
        cfg.lora = lc; cfg.lora.dropout = dropout
        return weights
    }

    /// The model's weights: all of them, or under ZeRO-3 only this rank's shard (read from the folder's
    /// byte ranges of that shard, or initialised for that range), so no rank ever holds the whole model.
    ///
    /// Files that differ between hosts: at ZeRO 0-2 every rank reads the folder, but only rank 0's copy is
    /// trained (`Trainer.synchronizeStart` broadcasts its parameters, or its bf16 base, after comparing the
    /// model configs), so another host's differing weights cannot mix in: nothing more to compare there.
    /// Under ZeRO-3 nothing is broadcast, each rank reads only its shard: before reading it, the ranks
    /// compare checksums of the config, the index, every weight file's size and header and a sample of its
    /// data (`FolderIdentity`), and all stop with status 1 on the first rank that differs from rank 0.
    func loadModel(_ cfg: RunConfig, comm: Communicator) throws -> (ModelConfig, FloatBuffer) {
        let shardOnly = cfg.zero == 3 && comm.size > 1
        func mine(_ c: ModelConfig) -> Range<Int> { shardRanges(count: ParameterLayout(c).count, parts: comm.size)[comm.rank] }
        // under ZeRO-3 every rank takes part in the comparison, whichever source it found (so a rank that
        // found a preset where another found a folder is named, not left in another collective)
        func agree(_ items: [RankAgreement.Item], place: (String) -> String = { $0 }) throws {
            try RankAgreement.check(items, comm: comm, subject: "the model",
                                    advice: "every rank must see the same files at --model (under ZeRO-3 each rank reads only its own shard of it, so differing copies would train a mix of both)",
                                    place: place)
        }
        if ModelConfig.presetNames.contains(cfg.model) && !FileManager.default.fileExists(atPath: cfg.model) {
            let c = try ModelConfig.preset(cfg.model)
            if shardOnly {
                // initialised from the seed on every rank (the seed is compared with the run config)
                try agree([.init(file: "the built-in preset '\(cfg.model)'", part: "name", value: XXH64.hash(Array(cfg.model.utf8)))])
                return (c, ParameterLayout(c).initialize(seed: cfg.initSeed, range: mine(c)))
            }
            return (c, ParameterLayout(c).initialize(seed: cfg.initSeed))
        }
        guard shardOnly else { return try ModelFolder.load(cfg.model) }
        let identity = try FolderIdentity(modelFolder: cfg.model)
        try agree(identity.items, place: identity.path)
        let configPath = cfg.model + "/" + ModelFolder.configFile
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw GiftError(.io, "\(configPath): not found or unreadable (a model folder needs a config.json)")
        }
        return try ModelFolder.loadRange(cfg.model, range: mine(try ModelConfig.parse(data, source: configPath)))
    }
}
