import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune (or train from scratch) with GIFT, SFT or an ablation.",
        usage: "gift train [<setting> ...] [<options>]",   // ArgumentParser's own would list every option
        discussion: """
        With no --config, --model or --data, trains the built-in quickstart: a small model ("mini" preset) \
        from scratch on the 4×4 Sudoku task with GIFT, about two minutes on 2 cores, ending with the test \
        accuracy beside the untrained model's (measured: 0.865 against 0.000).

        Otherwise every setting starts from the paper's full-parameter recipe (AdamW 0.9/0.999/1e-8, lr 2e-5, \
        cosine schedule decaying to 0 (--min-lr-ratio sets a floor), warmup ratio 0.1, max grad norm 1.0), \
        then the --config file (JSON, snake_case keys as written to RUN_DIR/config.json), then the flags.

        Data: a JSONL file ({"prompt": "...", "response": "..."} per line with the character tokenizer, or \
        {"prompt_ids": [...], "response_ids": [...]}; with a model folder holding tokenizer.json or vocab.json + merges.txt, chat records \
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

    /// The run settings (`RunSettings.all`): ArgumentParser leaves them to `RunSettingFlags`, and its help
    /// lists them from the table (`RunSettingsHelp`).
    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("Run settings, each also a --config file key (micro_batch for --micro-batch); --flag value or --flag=value.",
                                 valueName: "setting", argumentType: RunSettingsHelp.self))
    var settings: [String] = []
    @Option(help: "Run config file (JSON).") var config: String?
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

    /// The flags declared above (ArgumentParser names a property `--kebab-case`), for a typo's suggestion.
    static var ownFlags: [String] {
        Mirror(reflecting: TrainCommand()).children.compactMap { $0.label?.dropFirst() }.filter { $0 != "settings" }.map { name in
            "--" + name.map { $0.isUppercase ? "-" + $0.lowercased() : String($0) }.joined()
        }
    }

    func settingFlags() throws -> RunSettingFlags { try RunSettingFlags(settings, otherFlags: Self.ownFlags) }

    /// An unknown setting flag or a missing value is a usage error, reported before anything runs.
    func validate() throws {
        do { _ = try settingFlags() } catch let e as GiftError { throw ValidationError(e.message) }
    }

    func resolve() throws -> RunConfig {
        let flags = try settingFlags()
        let quick = config == nil && !flags.sets("model") && !flags.sets("data")
        var c = quick ? RunConfig.quickstart : RunConfig()
        if let config { try c.apply(file: config) }
        try c.apply(flags)
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
            // --base-dtype bf16: the folder read (or the preset initialised) straight into the bf16 store a
            // range at a time, so the peak is the store plus one bounded buffer, never the fp32 model
            // (LoRA has no ZeRO-3, so every rank holds the whole base: rank 0's is broadcast at start)
            let mc: ModelConfig, params: FloatBuffer, store: BF16BaseStore?
            if cfg.baseDtype == .bf16 {
                let (c, s) = try BF16BaseStore.open(model: cfg.model, seed: cfg.initSeed)
                mc = c; store = s
                params = FloatBuffer(viewOf: s.view, count: ParameterLayout(c).count, owner: s)
            } else {
                (mc, params) = try loadModel(cfg, comm: comm); store = nil
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
            throw GiftError(.config, "--adapter \(cfg.adapter) has r \(lc.r), alpha \(lc.alpha), targets \(LoRATarget.names(lc.targets, in: model.family, separator: ",")); the --lora-* flags say r \(cfg.lora.r), alpha \(cfg.lora.alpha), targets \(LoRATarget.names(cfg.lora.targets, in: model.family, separator: ",")): leave them out to continue the adapter as it is")
        }
        // an explicit --lora-dropout overrides the adapter's (the flags are applied last)
        let dropout = try settingFlags().sets("lora_dropout") ? cfg.lora.dropout : lc.dropout
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
        if ModelConfig.isPreset(cfg.model) {
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
