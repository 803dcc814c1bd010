import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Accuracy on the paper's benchmarks (GSM8K, MATH500, Countdown, Sudoku, as d1 evaluates them) or on a built-in task.",
        discussion: """
        THE PAPER'S BENCHMARKS (--benchmark gsm8k|math500|countdown|sudoku --data FILE --out DIR)

        Prompts, sampling and scoring follow d1's evaluation code (dllm-reasoning/d1, eval/): one user turn, the \
        benchmark's system prompt + "\\n\\n" + the question, rendered by the model folder's chat template with the \
        generation prompt, then "<reasoning>"; tokenized with the tokenizer's special tokens as tokenizer(prompt) \
        does. Data: GSM8K JSONL ("question", "answer" with "#### N"), MATH-500 JSONL ("problem", "answer"), d1's \
        Countdown JSONL ("input" "a,b,c", "output"), Sudoku CSV (Puzzle,Solution). Countdown and Sudoku use the 256 \
        problems d1 draws (numpy seed 42; a smaller file whole); --limit N keeps the first N.

        A Dream model folder samples with Dream's own sampler (see gift help generate: --alg, --alg-temp, --top-p, \
        --top-k, --eps; --steps default gen length), the padding masked out of attention as Dream's attention \
        mask does; LLaDA's switches (--block-length, --remasking, --cfg, --threshold, --cache, --attend-padding) \
        are refused there, and Dream's on LLaDA. For LLaDA, sampling is d1's generate(): low-confidence remasking, semi-autoregressive blocks, temperature 0, batches of \
        --batch-size problems left-padded with the pad token. d1 lets every token attend to that padding, so its \
        outputs depend on which problems share a batch; --attend-padding does the same (gift's batch i is problems \
        [i·B, (i+1)·B), d1's on one GPU). By default the padding is masked out of attention, so a problem's output \
        does not depend on its batch. Opt-in: --threshold P and --cache prefix|dual (Fast-dLLM's parallel decoding \
        and approximate KV caches), --dtype bf16 (half the weights' memory).

        Writes DIR/generations.jsonl (a line per problem in data order: index, question, prompt, output, \
        output_ids, extracted, ground_truth, verdict, and for Sudoku empty_cells) and DIR/eval.json (accuracy, \
        counts, settings, seconds, generated tokens/s). A killed eval continues where it stopped when run again \
        with the same settings. Under mpirun the batches are dealt over the ranks (batch i to rank i mod R) and \
        rank 0 writes the files; the outputs do not depend on the rank count.

        --score FILE scores a generations file again without a model: gift's generations.jsonl or d1's JSON \
        ({"generations": [{"question", "generations", "ground_truth"}]}); --json ends with one line \
        {"benchmark", "correct", "total", "accuracy", "verdicts"} (Sudoku: correct cells, empty cells, correct \
        cells per problem).

        BUILT-IN TASKS (--task countdown|sudoku)

        Generates answers to --n test problems of gift's own tasks (default gen length: the task's longest answer \
        plus its EOS), decodes up to the first EOS and scores them with the task's verifier; repeats --seeds times \
        (seed S+r draws the problems and seeds the sampler). Prints mean accuracy ± standard error, then one JSON \
        line; --out writes every prompt, output, reference and score as JSONL.

        --model takes a model folder or a training run folder (its model/ subfolder; a LoRA run folder: its base \
        with the run's adapters merged), --adapter a PEFT adapter folder merged once at load.

        Examples:
          gift eval --benchmark gsm8k --data gsm8k_test.jsonl --model LLaDA-8B-Instruct --out evals/gsm8k-256
          mpirun -np 8 gift eval --benchmark sudoku --data 4x4_test_sudoku.csv --model runs/gift1 --out evals/sudoku
          gift eval --benchmark math500 --score evals/math/generations.jsonl --json
          gift eval --model runs/gift1 --task sudoku --n 64
        """)

    @Option(help: "Model folder, or a training run folder with model/config.json (a LoRA run: its base with the run's adapters).") var model: String?
    @Option(help: "A PEFT adapter folder to merge into --model before sampling.") var adapter: String?
    @Option(help: "A paper benchmark: gsm8k, math500, countdown or sudoku.") var benchmark: String?
    @Option(help: "The benchmark's data file (JSONL; Sudoku: CSV).") var data: String?
    @Option(help: "Keep the first N problems (after d1's draw for Countdown and Sudoku).") var limit: Int?
    @Option(help: "Benchmarks: problems per forward batch.") var batchSize: Int = 8
    @Flag(help: "Benchmarks: let tokens attend to the batch's left padding, as d1 does (outputs then depend on the batch).")
    var attendPadding = false
    @Option(help: "Benchmarks: weights held as f32, or bf16 (rounded to bf16 and decoded a block at a time: half the memory; read straight from the folder a block at a time, so LLaDA-8B needs about 16 GB).")
    var dtype: String = "f32"
    @Option(help: "Benchmarks: score this generations file (gift's JSONL or d1's JSON) instead of generating.") var score: String?
    @Flag(help: "Benchmarks with --score: end with one JSON line.") var json = false
    @Option(help: "Built-in tasks: countdown or sudoku.") var task: String?
    @Option(help: "Built-in tasks: test problems per repetition.") var n: Int = 256
    @Option(help: "Built-in tasks: repetitions (seeds S, S+1, ...).") var seeds: Int = 3
    @Option(help: "First seed S (built-in tasks: problems and sampler; benchmarks: sampler at temperature > 0).") var seed: UInt64 = 0
    @Option(help: "Benchmarks: the output folder. Built-in tasks: a JSONL file of every prompt, output, reference and score.") var out: String?
    @OptionGroup var sampler: SamplerFlags
    @OptionGroup var compute: ComputeFlags
    @Flag(help: "Print the time spent in each phase of the sampler.") var profile = false

    func run() throws {
        if let benchmark {
            guard task == nil else { throw ValidationError("give --benchmark or --task, not both") }
            guard let b = Benchmark(rawValue: benchmark.lowercased()) else {
                throw ValidationError("unknown benchmark '\(benchmark)'; known: \(Benchmark.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let score { return try rescore(b, file: score) }
            return try runBenchmark(b)
        }
        guard let task else { throw ValidationError("give --benchmark NAME (gsm8k, math500, countdown, sudoku) or --task NAME (countdown, sudoku)") }
        try runTask(task)
    }

    func rescore(_ b: Benchmark, file: String) throws {
        let items = try GenerationsFile.read(file, benchmark: b)
        let verdicts = items.map { BenchmarkScorer.score(b, output: $0.output, question: $0.question, groundTruth: $0.groundTruth) }
        let s = BenchmarkScorer.aggregate(b, verdicts: verdicts)
        let what = b == .sudoku ? "cells" : "problems"
        print(String(format: "%@: accuracy %.4f (%d of %d %@ correct) in %@", b.rawValue, s.accuracy, s.correct, s.total, what, file))
        if json {
            var j = "{\"benchmark\": \"\(b.rawValue)\", \"correct\": \(s.correct), \"total\": \(s.total), \"accuracy\": \(s.accuracy), "
            if b == .sudoku { j += "\"empty_cells\": \(s.total), \"problems\": \(items.count), " }
            j += "\"verdicts\": [\(verdicts.map { String($0.correct) }.joined(separator: ", "))]}"
            print(j)
        }
    }

    func runBenchmark(_ b: Benchmark) throws {
        guard let model else { throw ValidationError("--benchmark needs --model DIR (or --score FILE to score generations)") }
        guard let data else { throw ValidationError("--benchmark needs --data FILE (the benchmark's test file)") }
        guard let out else { throw ValidationError("--benchmark needs --out DIR (generations.jsonl and eval.json go there)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        guard dtype == "f32" || dtype == "bf16" else { throw ValidationError("--dtype must be f32 or bf16, not '\(dtype)'") }
        let fast = try sampler.fast()
        try compute.apply()
        Profiler.enabled = profile
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        do {
            try sampler.checkFamily(ofFolder: model)
            let modelDir = adapter == nil ? textModelDirectory(model) : Evaluate.modelDirectory(model)
            guard TextModel.present(in: modelDir) else {
                throw GiftError(.config, "\(modelDir) has no \(TextModel.tokenizerFilesWanted): the benchmarks need the model's tokenizer and chat template")
            }
            let text = try TextModel.load(modelDir)
            let problems = try BenchmarkData.load(b, file: URL(fileURLWithPath: data), limit: limit)
            let builder = try BenchmarkPromptBuilder(model: text)
            let prompts = try problems.map { try builder.prompt(b, $0) }
            let (cfg, weights) = try loadEvalWeights(model, adapter: adapter, bf16: dtype == "bf16")
            let dream = try sampler.dreamSettings(for: cfg.family)
            if dream != nil && attendPadding {
                throw ValidationError("--attend-padding is d1's LLaDA behaviour; Dream's sampler masks the padding as Dream's attention mask does")
            }
            var opts = try sampler.options(genLength: 256, seed: seed, family: cfg.family)
            opts.maxBatch = batchSize
            let padId = text.padId(modelDefault: cfg.padTokenId)
            let checksum = XXH64.hash([UInt8](FileManager.default.contents(atPath: data) ?? Data()))
            var settings = BenchmarkEvalSettings(benchmark: b, data: data, dataChecksum: checksum, limit: limit,
                                                 problems: problems.count, model: model, adapter: adapter, sampler: opts,
                                                 attendPadding: attendPadding, padId: padId, precision: compute.precision)
            settings.dtype = dtype
            settings.cache = fast?.cache ?? .none
            settings.threshold = fast?.threshold
            settings.dream = dream
            let log: (String) -> Void = { if comm.rank == 0 { FileHandle.standardError.write(Data("gift eval: \($0)\n".utf8)) } }
            try compute.settle(comm: comm, model: cfg, tokens: min(batchSize, problems.count) * (opts.genLength + (prompts.map(\.ids.count).max() ?? 0)),
                               what: "batch \(batchSize) × (longest prompt + gen length)")
            if let t = settings.threshold { log("parallel decoding: threshold \(t) (Fast-dLLM); --steps is not used") }
            if settings.cache != .none { log("\(settings.cache.rawValue) cache (Fast-dLLM, approximate)") }
            log("\(b.rawValue), \(problems.count) problems from \(data), \(try sampler.describe(opts, dream: dream)), "
                + "batch \(batchSize), padding \(attendPadding ? "attended (as d1)" : "masked"), "
                + "\(comm.size) rank(s); \(Gemm.summary)")
            let eval = BenchmarkEval(settings: settings, problems: problems, prompts: prompts, out: out, comm: comm,
                                     decode: { try text.tokenizer.decode($0, skipSpecialTokens: false) }, log: log)
            let r = try eval.run(config: cfg, weights: weights)
            if profile, comm.rank == 0 { for (k, v) in Profiler.report { print(String(format: "  %-18@ %8.3f s", k, v)) } }
            if comm.rank == 0 {
                let s = r.score
                print(String(format: "%@: accuracy %.4f (%d of %d %@), %.1f s, %.2f generated tokens/s, %d forward passes on rank 0; %@/generations.jsonl, %@/eval.json",
                             b.rawValue, s.accuracy, s.correct, s.total, b == .sudoku ? "empty cells right" : "problems right",
                             r.seconds, r.tokensPerSecond, r.forwardPasses, out, out))
            }
            (comm as? MPICommunicator)?.finalize()
        } catch where comm.size > 1 {
            comm.abort("\(error)")
        }
    }

    /// The weights: fp32, or bf16 read a block at a time from a plain model folder (a folder with an
    /// adapter to merge, or a LoRA run folder, is merged in fp32 first, then rounded).
    func loadEvalWeights(_ model: String, adapter: String?, bf16: Bool) throws -> (ModelConfig, EvalWeights) {
        let dir = Evaluate.modelDirectory(model)
        if bf16 && adapter == nil && FileManager.default.fileExists(atPath: dir + "/" + ModelFolder.configFile) {
            let (c, store) = try BF16BaseStore.load(dir)
            return (c, .bf16(store))
        }
        let (c, p) = try loadModelForSampling(model, adapter: adapter)
        guard bf16 else { return (c, .fp32(p)) }
        return (c, .bf16(try withExtendedLifetime(p) { try BF16BaseStore(config: c, from: p.pointer) }))
    }

    func runTask(_ task: String) throws {
        guard let model else { throw ValidationError("--task needs --model DIR") }
        try compute.apply()
        Profiler.enabled = profile
        let t = try BuiltinTask(name: task)
        guard n >= 1 else { throw ValidationError("--n must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        try sampler.checkFamily(ofFolder: model)
        let (cfg, params) = try loadModelForSampling(model, adapter: adapter)
        let dream = try sampler.dreamSettings(for: cfg.family)
        let opts = try sampler.options(genLength: Evaluate.defaultOptions(for: t).genLength, seed: seed, family: cfg.family)
        let promptLength = t.generate(n: 1, seed: seed, split: .test).first?.prompt.utf8.count ?? 0   // (character-level)
        try compute.settle(model: cfg, tokens: min(n, opts.maxBatch) * (opts.genLength + promptLength + 1), what: "a batch of prompts + gen length")
        FileHandle.standardError.write(Data("gift eval: \(t.name), \(n) problems × \(seeds) seeds, \(try sampler.describe(opts, dream: dream))\n".utf8))
        let r = try Evaluate.run(config: cfg, params: params, task: t, n: n, seeds: seeds, seed: seed, options: opts,
                                 fast: try sampler.fast(), dream: dream, log: { print($0) })
        if let out { try Evaluate.writeJSONL(r.records, to: out) }
        if profile { for (k, v) in Profiler.report { print(String(format: "  %-18@ %8.3f s", k, v)) } }
        print(String(format: "accuracy: %.4f ± %.4f (%@, %d problems × %d seeds, %.1f s)", r.accuracy, r.stderr,
                     t.name, n, seeds, r.seconds))
        print(r.jsonLine)
    }
}
