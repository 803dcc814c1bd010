import Foundation
import GiftCore

extension TrainCommand {
    /// The memory plan of this run (rank 0 prints it), refused before the model is loaded or any training
    /// buffer allocated when it exceeds --memory-limit or what the node reports (`MemoryFit`). LoRA runs
    /// are not checked: the plan is for full fine-tuning (its gradients and moments are the adapters' only).
    func checkMemoryPlan(_ cfg: RunConfig, data: TrainData, comm: Communicator) throws {
        guard !cfg.lora.enabled && cfg.adapter.isEmpty else { return }
        // which bf16 kernel: the weight copy's size. --gemm auto measures the kernels once the model is
        // loaded (Trainer.run): the plan counts the emulation's fp32 copy, the larger, unless
        // GIFT_BF16_KERNEL=native makes oneDNN's native kernel the one candidate
        let forcedNative = cfg.precision == .bf16 && ProcessInfo.processInfo.environment["GIFT_BF16_KERNEL"] == "native"
        if cfg.gemm == .auto {
            try Gemm.configure(gemm: "openblas", precision: cfg.precision, bf16Kernel: cfg.precision == .bf16 ? .emulated : nil,
                               reason: "provisional, until the run measures")
        } else {
            try Gemm.configure(gemm: cfg.gemm.rawValue, precision: cfg.precision)
        }
        var s = Plan.Settings()
        s.ranks = comm.size; s.zero = cfg.zero; s.microBatch = cfg.microBatch; s.gradAccum = cfg.gradAccum
        s.seqLen = max(2, min(cfg.maxLength, data.maxExampleLength + 1))   // the trainer's activation length
        s.precision = cfg.precision; s.objective = cfg.objective.kind; s.recompute = cfg.recompute == .blocks
        s.gradReduceBF16 = (cfg.json["grad_reduce_dtype"] as? String) == "bf16"   // the field, where this build has it
        s.bucketMB = cfg.bucketMB; s.nativeBF16 = cfg.gemm == .auto ? forcedNative : Gemm.bf16Kernel == .native
        s.checkpointEvery = checkpointEvery
        s.runtimeBytes = MemoryInfo.resident() ?? 0
        let plan = try Plan(config: try Plan.modelConfig(cfg.model), s)
        if comm.rank == 0 {
            FileHandle.standardError.write(Data(plan.report(gflops: nil).joined(separator: "\n").appending("\n").utf8))
        }
        let env = ProcessInfo.processInfo.environment
        let local = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["MPI_LOCALNRANKS"] ?? "") ?? 1
        let limit = cfg.memoryLimit.isEmpty
            ? MemoryFit.nodeLimit(localRanks: local)
            : MemoryFit.parseBytes(cfg.memoryLimit).map { MemoryFit.Limit(bytes: $0, source: "--memory-limit \(cfg.memoryLimit)") }
        // rank 0 (the largest rank: the last-good copy) decides for all, so the job stops with one message
        var refused = [limit.map { plan.totalBytes > $0.bytes ? 1.0 : 0.0 } ?? 0]
        try refused.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        guard refused[0] > 0 else { return }
        if comm.rank == 0, let limit { try MemoryFit.check(plan, limit: limit) }
        try comm.barrier()   // the other ranks wait for rank 0's abort
        throw GiftError(.config, "the memory plan does not fit (rank 0 says why)")
    }
}
