import ArgumentParser
import Foundation
import GiftCore

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training speed: whole optimizer steps per objective, against sgemm in the same run.",
        discussion: """
        Each objective in --objective (comma-separated) runs --warmup untimed steps, then --steps timed
        steps (pass 1 where the objective has one, pass 2 forward, backward, AdamW) on a synthetic batch;
        the objectives' steps are interleaved (A, B, A, B, ...) and each is the median of its steps, so
        their ratio holds on a noisy machine.
        It prints one JSON line per objective and, last, one JSON object with the summary: tokens_per_s,
        gflops (model FLOPs, no recompute counted) and sgemm_gflops (cblas_sgemm at the model's largest
        matmul shape, measured in the same run), the fraction, peak memory, and the GIFT/SFT step ratio
        when both ran. Threads: OPENBLAS_NUM_THREADS (default: all cores). Under mpirun every rank runs
        its own batch and gradients are summed as in training; the figures are then for all ranks
        together (examples_per_s, tokens_per_s) plus the median communication wait per step.
        Example: OPENBLAS_NUM_THREADS=2 gift bench --preset small --objective sft,gift
        """)

    @Option(help: "Preset model shape: tiny, small or base (ignored with --model).") var preset: String = "small"
    @Option(help: "A model folder instead of a preset.") var model: String?
    @Option(help: "Sequence length.") var seq: Int = 512
    @Option(help: "Sequences per step.") var batch: Int = 2
    @Option(help: "Timed steps per objective.") var steps: Int = 3
    @Option(help: "Untimed warm-up steps per objective.") var warmup: Int = 1
    @Flag(help: "Print the time per phase of a step (pass 1, pass 2 forward, head, loss, backward, optimizer).")
    var profile = false
    @OptionGroup var objectiveFlags: ObjectiveFlags

    func run() throws {
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        defer { (comm as? MPICommunicator)?.finalize() }
        let root = comm.rank == 0
        func say(_ s: String) { if root { print(s) } }
        let config: ModelConfig, params: FloatBuffer
        if let model {
            (config, params) = try ModelFolder.load(model)
        } else {
            config = try ModelConfig.preset(preset)
            params = ParameterLayout(config).initialize(seed: 0)
        }
        guard seq > 1, batch > 0, steps > 0, warmup >= 0 else { throw ValidationError("--seq, --batch, --steps must be positive") }
        let m = Transformer(config: config, maxSeqLen: seq)
        let kinds = objectiveFlags.objective.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        let opts = try kinds.map { try objectiveFlags.options(kind: $0) }
        let T = batch * seq
        let sgemm = Bench.sgemmGFlops(m: T, n: max(config.vocab, config.mlpHiddenSize, config.dModel), k: config.dModel)
        say("bench: \(model ?? preset), seq \(seq), batch \(batch) per rank, \(comm.size) ranks × \(Gemm.threads) BLAS threads, sgemm \(String(format: "%.1f", sgemm)) GFLOP/s")
        Profiler.enabled = profile
        let results = try Bench.run(model: m, params: params, objectives: opts, batch: batch, seqLen: seq, steps: steps,
                                    warmup: warmup, comm: comm)
        for r in results {
            for (phase, sec) in r.profile where root {
                print("  " + phase.padding(toLength: 22, withPad: " ", startingAt: 0)
                      + String(format: "%8.1f ms/step  %5.1f%%", sec * 1000, 100 * sec / r.sPerStep))
            }
            say(String(format: "{\"objective\": \"%@\", \"tokens_per_s\": %.1f, \"s_per_step\": %.4f, \"gflops\": %.1f, \"examples_per_s\": %.3f, \"comm_wait_s\": %.4f}",
                       r.objective.rawValue, r.tokensPerS, r.sPerStep, r.gflops, r.examplesPerS, r.commWait))
        }
        let first = results[0]
        var summary = String(format: "{\"objective\": \"%@\", \"tokens_per_s\": %.1f, \"s_per_step\": %.4f, \"gflops\": %.1f, \"sgemm_gflops\": %.1f, \"fraction_of_sgemm\": %.3f, \"peak_rss_mib\": %.1f, \"ranks\": %d, \"examples_per_s\": %.3f, \"comm_wait_s\": %.4f",
                             first.objective.rawValue, first.tokensPerS, first.sPerStep, first.gflops, sgemm,
                             first.gflops / sgemm, Double(Bench.peakRSS()) / 1048576, comm.size, first.examplesPerS, first.commWait)
        if let s = results.first(where: { $0.objective == .sft }), let g = results.first(where: { $0.objective == .gift }) {
            summary += String(format: ", \"gift_sft_ratio\": %.3f", g.sPerStep / s.sPerStep)
        }
        say(summary + "}")
    }
}
