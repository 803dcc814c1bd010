import ArgumentParser
import Foundation
import GiftCore

/// The sampler switches shared by `gift generate` and `gift eval`: the model's family decides which sampler
/// runs (LLaDA's, or Dream's), and the other family's switches are refused.
struct SamplerFlags: ParsableArguments {
    @Option(help: "Tokens generated per prompt (generate: 32; eval: the task's longest answer + EOS).") var genLength: Int?
    @Option(help: "Denoising steps in total (LLaDA: divisible by the number of blocks, default gen length / 2; Dream: default gen length).")
    var steps: Int?
    @Option(help: "0: greedy argmax (deterministic); > 0: sampling at this temperature (Gumbel-max).") var temperature: Double = 0
    @Option(help: "Sequences per forward pass.") var batch: Int = 32
    @Option(help: "Split each batch into this many groups sampled at once, one core each with single-threaded kernels (0, the default: one per core the kernels use, where the batch has that many prompts; 1: the whole batch on all cores). Every group pads as the whole batch, so a prompt's output does not depend on its group. Always 1 with --precision bf16 or a bf16/ZeRO-3 model.")
    var lanes: Int = 0
    @Option(help: "LLaDA: block length (semi-autoregressive blocks, left to right; a shorter last block takes the remainder; default 32).")
    var blockLength: Int?
    @Option(help: "LLaDA: which predictions a step keeps: low_confidence (default) or random.") var remasking: String?
    @Option(help: "LLaDA: classifier-free guidance scale (default 0: off).") var cfg: Double?
    @Option(help: "LLaDA: Fast-dLLM's parallel decoding: a step commits its most confident prediction and every other at or above this confidence, and a block runs until it is decoded (--steps unused). Off by default.")
    var threshold: Double?
    @Option(help: "LLaDA: none (default), prefix or dual: Fast-dLLM's approximate KV caches (a block's first step keeps every position's keys and values; its later steps run only the block and what follows (prefix) or the block alone (dual) against them).")
    var cache: String?
    @Option(help: "Dream: which masked positions a step commits: origin (each with probability 1 - s/t), maskgit_plus (most probable token), topk_margin (largest top1 - top2 margin) or entropy (lowest entropy; default, as dllm's Dream eval).")
    var alg: String?
    @Option(help: "Dream: 0 (default): commit the most confident positions; > 0: draw them from softmax(confidence / alg-temp).")
    var algTemp: Double?
    @Option(help: "Dream: nucleus filtering of each prediction (default 1: off).") var topP: Double?
    @Option(help: "Dream: keep each prediction's K most likely tokens (default: all).") var topK: Int?
    @Option(help: "Dream: the schedule's last time, timesteps linspace(1, eps, steps + 1) (default 0.001).") var eps: Double?

    /// The Fast-dLLM switches when any is on (sampling then follows d1's rules on padded batches).
    func fast() throws -> FastDecoding? {
        let cache = self.cache ?? "none"
        guard let mode = CacheMode(rawValue: cache) else {
            throw ValidationError("--cache must be one of \(CacheMode.names), not '\(cache)'")
        }
        if let threshold, !(threshold.isFinite && threshold >= 0) { throw ValidationError("--threshold must be a number >= 0") }
        return threshold != nil || mode != .none ? FastDecoding(threshold: threshold, cache: mode) : nil
    }

    /// The settings shared by both samplers (LLaDA's schedule checked for a LLaDA model).
    func options(genLength defaultGen: Int, seed: UInt64, family: ModelFamily) throws -> SamplerOptions {
        var o = SamplerOptions(genLength: genLength ?? defaultGen, blockLength: blockLength ?? 32, steps: steps,
                               temperature: temperature, remasking: try Remasking(name: remasking ?? "low_confidence"),
                               cfg: cfg ?? 0, seed: seed, maxBatch: batch)
        o.lanes = lanes
        try o.validate()
        if family == .llada { _ = try o.schedule }
        return o
    }

    /// Refuses the other family's switches by `dir`'s config.json before any weights load (a model folder, or
    /// a run folder's model/; a LoRA run folder is checked once its base is loaded).
    func checkFamily(ofFolder dir: String) throws {
        let path = Evaluate.modelDirectory(dir) + "/" + ModelFolder.configFile
        guard let d = FileManager.default.contents(atPath: path), let c = try? ModelConfig.parse(d, source: path) else { return }
        _ = try dreamSettings(for: c.family)
    }

    /// Dream's settings for a Dream model (LLaDA's switches refused), nil for LLaDA (Dream's refused).
    func dreamSettings(for family: ModelFamily) throws -> DreamSettings? {
        let dreamFlags = [("--alg", alg != nil), ("--alg-temp", algTemp != nil), ("--top-p", topP != nil), ("--top-k", topK != nil),
                          ("--eps", eps != nil)].filter(\.1).map(\.0)
        let lladaFlags = [("--block-length", blockLength != nil), ("--remasking", remasking != nil), ("--cfg", cfg != nil),
                          ("--threshold", threshold != nil), ("--cache", cache != nil)].filter(\.1).map(\.0)
        switch family {
        case .llada:
            guard dreamFlags.isEmpty else {
                throw ValidationError("\(dreamFlags.joined(separator: ", ")): Dream's sampler settings, and this is a LLaDA model "
                                      + "(LLaDA's sampler: --block-length --remasking --cfg --threshold --cache)")
            }
            return nil
        case .dream:
            guard lladaFlags.isEmpty else {
                throw ValidationError("\(lladaFlags.joined(separator: ", ")): LLaDA's sampler settings, and this is a Dream model "
                                      + "(Dream's sampler: --alg --alg-temp --top-p --top-k --eps)")
            }
            var d = DreamSettings()
            if let alg { d.alg = try DreamAlgorithm(name: alg) }
            if let algTemp { d.algTemp = algTemp }
            if let eps { d.eps = eps }
            d.topP = topP; d.topK = topK
            try d.validate()
            return d
        }
    }

    /// One line on the sampler that runs.
    func describe(_ o: SamplerOptions, dream: DreamSettings?) throws -> String {
        guard let dream else {
            let sched = try o.schedule
            return "LLaDA's sampler, gen length \(o.genLength), block \(o.blockLength), \(sched.totalSteps) steps, "
                + "temperature \(o.temperature), \(o.remasking.rawValue)\(o.cfg > 0 ? ", cfg \(o.cfg)" : "")"
        }
        return "Dream's sampler, gen length \(o.genLength), \(o.steps ?? DreamSettings.defaultSteps(genLength: o.genLength)) steps, "
            + "temperature \(o.temperature), alg \(dream.alg.rawValue), alg temp \(dream.algTemp), eps \(dream.eps)"
            + (dream.topP.map { ", top p \($0)" } ?? "") + (dream.topK.map { ", top k \($0)" } ?? "")
    }
}

/// A model folder, a run folder's model/, or a LoRA base with an adapter merged in (`adapter`, or a LoRA
/// run folder's adapter/ on the base its run config names).
func loadModelForSampling(_ dir: String, adapter: String? = nil) throws -> (ModelConfig, FloatBuffer) {
    if let adapter { return try PEFTAdapter.merged(base: Evaluate.modelDirectory(dir), adapter: adapter) }
    if let c = try? Resume.loraCheckpoint(dir), !FileManager.default.fileExists(atPath: dir + "/model/" + ModelFolder.configFile) {
        let (layout, adapters, base) = try Resume.loadAdapters(c)
        return (layout.model, layout.merged(base: base.pointer, adapters: adapters.pointer))
    }
    return try ModelFolder.load(Evaluate.modelDirectory(dir))
}

/// The folder whose tokenizer and chat template go with `dir`: its model/ subfolder or itself when that has a
/// tokenizer (TextModel.present), else a LoRA run folder's base (the run config's "model"), else `dir`'s model folder.
func textModelDirectory(_ dir: String) -> String {
    let m = Evaluate.modelDirectory(dir)
    if TextModel.present(in: m) { return m }
    if let d = FileManager.default.contents(atPath: dir + "/config.json"),
       let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], o["lora_r"] != nil || o["objective"] != nil,
       let base = o["model"] as? String, TextModel.present(in: Evaluate.modelDirectory(base)) {
        return Evaluate.modelDirectory(base)
    }
    return m
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate responses with the model family's diffusion sampler (LLaDA's or Dream's).",
        discussion: """
        Each response starts as --gen-length mask tokens after its prompt. LLaDA: it is denoised block by block \
        (--block-length), --steps steps in all, each step committing an even share of the block's tokens: the \
        most confident predictions (low_confidence) or random ones (random). Dream (a Dream model folder): \
        Dream's diffusion_generate, --steps steps over the whole response with timesteps linspace(1, --eps, \
        steps + 1), each committing the share 1 - s/t of the masked positions chosen by --alg (origin, \
        maskgit_plus, topk_margin, entropy; --alg-temp > 0 draws them), predictions with --temperature, --top-p, \
        --top-k; prompts batched left-padded, the padding masked out of attention. Each family's own switches \
        are refused on the other.

        --model takes a model folder or a training run folder (its model/ subfolder; a LoRA run folder: its \
        base with the run's adapter merged in), --adapter a PEFT adapter folder to merge into --model. Prompts: \
        --prompt (repeatable), --prompts FILE.jsonl ({"prompt": "..."} or {"prompt_ids": [...]} lines), \
        --messages FILE.jsonl (conversations).

        With a folder that has a tokenizer (a Hugging Face model's tokenizer.json, or vocab.json + merges.txt), a --prompt becomes one user turn of \
        tokenizer_config.json's chat template with the generation prompt, as apply_chat_template does \
        (--no-chat-template: plain text), and outputs are decoded with the tokenizer (special tokens left out); \
        otherwise prompts are text for the character tokenizer. Prints each output on its own line (text up to \
        the first EOS), or with --json one {"prompt", "prompt_ids", "output", "output_ids"} object per line; the \
        sampling time (model load and decoding left out) and generated tokens/s go to stderr.

        Examples:
          gift generate --model runs/gift1 --prompt "7 15 3 to 36:" --gen-length 16
          gift generate --model runs/gift1 --prompts prompts.jsonl --json
          gift generate --model LLaDA-8B-Instruct --adapter runs/s1k-lora/adapter --messages chats.jsonl
          gift generate --model Dream-v0-Instruct-7B --prompt "Hi" --gen-length 128 --alg entropy
        """)

    @Option(help: "Model folder, or a training run folder with model/config.json (a LoRA run: its base with the run's adapters).") var model: String
    @Option(help: "A PEFT adapter folder to merge into --model before sampling.") var adapter: String?
    @Option(help: "A prompt (repeatable).") var prompt: [String] = []
    @Option(help: "JSONL file of prompts ({\"prompt\": \"...\"} or {\"prompt_ids\": [...]} per line).") var prompts: String?
    @Option(help: "JSONL file of conversations (a list of {\"role\", \"content\"} messages, or {\"messages\": [...]}, per line; a last assistant turn is dropped), rendered with the folder's chat template and its generation prompt.")
    var messages: String?
    @Flag(help: "With a tokenizer.json folder: encode --prompt as plain text instead of as a user turn of the chat template.")
    var noChatTemplate = false
    @OptionGroup var sampler: SamplerFlags
    @OptionGroup var compute: ComputeFlags
    @Option(help: "Seed of the random draws (temperature > 0, random remasking).") var seed: UInt64 = 0
    @Flag(help: "Print one JSON object per prompt.") var json = false

    func run() throws {
        try compute.apply()
        try sampler.checkFamily(ofFolder: model)
        let (cfg, params) = try loadModelForSampling(model, adapter: adapter)
        let dream = try sampler.dreamSettings(for: cfg.family)   // the family's sampler; the other's switches refused
        // the tokenizer and chat template of the model folder (a LoRA base's own with --adapter)
        var text = try TextPrompts(modelDir: adapter == nil ? textModelDirectory(model) : Evaluate.modelDirectory(model), config: cfg)
        text.plain = noChatTemplate
        var inputs: [(text: String?, ids: [Int32])] = try prompt.map { ($0, try text.encode($0)) }
        if let path = prompts { inputs += try Self.readPrompts(path, encode: { try text.encode($0) }) }
        if let path = messages { inputs += try text.readConversations(path) }
        guard !inputs.isEmpty else { throw ValidationError("give --prompt TEXT, --prompts FILE.jsonl or --messages FILE.jsonl") }
        let opts = try sampler.options(genLength: 32, seed: seed, family: cfg.family)
        try compute.settle(model: cfg, tokens: min(inputs.count, opts.maxBatch) * (opts.genLength + inputs.map(\.ids.count).max()!),
                           what: "a batch of prompts + gen length")
        let clock = Date()   // sampling alone (no load, no decoding), for speed comparisons
        let outs: [[Int32]]
        if let dream {
            outs = try DreamSampler.laned(config: cfg, weights: .fp32(params), options: opts, dream: dream,
                                          maxPromptLength: inputs.map(\.ids.count).max()!).generateAll(inputs.map(\.ids))
        } else if let fast = try sampler.fast() {
            outs = try fast.sampler(config: cfg, params: params, options: opts, maxPromptLength: inputs.map(\.ids.count).max()!)
                .generateAll(inputs.map(\.ids))
        } else {
            outs = try Sampler(config: cfg, params: params, options: opts).generate(inputs.map(\.ids))
        }
        let secs = Date().timeIntervalSince(clock), toks = outs.count * opts.genLength
        FileHandle.standardError.write(Data("gift generate: sampled \(toks) tokens in \(String(format: "%.3f", secs)) s (\(String(format: "%.1f", Double(toks) / secs)) generated tokens/s)\n".utf8))
        for (i, o) in outs.enumerated() {
            let decoded = try text.decode(o)
            if json {
                var obj: [String: Any] = ["output": decoded, "output_ids": o.map(Int.init), "prompt_ids": inputs[i].ids.map(Int.init)]
                obj["prompt"] = inputs[i].text ?? inputs[i].ids.map(String.init).joined(separator: " ")
                let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            } else {
                print(decoded)
            }
        }
    }

    static func readPrompts(_ path: String, encode: (String) throws -> [Int32]) throws -> [(text: String?, ids: [Int32])] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GiftError(.io, "cannot read prompts file \(path)")
        }
        var out: [(text: String?, ids: [Int32])] = []
        for (n, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let where_ = "\(path):\(n + 1)"
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw GiftError(.data, "\(where_): not a JSON object")
            }
            if let t = obj["prompt"] as? String {
                do { out.append((t, try encode(t))) } catch let e as GiftError {
                    throw GiftError(e.kind, "\(where_): \(e.message)")
                }
            } else if let ids = obj["prompt_ids"] as? [Any] {
                let v: [Int32] = try ids.map {
                    guard let n = $0 as? NSNumber, let i = Int32(exactly: n.doubleValue) else {
                        throw GiftError(.data, "\(where_): prompt_ids must be integers")
                    }
                    return i
                }
                out.append((nil, v))
            } else {
                throw GiftError(.data, "\(where_): needs a string field \"prompt\" or an array \"prompt_ids\"")
            }
        }
        return out
    }
}

