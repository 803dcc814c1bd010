import Foundation

/// The run's state on disk: resuming from a checkpoint, writing checkpoints (`CheckpointWriter`, in the
/// background) and the trained result (the model, a drop-in replacement of its source folder, or under
/// LoRA the adapter in PEFT's format; under ZeRO-3 gathered unit by unit and streamed by rank 0).
final class TrainCheckpoints {
    let cfg: RunConfig
    let comm: Communicator
    let modelConfig: ModelConfig
    let stage: any ParallelStrategy
    let opt: AdamW
    let lora: LoRALayout?
    let loraIdentity: LoRAIdentity?
    /// The trained buffer addressed by flat offset (valid over this rank's shard under ZeRO-3).
    let trainedBase: UnsafeMutablePointer<Float>
    let trainedCount: Int
    var log: (String) -> Void = { _ in }
    public private(set) var resumedFrom: String?
    var writer: CheckpointWriter?

    init(config: RunConfig, comm: Communicator, modelConfig: ModelConfig, stage: any ParallelStrategy, opt: AdamW,
         lora: LoRALayout?, loraIdentity: LoRAIdentity?, trained: FloatBuffer, trainedCount: Int) {
        cfg = config; self.comm = comm; self.modelConfig = modelConfig; self.stage = stage; self.opt = opt
        self.lora = lora; self.loraIdentity = loraIdentity; self.trainedCount = trainedCount
        trainedBase = trained.pointer - (stage.weights?.shard.lowerBound ?? 0)
    }

    /// Loads the checkpoint `spec` names ("auto" or a folder) into the parameters and this rank's moments;
    /// returns its state (nil: nothing to resume).
    func resume(_ spec: String?, runDir: String, dataFingerprint: UInt64, globalBatch: Int, totalSteps: Int) throws -> TrainState? {
        guard let spec else { return nil }
        let n = trainedCount, sh = opt.shard
        // the moments of this rank's shard; the parameters: all of them, or (ZeRO-3) this rank's shard
        let fm = FloatBuffer(count: sh.count), fv = FloatBuffer(count: sh.count)
        let t0 = Date()
        let within = Resume.Within(params: stage.weights?.shard ?? 0..<n, moments: sh)
        guard let (path, man) = try Resume.locateAndLoad(spec, runDir: runDir, params: trainedBase, m: fm.pointer - sh.lowerBound,
                                                         v: fv.pointer - sh.lowerBound, within: within,
                                                         log: comm.rank == 0 ? log : { _ in }) else {
            if comm.rank == 0 { log("resume auto: no checkpoint in \(runDir)/checkpoints; starting from step 0") }
            return nil
        }
        try Resume.checkCompatible(man, path: path, config: cfg, model: modelConfig, dataFingerprint: dataFingerprint,
                                   globalBatch: globalBatch)
        try Resume.checkAdapters(man, path: path, run: loraIdentity)
        opt.m.pointer.update(from: fm.pointer, count: sh.count)
        opt.v.pointer.update(from: fv.pointer, count: sh.count)
        try stage.weights?.dropAll()
        opt.step = man.state.adamStep
        resumedFrom = path
        if comm.rank == 0 {
            let secs = Date().timeIntervalSince(t0)
            log(String(format: "resumed from %@: step %d of %d, written by %d ranks, now %d (read and verified %.1f MB of state in %.2f s, %.0f MB/s)",
                       path, man.state.step, totalSteps, man.worldSize, comm.size, Double(3 * n * 4) / 1e6, secs,
                       Double(3 * n * 4) / 1e6 / max(secs, 1e-9)))
        }
        return man.state
    }

    /// The background writer of the run's checkpoints (never deleting the one resumed from).
    func startWriter(runDir: String, options: CheckpointOptions, layout: ParameterLayout, table: TensorTable,
                     dataFingerprint: UInt64) {
        let w = CheckpointWriter(runDir: runDir, comm: comm, options: options, layout: layout,
                                 runConfig: cfg.json, dataFingerprint: dataFingerprint)
        if lora != nil { w.trainable = table; w.lora = loraIdentity }
        w.kernels = GemmKernels.current
        w.log = comm.rank == 0 ? log : { _ in }
        w.protected = resumedFrom
        writer = w
    }

    /// A checkpoint after `stepsDone` steps (collective).
    func save(stepsDone: Int, badSteps: Int, stepsPerEpoch: Int, globalBatch: Int) throws {
        try writer!.save(state: TrainState(step: stepsDone, adamStep: opt.step, consecutiveBadSteps: badSteps),
                         epoch: Double(stepsDone) / Double(stepsPerEpoch), examplesSeen: stepsDone * globalBatch,
                         params: trainedBase, m: opt.m.pointer, v: opt.v.pointer, momentShard: opt.shard)
    }

    /// The trained result in `dir` from `trained` (the final buffer, or a broken run's last good one):
    /// every rank calls it (collective under ZeRO-3).
    func saveResult(_ dir: String, trained: FloatBuffer) throws {
        if let sharded = stage.weights { try saveSharded(dir, sharded: sharded, shard: trained) }
        else if comm.rank == 0 { try saveReplicated(dir, trained: trained) }
    }

    /// A drop-in replacement of a source folder (its dtype, sharding, tokenizer and remote code); fp32 for
    /// a preset; under LoRA the adapter.
    private func saveReplicated(_ dir: String, trained t: FloatBuffer) throws {
        if let lora {
            try PEFTAdapter.save(dir, layout: lora, weights: t.pointer, baseModel: cfg.model)
            return
        }
        if let src = sourceFolder {
            _ = try ModelCompanions.saveLike(src, dst: dir, config: modelConfig, parameters: t)
        } else {
            try ModelFolder.save(dir, config: modelConfig, parameters: t)
        }
    }

    /// ZeRO-3: the model from every rank's shard (`shard`: this rank's), gathered unit by unit (the
    /// embedding, each block, ln_f with the head) and streamed by rank 0 into safetensors shards
    /// (`StreamingModelWriter`): no rank holds more than one unit beside its shard. Collective.
    private func saveSharded(_ dir: String, sharded: ShardedParameters, shard: FloatBuffer) throws {
        try stage.drain()
        let src = sourceFolder
        let format = try src.map { try ModelCompanions.weightFormat(of: $0) }
        let dtype: SafetensorsDType = format?.dtype == .BF16 ? .BF16 : .F32
        let writer = comm.rank == 0
            ? try StreamingModelWriter(dir: dir, config: modelConfig, dtype: dtype, maxShardBytes: format?.maxShardBytes ?? Int.max) : nil
        let mine = sharded.shard
        for u in sharded.units {
            let buf = FloatBuffer(count: u.count)
            let parts = piecesOf(u, shards: sharded.shards), p = parts[comm.rank]
            (buf.pointer + p.lowerBound).update(from: shard.pointer + (u.lowerBound + p.lowerBound - mine.lowerBound), count: p.count)
            try comm.allgather(buf.pointer, shards: parts)
            try writer?.append(buf.pointer, count: u.count)
        }
        try writer?.finish()
        if let src, comm.rank == 0 { _ = try ModelCompanions.copy(from: src, to: dir, dtype: dtype) }
    }

    /// `--model` when it is a folder with a config.json (else a preset).
    private var sourceFolder: String? {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: cfg.model + "/" + ModelFolder.configFile, isDirectory: &isDir) && !isDir.boolValue
            ? cfg.model : nil
    }

    /// A resumed run's metrics.jsonl keeps the lines of the steps the checkpoint holds; later ones are
    /// trained again.
    static func truncateMetrics(_ path: String, toStep startStep: Int) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let kept = (try String(contentsOfFile: path, encoding: .utf8)).split(separator: "\n")
            .filter { line in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let st = (o["step"] as? NSNumber)?.intValue else { return false }
                return st <= startStep
            }
        try Checkpoint.writeAtomically(Data(kept.map { $0 + "\n" }.joined().utf8), to: path)
    }
}
