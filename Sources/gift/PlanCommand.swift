import ArgumentParser
import Foundation
import GiftCore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Per-rank memory and per-step FLOPs and time of a training run, before running it.",
        discussion: """
        For a model folder or preset, the rank count, ZeRO stage (0-3), activation recomputation,
        precision, gradient reduction dtype, micro-batch, gradient accumulation and sequence length: the
        bytes one rank holds (parameters, gathered parameters under ZeRO-3, gradients, moments, the
        activation arenas exactly as allocated, the checkpoint snapshot, the bf16 weight copy, MPI's
        temporaries, the last-good copy, and the runtime measured in this process), the model FLOPs per
        optimizer step on one rank (both GIFT passes and the recomputed forward counted), a time estimate
        from the GEMM rate measured here (compute only), and the bytes each rank sends per step in the
        gradient and parameter collectives. The last line is one JSON object (bytes_per_rank with the parts
        and total, flops_per_step, seconds_per_step_estimate, bytes_moved_per_step). Under mpirun --ranks
        defaults to the job's size and the runtime part includes MPI's own memory. `gift train` prints the
        same plan at start and refuses one that does not fit (see --memory-limit).

        With --lora-r the plan is LoRA's: the stage holds the adapters (r·(in+out) floats per target layer \
        per block: their parameters, gradients and moments), the base is a frozen part of its own (fp32, or \
        with --base-dtype bf16 the bf16 store: 2 bytes a block parameter, the embedding, ln_f and head in \
        fp32, one block decoded at a time) with no gradients or moments, the activations include the \
        adapters' kept products, and the FLOPs count no frozen weight's gradient. The load peak is what a \
        rank holds once the model is loaded: with a bf16 base, the store and one bounded read buffer (the \
        fp32 model is never held); load_peak_bytes in the JSON.
        Examples:
          gift plan --model small --ranks 2 --zero 1 --micro-batch 8 --seq 512
          gift plan --model llada-8b --ranks 16 --zero 3 --recompute blocks --seq 4096 --precision bf16
          gift plan --model llada-8b --lora-r 128 --base-dtype bf16 --ranks 8 --zero 2 --seq 4096
          gift plan --model dream-7b --lora-r 128 --lora-targets q_proj,k_proj,v_proj,o_proj --base-dtype bf16 --seq 2048
        """)

    @Option(help: "A preset (tiny, mini, small, base, llada-8b, dream-7b, …) or a model folder.") var model: String = "small"
    @Option(help: "LoRA rank (0: full fine-tuning, the default).") var loraR: Int = 0
    @Option(help: "With --lora-r: the adapted layers, by the model family's names (LLaDA: q_proj … ff_out; Dream: Qwen2's q_proj … down_proj).")
    var loraTargets: String = "q_proj,k_proj,v_proj"
    @Option(help: "With --lora-r: the adapters' dropout (above 0 each adapted layer's dropped input is kept for backward).") var loraDropout: Double = 0
    @Option(help: "With --lora-r: the frozen base's storage, fp32 or bf16.") var baseDtype: String = "fp32"
    @Option(help: "Ranks (default: the MPI job's size, else 1).") var ranks: Int?
    @Option(help: "ZeRO stage: 0 (replicas), 1 (moments sharded), 2 (gradients too), 3 (parameters too).") var zero: Int = 0
    @Option(help: "Activation recomputation: none or blocks.") var recompute: String = "none"
    @Option(help: "Gradient reduction dtype: fp32 or bf16 (half the bytes moved).") var gradReduceDtype: String = "fp32"
    @Option(help: "Gradient bucket size in MiB.") var bucketMb: Double = 4
    @Option(help: "GEMM rate in GFLOP/s for the time estimate (e.g. a cluster node's, from gift bench) instead of measuring here.") var gflops: Double?
    @Option(help: "bf16 kernel to plan for: native (a 2-byte weight copy) or emulated (4 bytes); default: this machine's.") var bf16Kernel: String?
    @Option(help: "Sequences per micro-batch.") var microBatch: Int = 1
    @Option(help: "Micro-batches per optimizer step.") var gradAccum: Int = 1
    @Option(help: "Sequence length (the longest padded example).") var seq: Int = 512
    @Option(help: "fp32 or bf16.") var precision: String = "fp32"
    @Option(help: "Objective (gift runs pass 1 too; sft does not).") var objective: String = "gift"
    @Option(help: "Checkpoint every N steps, as gift train's flag (0: only at the end, when the checkpoint's snapshot is never held beside a step's communication temporaries).")
    var checkpointEvery: Int = 0

    func run() throws {
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        defer { (comm as? MPICommunicator)?.finalize() }
        guard let pr = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16") }
        guard let rc = Recompute(rawValue: recompute) else { throw ValidationError("--recompute must be none or blocks") }
        guard let grd = GradReduceDtype(rawValue: gradReduceDtype) else { throw ValidationError("--grad-reduce-dtype must be fp32 or bf16") }
        guard bf16Kernel == nil || ["native", "emulated"].contains(bf16Kernel!) else { throw ValidationError("--bf16-kernel must be native or emulated") }
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more") }
        guard gflops.map({ $0 > 0 }) ?? true else { throw ValidationError("--gflops must be positive") }
        guard let kind = ObjectiveKind(rawValue: objective) else { throw ValidationError("--objective: unknown objective '\(objective)'") }
        guard let bd = BaseDtype(rawValue: baseDtype) else { throw ValidationError("--base-dtype must be fp32 or bf16") }
        let config = try Plan.modelConfig(model)
        try Gemm.configure(gemm: "auto", precision: pr)
        // a GEMM of the model's width (rows capped so it takes a moment): the rate for the estimate, and
        // it makes the BLAS allocate its thread buffers before the runtime is measured
        let n = min(max(config.vocab, config.mlpHiddenSize), 4096)
        let rate = gflops ?? Bench.sgemmGFlops(m: min(microBatch * seq, 512), n: n, k: config.dModel, reps: 3)
        let runtime = MemoryInfo.resident() ?? 0
        var s = Plan.Settings()
        s.ranks = ranks ?? comm.size; s.zero = zero; s.microBatch = microBatch; s.gradAccum = gradAccum; s.seqLen = seq
        s.precision = pr; s.objective = kind; s.recompute = rc == .blocks; s.gradReduceBF16 = grd == .bf16
        if loraR > 0 {
            var l = LoRAConfig()
            l.r = loraR; l.dropout = loraDropout
            try l.setTargets(loraTargets)
            s.lora = l
        }
        s.baseBF16 = bd == .bf16
        s.bucketMB = bucketMb; s.checkpointEvery = checkpointEvery; s.nativeBF16 = bf16Kernel.map { $0 == "native" } ?? (Gemm.bf16Kernel == .native); s.runtimeBytes = runtime
        let plan = try Plan(config: config, s)
        if comm.rank == 0 { for line in plan.report(gflops: rate) { print(line) } }
    }
}
