import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training speed: whole optimizer steps per objective, against sgemm in the same run.",
        discussion: """
        Each objective in --objective (comma-separated) runs under each --gemm backend and --precision (also \
        comma lists): --warmup untimed steps, then --steps timed steps (pass 1 where the objective has one, \
        pass 2 forward, backward, AdamW) on a synthetic batch. All these lanes are interleaved step by step \
        (A, B, A, B, ...) and each is the median of its steps, so their ratios hold on a noisy machine.

        It prints the matmul rate of each setting at the model's largest matmul shape, one JSON line per lane \
        (objective, gemm, precision, tokens_per_s, s_per_step, gflops) and, last, one JSON object with the \
        summary: the first lane's tokens_per_s, gflops (model FLOPs, no recompute counted), sgemm_gflops \
        (OpenBLAS at that shape, same run), best_gemm_gflops (the faster of OpenBLAS and oneDNN there: the \
        reference) and fraction_of_best_gemm, the CPU, its flags, the BLAS and its kernel (core), oneDNN's \
        version and ISA, warnings (a generic BLAS kernel, a bf16 kernel slower than the other), peak memory, \
        and the GIFT/SFT step ratio of every setting where both ran (the ratio of the medians, and the median \
        of the ratios of steps run side by side, which is steadier on a machine whose speed drifts).

        --gemm auto measures the kernels on the model's GEMM shapes as gift train does (the table is printed) \
        and runs the fastest; bf16 on --gemm onednn runs oneDNN's kernel ("native") where the CPU has bf16 \
        instructions, else "emulated" (bf16-rounded operands through the fp32 GEMM); the line says which and why.

        Threads: OPENBLAS_NUM_THREADS (default: all cores; oneDNN uses the same count). Under mpirun every \
        rank runs its own batch and gradients are summed as in training; the figures are then for all ranks \
        together (examples_per_s, tokens_per_s) plus the median communication wait per step.

        Examples:
          gift bench --preset tiny --steps 2
          OPENBLAS_NUM_THREADS=2 gift bench --preset small --objective sft,gift --gemm openblas,onednn --precision fp32,bf16
        """)

    @Option(help: "Preset model shape: tiny, mini, small, base, llada-8b, dream-tiny or dream-7b (ignored with --model).") var preset: String = "small"
    @Option(help: "A model folder instead of a preset.") var model: String?
    @Option(help: "Keep only the first N blocks of the preset: a slice of its real shape (same width, heads, MLP and vocabulary), e.g. --preset llada-8b --layers 1 --seq 1024 --batch 1.")
    var layers: Int?
    @Option(help: "Shrink the preset's vocabulary (embedding and head rows) to V so a wide slice fits in memory; the head GEMM at the real vocabulary is then timed on its own.")
    var vocab: Int?
    @Option(help: "Sequence length.") var seq: Int = 512
    @Option(help: "Sequences per step.") var batch: Int = 2
    @Option(help: "Timed steps per objective.") var steps: Int = 3
    @Option(help: "Untimed warm-up steps per objective.") var warmup: Int = 1
    @Flag(help: "Print the time per phase of a step (pass 1, pass 2 forward, head, loss, backward, optimizer).")
    var profile = false
    @OptionGroup var objectiveFlags: ObjectiveFlags
    @Option(help: "Also time LoRA steps with this rank beside full fine-tuning (each objective both ways, interleaved; e.g. 128 as in the paper's s1K runs); the summary gets lora_full_ratio and the state bytes per base parameter.") var loraR: Int = 0
    @Option(help: "With --lora-r: the adapted layers.") var loraTargets: String = "q_proj,k_proj,v_proj"

    @Option(help: "Matrix-multiply backends to measure, comma-separated: auto, openblas, onednn.")
    var gemm: String = "auto"
    @Option(help: "Precisions to measure, comma-separated: fp32, bf16 (each objective runs in each, interleaved).")
    var precision: String = "fp32"

    func loraConfig() throws -> LoRAConfig? {
        guard loraR > 0 else { return nil }
        var l = LoRAConfig()
        l.r = loraR; l.alpha = Double(2 * loraR)
        try l.setTargets(loraTargets)
        return l
    }

    func run() throws {
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        defer { (comm as? MPICommunicator)?.finalize() }
        let root = comm.rank == 0
        func say(_ s: String) { if root { print(s) } }
        func list(_ s: String) -> [String] { s.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        var computes: [Bench.Compute] = []
        for g in list(gemm) {
            for p in list(precision) {
                guard let pr = Precision(rawValue: p) else { throw ValidationError("--precision: '\(p)' is not fp32 or bf16") }
                try Gemm.configure(gemm: g, precision: pr)   // fails early on a typo or a missing oneDNN
                computes.append(Bench.Compute(gemm: g, precision: pr))
            }
        }
        guard seq > 1, batch > 0, steps > 0, warmup >= 0 else { throw ValidationError("--seq, --batch, --steps must be positive") }
        let config: ModelConfig, params: FloatBuffer
        var realVocab: Int?   // the preset's vocabulary when --vocab shrank it
        if let model {
            guard layers == nil, vocab == nil else { throw ValidationError("--layers and --vocab slice a --preset, not a model folder") }
            (config, params) = try ModelFolder.load(model)
        } else {
            config = try Self.slice(try ModelConfig.preset(preset), layers: layers, vocab: vocab)
            if let v = vocab, v != (try ModelConfig.preset(preset)).vocab { realVocab = try ModelConfig.preset(preset).vocab }
            // refuse before allocating: parameters, gradients, both moments and the activations, or the
            // parameters and the reference GEMM's operands (at the real vocabulary), whichever is more;
            // a tenth of what is available stays free (the node is shared)
            let tokens = batch * seq, n = max(realVocab ?? config.vocab, config.mlpHiddenSize, config.dModel)
            let gemmBytes = 4 * (ParameterLayout(config).count + tokens * config.dModel + n * config.dModel + tokens * n)
            let need = max(Bench.bytesNeeded(config: config, batch: batch, seqLen: seq), gemmBytes) * comm.size
            if let have = MemoryInfo.available(), need > have / 10 * 9 {
                throw ValidationError("bench of \(preset)\(layers.map { " --layers \($0)" } ?? "") at seq \(seq), batch \(batch) "
                    + "needs \(MemoryInfo.format(need)) (\(comm.size) ranks) but the node has \(MemoryInfo.format(have)) available (90% of it may be used); "
                    + "use fewer --layers, a smaller --vocab (e.g. --vocab 32768: the head GEMM at the real vocabulary is still timed) or a shorter --seq")
            }
            params = ParameterLayout(config).initialize(seed: 0)
        }
        let m = Transformer(config: config, maxSeqLen: seq)
        let opts = try list(objectiveFlags.objective).map { try objectiveFlags.options(kind: $0) }
        let T = batch * seq
        let gemmShape = (m: T, n: max(config.vocab, config.mlpHiddenSize, config.dModel), k: config.dModel)
        // the reference: the best fp32 GEMM this machine has (each backend at the model's largest matmul
        // shape, same run), so a broken BLAS cannot make the step look good against itself
        // and attention's score-block GEMMs (QKᵀ and PV of one block of rows, one thread each)
        var refs: [(String, Double)] = [], attention: [String] = []
        let hd = config.dModel / config.nHeads, blk = AttentionShape(batch: 1, seqLen: seq, heads: config.nHeads,
            kvHeads: config.nKVHeads, headDim: hd).blockRows
        for g in ["openblas", "onednn"] where g == "openblas" || Gemm.onednnAvailable {
            try Gemm.configure(gemm: g, precision: .fp32)
            Gemm.onednnMinWork = 0   // (a small preset's shape would otherwise go to OpenBLAS on both)
            refs.append((g, Bench.sgemmGFlops(m: gemmShape.m, n: gemmShape.n, k: gemmShape.k)))
            attention.append(String(format: "%@ %.1f / %.1f", g, Bench.singleThreadGFlops(transB: true, m: blk, n: seq, k: hd),
                                    Bench.singleThreadGFlops(transB: false, m: blk, n: hd, k: seq)))
            Gemm.onednnMinWork = Gemm.defaultOnednnMinWork
        }
        let sgemm = refs[0].1, best = refs.max { $0.1 < $1.1 }!
        let shape = "\(gemmShape.m)×\(gemmShape.n)×\(gemmShape.k)"
        say("bench: \(model ?? preset)\(layers.map { ", \($0) of \(try! ModelConfig.preset(preset).nLayers) layers" } ?? "")"
            + "\(realVocab != nil ? ", vocab \(config.vocab) of \(realVocab!)" : ""), \(ParameterLayout(config).count) parameters, seq \(seq), batch \(batch) per rank, \(comm.size) ranks × \(Gemm.threads) threads")
        for line in Gemm.kernelReport.prefix(Gemm.onednnWarning == nil ? 3 : 4) { say("  " + line) }
        // --gemm auto: the kernels gift train would measure and choose at this shape (rank 0's, on every rank)
        for (i, c) in computes.enumerated() where c.gemm == "auto" {
            let lines = try KernelChoice.settle(comm: comm, model: config, tokens: T,
                                                what: "batch \(batch) × \(seq), as gift train measures them", precision: c.precision)
            say("  --gemm auto, \(c.precision.rawValue):")
            for l in lines { say("    " + l) }
            let k = GemmKernels.current
            computes[i] = Bench.Compute(gemm: k.backend.rawValue, precision: k.precision, kernel: k.bf16Kernel)
        }
        say("  fp32 GEMM at \(shape): " + refs.map { String(format: "%@ %.1f GFLOP/s", $0.0, $0.1) }.joined(separator: ", ")
            + "; reference: \(best.0)")
        if layers != nil || realVocab != nil {
            // every linear layer's GEMM at this slice's shapes (3 repetitions each: they are large), on
            // the first setting measured
            try computes[0].configure()
            let d = config.dModel, f = config.mlpHiddenSize, kv = config.kvDim
            let shapes = [("qkv", T, d + 2 * kv, d), ("attn_out", T, d, d), ("ff_proj|up", T, 2 * f, d), ("ff_out", T, d, f),
                          ("head", T, realVocab ?? config.vocab, d)]
            let rates = shapes.map { String(format: "%@ %d×%d×%d %.1f", $0.0, $0.1, $0.2, $0.3,
                                            Bench.sgemmGFlops(m: $0.1, n: $0.2, k: $0.3, reps: 3)) }
            say("  linear-layer GEMMs (\(Gemm.summary)), GFLOP/s: " + rates.joined(separator: ", ")
                + (realVocab != nil ? " (head at the real vocabulary \(realVocab!); the step uses \(config.vocab))" : ""))
        }
        say("  attention GEMMs, one thread, QKᵀ \(blk)×\(seq)×\(hd) / PV \(blk)×\(hd)×\(seq): "
            + attention.joined(separator: ", ") + " GFLOP/s (under 2^24 multiply-adds gift runs them on OpenBLAS)")
        var warnings: [String] = [Blas.genericKernelWarning, Gemm.onednnWarning].compactMap { $0 }
        for c in computes {
            try c.configure()
            let r = Bench.sgemmGFlops(m: gemmShape.m, n: gemmShape.n, k: gemmShape.k)
            say("  matmul \(Gemm.summary): \(String(format: "%.1f", r)) GFLOP/s at the same shape"
                + (c.precision == .bf16 ? " (\(Gemm.bf16KernelReason))" : ""))
            if c.precision == .bf16, c.kernel == nil, let w = try Bench.bf16KernelCheck(gemm: c.gemm, m: gemmShape.m, n: gemmShape.n, k: gemmShape.k) {
                say("  " + w); warnings.append(w)
            }
        }
        for w in warnings where w.hasPrefix("warning: OpenBLAS") { say("  " + w) }
        Profiler.enabled = profile
        let results = try Bench.run(model: m, params: params, objectives: opts, batch: batch, seqLen: seq, steps: steps,
                                    warmup: warmup, computes: computes, comm: comm, lora: try loraConfig())
        func q(_ s: String) -> String { "\"" + s + "\"" }
        for r in results {
            say("\(r.objective.rawValue), \(r.computeSummary)\(r.loraR > 0 ? ", LoRA r \(r.loraR)" : ""):")
            for (phase, sec) in r.profile where root {
                print("  " + phase.padding(toLength: 22, withPad: " ", startingAt: 0)
                      + String(format: "%8.1f ms/step  %5.1f%%", sec * 1000, 100 * sec / r.sPerStep))
            }
            say(String(format: "{\"objective\": \"%@\", \"gemm\": %@, \"precision\": \"%@\", \"compute\": %@, \"tokens_per_s\": %.1f, \"s_per_step\": %.4f, \"gflops\": %.1f, \"examples_per_s\": %.3f, \"comm_wait_s\": %.4f, \"lora_r\": %d}",
                       r.objective.rawValue, q(r.compute.gemm), r.compute.precision.rawValue, q(r.computeSummary),
                       r.tokensPerS, r.sPerStep, r.gflops, r.examplesPerS, r.commWait, r.loraR))
        }
        // the summary: the first setting's first objective, plus the GIFT/SFT ratio of every setting
        let first = results[0]
        var summary = String(format: "{\"objective\": \"%@\", \"compute\": %@, \"tokens_per_s\": %.1f, \"s_per_step\": %.4f, \"gflops\": %.1f, \"sgemm_gflops\": %.1f, \"best_gemm\": %@, \"best_gemm_gflops\": %.1f, \"fraction_of_best_gemm\": %.3f, \"peak_rss_mib\": %.1f, \"ranks\": %d, \"threads\": %d, \"examples_per_s\": %.3f, \"comm_wait_s\": %.4f",
                             first.objective.rawValue, q(first.computeSummary), first.tokensPerS, first.sPerStep, first.gflops, sgemm,
                             q(best.0), best.1, first.gflops / best.1, Double(Bench.peakRSS()) / 1048576, comm.size, Gemm.threads,
                             first.examplesPerS, first.commWait)
        let q2 = StrictJSON.quote
        let lanes = results.map(\.computeSummary).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let fields: [(String, String)] = [
            ("cpu", q2(CPU.name)), ("cpu_flags", q2(CPU.flags)), ("blas", q2(Blas.version)), ("blas_core", q2(Blas.core)),
            ("onednn", q2(Gemm.onednnDescription)), ("lanes", "[" + lanes.map(q2).joined(separator: ", ") + "]"),
            ("warnings", "[" + warnings.map(q2).joined(separator: ", ") + "]"),
        ]
        for (k, v) in fields { summary += ", \"\(k)\": \(v)" }
        var ratios: [String] = [], paired: [String] = []
        for c in computes {
            let mine = results.filter { $0.compute == c && $0.loraR == 0 }
            if let s = mine.first(where: { $0.objective == .sft }), let g = mine.first(where: { $0.objective == .gift }) {
                ratios.append(String(format: "%@: %.3f", q(s.computeSummary), g.sPerStep / s.sPerStep))
                // each timed GIFT step over the SFT step run next to it, then the median: slow drifts of
                // the machine's speed cancel within a pair
                let pairs = zip(g.stepTimes, s.stepTimes).map { $0 / $1 }.sorted()
                let mid = pairs.count % 2 == 1 ? pairs[pairs.count / 2] : (pairs[pairs.count / 2 - 1] + pairs[pairs.count / 2]) / 2
                paired.append(String(format: "%@: %.3f", q(s.computeSummary), mid))
            }
        }
        if let lc = try loraConfig() {
            // LoRA step time over the full fine-tuning step beside it (paired per step, then the median),
            // and the training state per base parameter: full = fp32 weights, gradients and both moments;
            // LoRA = the fp32 frozen base plus the adapters' weights, gradients and moments
            let full = results.first { $0.loraR == 0 }!, lo = results.first { $0.loraR > 0 && $0.objective == full.objective && $0.compute == full.compute }!
            let pairs = zip(lo.stepTimes, full.stepTimes).map { $0 / $1 }.sorted()
            let n = Double(ParameterLayout(config).count), a = Double(try LoRALayout(config, lc).count)
            summary += String(format: ", \"lora_r\": %d, \"lora_full_ratio\": %.3f, \"lora_full_ratio_paired\": %.3f, \"state_bytes_per_base_parameter\": {\"full\": %.2f, \"lora\": %.3f, \"lora_bf16_base\": %.3f}",
                              lc.r, lo.sPerStep / full.sPerStep, pairs[pairs.count / 2], 16.0, (4 * n + 16 * a) / n,
                              (Double(try BF16BaseStore.storedBytes(config)) + 16 * a) / n)
        }
        if ratios.count == 1 { summary += ", \"gift_sft_ratio\": " + ratios[0].split(separator: " ").last! }
        if !ratios.isEmpty {
            summary += ", \"gift_sft_ratios\": {" + ratios.joined(separator: ", ") + "}"
            summary += ", \"gift_sft_ratios_paired\": {" + paired.joined(separator: ", ") + "}"
        }
        say(summary + "}")
    }

    /// The preset with only its first `layers` blocks and, with `vocab`, that many embedding/head rows
    /// (mask, EOS and pad ids moved to the top of the smaller vocabulary, as `gift init --vocab` does).
    static func slice(_ c0: ModelConfig, layers: Int?, vocab: Int?) throws -> ModelConfig {
        var c = c0
        if let n = layers {
            guard n >= 1, n <= c0.nLayers else { throw ValidationError("--layers must be 1...\(c0.nLayers) for this preset") }
            c.nLayers = n
        }
        if let v = vocab, v != c0.vocab {
            guard v >= 2 else { throw ValidationError("--vocab must be at least 2") }
            c.vocabSize = v; c.embeddingSize = v; c.maskTokenId = v - 1; c.eosTokenId = v - 2; c.padTokenId = v - 2
        }
        try c.validate(source: "gift bench")
        return c
    }
}
