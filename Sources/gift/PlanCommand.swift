import ArgumentParser
import Foundation
import GiftCore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Per-rank memory and per-step FLOPs and time of a training run, before running it.",
        discussion: """
        For a model folder or preset, the rank count, ZeRO stage (0 or 1, the stages gift trains with),
        precision, micro-batch, gradient accumulation and sequence length: the bytes one rank holds
        (parameters, gradients, moments, the activation arenas exactly as allocated, the checkpoint
        snapshot, the bf16 weight copy, MPI's temporary, and the runtime measured in this process), the
        model FLOPs per optimizer step on one rank (both GIFT passes counted) and a time estimate from the
        GEMM rate measured here. The last line is one JSON object (bytes_per_rank with the parts and total,
        flops_per_step, seconds_per_step_estimate). Under mpirun --ranks defaults to the job's size and the
        runtime part includes MPI's own memory.
        Example: gift plan --model small --ranks 2 --zero 1 --micro-batch 8 --seq 512
        """)

    @Option(help: "A preset (tiny, mini, small, base, llada-8b) or a model folder.") var model: String = "small"
    @Option(help: "Ranks (default: the MPI job's size, else 1).") var ranks: Int?
    @Option(help: "ZeRO stage: 0 or 1.") var zero: Int = 0
    @Option(help: "Sequences per micro-batch.") var microBatch: Int = 1
    @Option(help: "Micro-batches per optimizer step.") var gradAccum: Int = 1
    @Option(help: "Sequence length (the longest padded example).") var seq: Int = 512
    @Option(help: "fp32 or bf16.") var precision: String = "fp32"
    @Option(help: "Objective (gift runs pass 1 too; sft does not).") var objective: String = "gift"

    func run() throws {
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        defer { (comm as? MPICommunicator)?.finalize() }
        guard let pr = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16") }
        guard let kind = ObjectiveKind(rawValue: objective) else { throw ValidationError("--objective: unknown objective '\(objective)'") }
        let config: ModelConfig
        if ModelConfig.presetNames.contains(model) && !FileManager.default.fileExists(atPath: model) {
            config = try ModelConfig.preset(model)
        } else {
            let path = (model as NSString).appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): cannot read (not a preset or model folder)") }
            config = try ModelConfig.parse(data, source: path)
        }
        try Gemm.configure(gemm: "auto", precision: pr)
        // a GEMM of the model's width (rows capped so it takes a moment): the rate for the estimate, and
        // it makes the BLAS allocate its thread buffers before the runtime is measured
        let n = min(max(config.vocab, config.mlpHiddenSize), 4096)
        let gflops = Bench.sgemmGFlops(m: min(microBatch * seq, 512), n: n, k: config.dModel, reps: 3)
        let runtime = MemoryInfo.resident() ?? 0
        let plan = try Plan(config: config, ranks: ranks ?? comm.size, zero: zero, microBatch: microBatch, gradAccum: gradAccum,
                            seqLen: seq, precision: pr, objective: kind, nativeBF16: Gemm.bf16Kernel == .native, runtimeBytes: runtime)
        if comm.rank == 0 { for line in plan.report(gflops: gflops) { print(line) } }
    }
}
