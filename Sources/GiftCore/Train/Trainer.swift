import Foundation

/// What a finished (or stopped) run reports.
public struct TrainSummary: Sendable {
    public var steps: Int
    public var firstLoss: Double, finalLoss: Double
    public var finalValLoss: Double?
    public var tokensPerS: Double
    public var seconds: Double
    public var skippedSteps: Int
    public var text: String
    /// Set when the run ended broken (`RunHealth`): the summary's first sentence; the command exits non-zero.
    public var failure: String? = nil
}

/// The training loop of one rank: its shard of every global batch, both GIFT passes and backward
/// locally, gradients summed through the communicator, one identical AdamW step everywhere.
public final class Trainer {
    public let cfg: RunConfig
    public let comm: Communicator
    public let model: Transformer
    /// The model's weights as the model reads them (frozen under LoRA; under ZeRO-3 the gathered view,
    /// resident only block by block while the model runs).
    public let params: FloatBuffer
    /// What the optimizer trains: `params` itself, under LoRA the adapters (`lora`'s table), under ZeRO-3
    /// this rank's shard; the gradients, moments, sync, clipping and checkpoints all follow this buffer.
    public let trainable: FloatBuffer
    /// `trainable` addressed by flat offset (valid over `opt.shard` under ZeRO-3).
    let trainableBase: UnsafeMutablePointer<Float>
    /// ZeRO-3: the sharded weights, gathered block by block (`model.weightSource`).
    public let sharded: ShardedParameters?
    /// ZeRO-2/3: gradients reduce-scattered bucket by bucket during backward into this rank's shard.
    let zeroGrads: ShardedGradients?
    /// ZeRO-2/3's communication thread (gathers and reduce-scatters, in program order).
    let commThread: CommThread?
    public let lora: LoRALayout?
    /// The adapters' identity in checkpoints: their config and the base's fingerprint.
    public let loraIdentity: LoRAIdentity?
    let table: TensorTable
    /// A LoRA run's frozen base in bf16 (`--base-dtype bf16`), or nil.
    public let baseStore: BF16BaseStore?
    /// Where backward adds the gradients (full size; under ZeRO-2/3 reserved, resident only in flight).
    let grads: UnsafeMutablePointer<Float>
    private let gradsOwner: AnyObject
    let opt: AdamW
    let runner: ObjectiveRunner
    public let data: TrainData
    let eos: Int32
    /// Examples per optimizer step over all ranks, and per rank.
    public let globalBatch: Int, rankBatch: Int
    public let stepsPerEpoch: Int, totalSteps: Int, warmupSteps: Int
    /// gift-ref: response betas of each training example under the frozen initial weights.
    var refBetas: [[Float]] = []
    /// Every batch of gift-ref is padded to this length (the cached betas are for that form).
    let fixedPadLength: Int?
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    var progress: ProgressReporter?
    /// Overlapped bucketed allreduce (several ranks, no ZeRO).
    let sync: GradientSync?
    /// ZeRO-1/2/3: each rank's shard of the flat buffer, and this rank's summed gradient shard.
    let shards: [Range<Int>]
    let gradShard: FloatBuffer?
    /// The ZeRO stage in effect (1 falls back to 0 on one rank; 2 and 3 run their machinery on any).
    public let zeroStage: Int

    /// `adapters`: LoRA's initial adapters (a PEFT folder's, `gift train --adapter`); nil: PEFT's initialisation.
    /// `baseStore`: the frozen base kept in bf16 (`params` is then its `view`).
    /// ZeRO-3: `params` may be the whole model or only this rank's shard (`shardRanges` of the layout).
    public init(config: RunConfig, comm: Communicator = SingleProcess(), modelConfig: ModelConfig, params: FloatBuffer,
                data: TrainData, adapters: FloatBuffer? = nil, baseStore: BF16BaseStore? = nil) throws {
        cfg = config; self.comm = comm; self.data = data; self.baseStore = baseStore
        if baseStore != nil && !config.lora.enabled { throw GiftError(.config, "a bf16 base store needs LoRA (a frozen base)") }
        if config.zero == 3 && config.lora.enabled {
            throw GiftError(.config, "--zero 3 shards trained parameters; under LoRA only the adapters train (the base is frozen; keep it in bf16 with --base-dtype bf16): use --zero 1 or 2 to shard the adapters' moments and gradients")
        }
        zeroStage = config.zero == 1 && comm.size == 1 ? 0 : config.zero
        let nModel = ParameterLayout(modelConfig).count
        if zeroStage >= 2 { commThread = CommThread(name: "gift-zero-comm") } else { commThread = nil }
        if zeroStage == 3 {
            let mine = shardRanges(count: nModel, parts: comm.size)[comm.rank]
            let master: FloatBuffer
            if params.count == nModel && mine.count != nModel {
                master = FloatBuffer(count: mine.count)
                master.pointer.update(from: params.pointer + mine.lowerBound, count: mine.count)
            } else { master = params }
            let sp = try ShardedParameters(config: modelConfig, comm: comm, thread: commThread!, master: master,
                                           bf16Matrices: config.precision == .bf16)
            sharded = sp
            self.params = FloatBuffer(viewOf: sp.view.pointer, count: nModel, owner: sp)
        } else {
            sharded = nil
            if params.count != nModel { throw GiftError(.mismatch, "the model has \(nModel) parameters; \(params.count) were given") }
            self.params = params
        }
        if config.lora.enabled {
            let ll = try LoRALayout(modelConfig, config.lora)
            if let a = adapters, a.count != ll.count {
                throw GiftError(.mismatch, "the adapters hold \(a.count) values; r \(config.lora.r) on \(config.lora.targets.map(\.rawValue).joined(separator: ",")) needs \(ll.count)")
            }
            lora = ll; trainable = adapters ?? ll.initialize(seed: config.seed); table = ll.table
            loraIdentity = LoRAIdentity(config: config.lora,
                                        baseFingerprint: baseStore?.fingerprint() ?? LoRAIdentity.fingerprint(params.pointer, count: params.count),
                                        baseModel: config.model)
        } else {
            lora = nil; trainable = sharded?.master ?? params; table = ParameterLayout(modelConfig).table; loraIdentity = nil
        }
        trainableBase = trainable.pointer - (sharded?.shard.lowerBound ?? 0)
        try Gemm.configure(gemm: config.gemm.rawValue, precision: config.precision)
        model = Transformer(config: modelConfig, maxSeqLen: max(2, min(config.maxLength, data.maxExampleLength + 1)))
        model.weightSource = baseStore ?? sharded
        eos = Int32(modelConfig.eosTokenId)
        globalBatch = comm.size * config.microBatch * config.gradAccum
        rankBatch = config.microBatch * config.gradAccum
        stepsPerEpoch = data.train.count / globalBatch
        if stepsPerEpoch == 0 {
            throw GiftError(.config, "a global batch of \(globalBatch) examples (\(comm.size) ranks × micro_batch \(config.microBatch) × grad_accum \(config.gradAccum)) is larger than the \(data.train.count) training examples")
        }
        totalSteps = config.maxSteps > 0 ? config.maxSteps : config.epochs * stepsPerEpoch
        warmupSteps = LRSchedule.warmupSteps(ratio: config.warmupRatio, total: totalSteps)
        shards = shardRanges(count: table.count, parts: comm.size)
        let bucketFloats = Int(config.bucketMB * 262_144), bf16Reduce = config.gradReduceDtype == .bf16
        if zeroStage >= 2 {
            let zg = try ShardedGradients(comm: comm, thread: commThread!, count: table.count, bucketFloats: bucketFloats, bf16: bf16Reduce)
            zeroGrads = zg; grads = zg.grads.pointer; gradsOwner = zg; gradShard = zg.gradShard
        } else {
            let g = FloatBuffer(count: table.count)
            zeroGrads = nil; grads = g.pointer; gradsOwner = g
            gradShard = zeroStage == 1 ? FloatBuffer(count: shards[comm.rank].count) : nil
        }
        sync = comm.size > 1 && zeroStage == 0
            ? GradientSync(comm: comm, count: table.count, bucketFloats: bucketFloats, bf16: bf16Reduce) : nil
        opt = AdamW(table: table, weightDecay: config.weightDecay, shard: zeroStage > 0 ? shards[comm.rank] : nil)
        opt.beta1 = config.beta1; opt.beta2 = config.beta2; opt.eps = config.adamEps
        let maxLen = model.rope.maxLen
        runner = ObjectiveRunner(model: model, options: config.objective, capacityTokens: config.microBatch * maxLen,
                                 maxSeqLen: maxLen, recompute: config.recompute == .blocks)
        fixedPadLength = config.objective.kind == .giftRef ? maxLen : nil
        if let lora { runner.attachLoRA(lora, weights: trainable.pointer) }
    }

    /// The weights to evaluate and sample with: the model, or under LoRA base + adapters merged.
    /// Collective under ZeRO-3 (every rank gets the whole model; call it on every rank).
    public func mergedWeights() throws -> FloatBuffer {
        if let sharded { return try sharded.materialize() }
        guard let lora else { return params }
        let base = baseStore?.materialize() ?? params
        return lora.merged(base: base.pointer, adapters: trainable.pointer)
    }

    // MARK: batches

    /// The global batch of optimizer step `step`: dataset indices in this epoch's seeded order.
    public func globalIndices(step: Int) -> [Int] {
        let epoch = step / stepsPerEpoch, pos = step % stepsPerEpoch
        if epoch != cachedEpoch {
            cachedOrder = cfg.groupByLength
                ? EpochOrder(lengths: data.train.map(\.length), batch: globalBatch, seed: cfg.seed, epoch: epoch).order
                : EpochOrder(count: data.train.count, seed: cfg.seed, epoch: epoch).order
            cachedEpoch = epoch
        }
        return Array(cachedOrder[(pos * globalBatch)..<((pos + 1) * globalBatch)])
    }
    var cachedEpoch = -1, cachedOrder: [Int] = []

    /// Every sequence of the global batch, padded with EOS to one length (the longest, plus one EOS),
    /// so the padded form of an example and the normaliser do not depend on how ranks and micro-batches
    /// split the batch.
    /// `betas`: gift-ref's cached betas of `examples` (indexed like them), attached to each sequence.
    func sequences(_ indices: [Int], from examples: [Example], padTo: Int? = nil, betas: [[Float]] = []) -> [TrainSequence] {
        let padded = Batching.pad(indices.map { (examples[$0], $0) }, eos: eos, toLength: padTo, minEOS: cfg.extraEOS)
        return padded.map { p in
            var s = TrainSequence(tokens: p.tokens, promptLength: p.promptLength, exampleIndex: p.exampleIndex)
            if cfg.padLoss == .off { s.contentLength = p.contentLength }
            if !betas.isEmpty { s.cachedBetas = betas[p.exampleIndex] }
            return s
        }
    }

    // MARK: the loop

    public struct StepResult {
        public var stats: StepStats; public var gradNorm: Double; public var lr: Double; public var skipped: Bool
        public var tokens: Int; public var commWait: Double
        /// EOS padding in the global batch (tokens that are no example's), for the padding fraction.
        public var padTokens = 0
    }

    /// One optimizer step: this rank's micro-batches, gradient sum over ranks, clip, AdamW.
    public func step(_ step: Int) throws -> StepResult {
        if let f = faultStep, step == f, comm.rank == faultRank {
            throw GiftError(.data, "injected fault at step \(step + 1) (GIFT_FAULT_RANK/GIFT_FAULT_STEP)")
        }
        let indices = globalIndices(step: step)
        // the padded length and the normaliser come from the lengths: a rank reads only its own examples' ids
        let padTo = fixedPadLength ?? ((indices.map { data.train[$0].length }.max() ?? 0) + cfg.extraEOS)
        let normalizer = LossNormalizer.of(indices.map { data.train[$0] }, padTo: padTo, padLoss: cfg.padLoss, minEOS: cfg.extraEOS)
        let myIndices = Array(indices[(comm.rank * rankBatch)..<((comm.rank + 1) * rankBatch)])
        try checkIDs(myIndices, of: data.train)
        let mine = sequences(myIndices, from: data.train, padTo: padTo, betas: refBetas)
        if let zg = zeroGrads { zg.beginStep(); commThread!.resetWaited() } else { grads.update(repeating: 0, count: table.count) }
        var stats = StepStats()
        // bf16: the weights' bf16 copy is made once here, after the previous optimizer step, and used by
        // every micro-batch of this step (not over reserved weights: a bf16 base, ZeRO-3's gathered view)
        try Gemm.withWeightMirror(params.pointer, count: model.weightSource == nil ? params.count : 0) {
        for m in 0..<cfg.gradAccum {
            let micro = Array(mine[(m * cfg.microBatch)..<((m + 1) * cfg.microBatch)])
            let last = m == cfg.gradAccum - 1
            // ZeRO-2/3 reduce every micro-batch's buckets as backward finishes them; otherwise the
            // last micro-batch's buckets go while the rest of its backward runs
            var ready: ((Int) -> Void)? = nil
            if let zg = zeroGrads { zg.begin(); ready = { zg.ready(from: $0) } }
            else if last, let sync { sync.begin(grads); ready = { sync.ready(from: $0) } }
            let (st, _) = runner.run(params.pointer, grads: grads, micro, seed: cfg.seed, step: step,
                                     normalizer: normalizer, ready: ready)
            try zeroGrads?.finish()
            stats.add(st)
        }
        }
        // commWait: time the loop waits on gradient communication (the bucket tail, or ZeRO-1's
        // reduce-scatter and allgather)
        var wait = 0.0
        func timed(_ body: () throws -> Void) rethrows {
            let t = DispatchTime.now().uptimeNanoseconds
            try body()
            wait += Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
        }
        if let sync {
            wait = try sync.finish()
        } else if let commThread {
            wait = commThread.waited
        } else if let gs = gradShard {
            try timed {
                if cfg.gradReduceDtype == .bf16 { try comm.reduceScatterSumBF16(grads, gs.pointer, shards: shards) }
                else { try comm.reduceScatterSum(grads, gs.pointer, shards: shards) }
            }
        }
        var sums = [stats.loss, Double(stats.maskedTokens), Double(stats.responseTokens), stats.weightSum,
                    stats.betaSum, Double(stats.betaCount), Double(stats.nonFinite)]
        try comm.allreduceSum(&sums)
        stats.loss = sums[0]; stats.maskedTokens = Int(sums[1]); stats.responseTokens = Int(sums[2])
        stats.weightSum = sums[3]; stats.betaSum = sums[4]; stats.betaCount = Int(sums[5]); stats.nonFinite = Int(sums[6])
        let lr = cfg.schedule.lr(step: step, total: totalSteps, warmup: warmupSteps, base: cfg.lr, minRatio: cfg.minLRRatio)
        let tokens = indices.count * padTo
        let padTokens = tokens - indices.reduce(0) { $0 + data.train[$1].length }
        // the gradient this rank updates from: all of it, or (ZeRO) its shard, indexed by flat offset
        let shard = opt.shard
        let g: UnsafeMutablePointer<Float> = gradShard.map { $0.pointer - shard.lowerBound } ?? grads
        var sq = [GradClip.norm(g + shard.lowerBound, count: shard.count)]
        sq[0] *= sq[0]
        if gradShard != nil { try comm.allreduceSum(&sq) }
        if zeroStage == 1 { gradientBytesReduced += table.count * (cfg.gradReduceDtype == .bf16 ? 2 : 4) }
        let norm = sq[0].squareRoot()
        if stats.nonFinite > 0 || !stats.loss.isFinite || !norm.isFinite {
            return StepResult(stats: stats, gradNorm: norm, lr: lr, skipped: true, tokens: tokens, commWait: wait, padTokens: padTokens)
        }
        GradClip.scale(g + shard.lowerBound, count: shard.count, norm: norm, maxNorm: cfg.maxGradNorm)
        beforeUpdate?(step)
        opt.update(params: trainableBase, grads: g, lr: Float(lr))
        if let sharded {
            try sharded.dropAll()   // the next gathers read the updated shards
        } else if gradShard != nil {
            try timed { try comm.allgather(trainable.pointer, shards: shards) }
            gatheredBytes += (table.count - shard.count) * 4
        }
        return StepResult(stats: stats, gradNorm: norm, lr: lr, skipped: false, tokens: tokens, commWait: wait, padTokens: padTokens)
    }

    /// Gradient bytes this rank handed to the reduce-scatter (ZeRO-1) or, with `sync`, see its count.
    var gradientBytesReduced = 0
    /// Parameter bytes this rank received in the allgather after the update (ZeRO-1/2).
    var gatheredBytes = 0
    /// Bytes this rank handed to (gradients) or received from (parameters) the collectives so far.
    public var bytesMoved: (gradients: Int, parameters: Int) {
        ((sync?.bytesReduced ?? 0) + gradientBytesReduced + (zeroGrads?.bytesReduced ?? 0),
         gatheredBytes + (sharded?.bytesGathered ?? 0))
    }
    public var gradientBytesPerStep: Int { table.count * (cfg.gradReduceDtype == .bf16 ? 2 : 4) }

    /// Called in a finite step just before the update, with the steps done (the trained buffer is good).
    var beforeUpdate: ((Int) -> Void)?

    /// Testing aid for fault handling: GIFT_FAULT_RANK=r GIFT_FAULT_STEP=s makes rank r fail at step s.
    let faultRank = Int(ProcessInfo.processInfo.environment["GIFT_FAULT_RANK"] ?? "") ?? -1
    let faultStep = Int(ProcessInfo.processInfo.environment["GIFT_FAULT_STEP"] ?? "").map { $0 - 1 }

    /// Before the first step: every rank must have the same run config, model and data (a mismatch stops
    /// all ranks naming the field), then rank 0's parameters are copied to all.
    public func synchronizeStart() throws {
        guard comm.size > 1 else { return }
        var fields: [(String, UInt64)] = []
        let cj = cfg.json
        for k in cj.keys.sorted() { var h = FNV1a(); h.add("\(cj[k]!)"); fields.append(("run config field '\(k)'", h.value)) }
        var hm = FNV1a(); hm.add(String(decoding: model.config.jsonData(), as: UTF8.self)); fields.append(("model config", hm.value))
        if let id = data.identity {
            // a prepared set: its files' checksums and the split, so no rank reads other ranks' examples
            fields.append(("training data (prepared set: its files' checksums and the split)", id))
        } else {
            fields.append(("training data", Self.fingerprint(data.train)))
            fields.append(("validation data", Self.fingerprint(data.validation)))
        }
        // "auto" resolves per host: a rank without oneDNN would round differently and drift
        var hg = FNV1a(); hg.add(Gemm.summary); fields.append(("matmul backend (\(Gemm.summary) on rank 0)", hg.value))
        var mine = fields.map(\.1)
        try mine.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        if data.identity != nil {
            // the checkpoints' data fingerprint (every example's ids) from rank 0, which verified the set
            var f = [comm.rank == 0 ? dataFingerprint : 0]
            try f.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: 8, root: 0) }
            cachedDataFingerprint = f[0]
        }
        var differs = zip(fields, mine).map { $0.0.1 == $0.1 ? 0.0 : 1.0 }
        try comm.allreduceSum(&differs)
        if let i = differs.firstIndex(where: { $0 > 0 }) {
            throw GiftError(.mismatch, "\(fields[i].0) differs between ranks (\(Int(differs[i])) of \(comm.size) ranks differ from rank 0): every rank must be started with the same arguments and files")
        }
        // (ZeRO-3: each rank read its own shard; the files behind --model were compared at load, RankAgreement: nothing to copy)
        if let baseStore { try baseStore.broadcast(comm) } else if sharded == nil {
            try comm.broadcast(UnsafeMutableRawPointer(params.pointer), bytes: params.count * 4, root: 0)
        }
        if lora != nil { try comm.broadcast(UnsafeMutableRawPointer(trainable.pointer), bytes: trainable.count * 4, root: 0) }
    }

    var cachedDataFingerprint: UInt64?

    /// A prepared set opened without its id scan (`TrainData.idsUnchecked`): the ids of the examples this
    /// rank is about to use, against the vocabulary, with an error that names the example.
    func checkIDs(_ indices: [Int], of examples: [Example]) throws {
        guard data.idsUnchecked else { return }
        let V = Int32(model.config.vocab)
        for i in indices {
            let e = examples[i]
            if let bad = (e.prompt + e.response).first(where: { $0 < 0 || $0 >= V }) {
                throw GiftError(.data, "\(cfg.data): example of line \(e.line) holds id \(bad), outside the model vocab [0, \(V))")
            }
        }
    }

    static func fingerprint(_ set: [Example]) -> UInt64 {
        var h = FNV1a(); h.add(set.count)
        for e in set { h.add(e.prompt); h.add(-1); h.add(e.response); h.add(-2) }
        return h.value
    }
    /// Every example's ids hashed (what checkpoints record); computed once (for a prepared set on rank 0
    /// only, which broadcasts it in `synchronizeStart`).
    public var dataFingerprint: UInt64 {
        if let f = cachedDataFingerprint { return f }
        var h = FNV1a(); h.add([Self.fingerprint(data.train), Self.fingerprint(data.validation)])
        cachedDataFingerprint = h.value
        return h.value
    }

    // MARK: checkpoints

    public var checkpointOptions = CheckpointOptions()
    /// "auto", a checkpoint folder, or nil (start fresh).
    public var resumeSpec: String?
    /// Stop (with a checkpoint) after this many steps, as a preempted job would; nil: run to the end.
    public var stopAtStep: Int?

    /// Loads the checkpoint to resume from into the parameters and this rank's moments; returns its state.
    func resume(runDir: String) throws -> TrainState? {
        guard let spec = resumeSpec else { return nil }
        let n = table.count, sh = opt.shard
        // the moments of this rank's shard; the parameters: all of them, or (ZeRO-3) this rank's shard
        let fm = FloatBuffer(count: sh.count), fv = FloatBuffer(count: sh.count)
        let t0 = Date()
        let within = Resume.Within(params: sharded?.shard ?? 0..<n, moments: sh)
        guard let (path, man) = try Resume.locateAndLoad(spec, runDir: runDir, params: trainableBase, m: fm.pointer - sh.lowerBound,
                                                         v: fv.pointer - sh.lowerBound, within: within,
                                                         log: comm.rank == 0 ? log : { _ in }) else {
            if comm.rank == 0 { log("resume auto: no checkpoint in \(runDir)/checkpoints; starting from step 0") }
            return nil
        }
        try Resume.checkCompatible(man, path: path, config: cfg, model: model.config, dataFingerprint: dataFingerprint,
                                   globalBatch: globalBatch)
        try Resume.checkAdapters(man, path: path, run: loraIdentity)
        opt.m.pointer.update(from: fm.pointer, count: sh.count)
        opt.v.pointer.update(from: fv.pointer, count: sh.count)
        try sharded?.dropAll()
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
    public private(set) var resumedFrom: String?

    /// The trained result: the model (a drop-in replacement of a source folder: its dtype, sharding,
    /// tokenizer and remote code; fp32 for a preset), or under LoRA the adapter in PEFT's format.
    /// `trainable`: the buffer to save in place of `self.trainable` (a broken run's last good one).
    /// ZeRO-3: the model from every rank's shard (`shard`: this rank's), gathered unit by unit (the
    /// embedding, each block, ln_f with the head) and streamed by rank 0 into safetensors shards
    /// (`StreamingModelWriter`): no rank holds more than one unit beside its shard. A drop-in replacement
    /// of a source folder (its dtype, shard size and companion files), fp32 for a preset. Collective.
    func saveSharded(_ dir: String, shard: FloatBuffer) throws {
        guard let sharded else { return }
        try commThread?.drain()
        var isDir: ObjCBool = false
        let src = FileManager.default.fileExists(atPath: cfg.model + "/" + ModelFolder.configFile, isDirectory: &isDir) && !isDir.boolValue
            ? cfg.model : nil
        let format = try src.map { try ModelCompanions.weightFormat(of: $0) }
        let dtype: SafetensorsDType = format?.dtype == .BF16 ? .BF16 : .F32
        let writer = comm.rank == 0
            ? try StreamingModelWriter(dir: dir, config: model.config, dtype: dtype, maxShardBytes: format?.maxShardBytes ?? Int.max) : nil
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

    func saveResult(_ dir: String, trainable t: FloatBuffer) throws {
        if let lora {
            try PEFTAdapter.save(dir, layout: lora, weights: t.pointer, baseModel: cfg.model)
            return
        }
        let params = t
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: cfg.model + "/" + ModelFolder.configFile, isDirectory: &isDir), !isDir.boolValue {
            _ = try ModelCompanions.saveLike(cfg.model, dst: dir, config: model.config, parameters: params)
        } else {
            try ModelFolder.save(dir, config: model.config, parameters: params)
        }
    }

    /// After training: every rank must hold bit-identical parameters.
    /// (ZeRO-3 holds no replicas: the hash of this rank's shard, unchecked.)
    public func checkReplicas() throws -> UInt64 {
        let h = FNV1a.of(trainable.pointer, count: trainable.count)
        guard comm.size > 1, sharded == nil else { return h }
        var mine = [h]
        try mine.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: 8, root: 0) }
        var differs = [mine[0] == h ? 0.0 : 1.0]
        try comm.allreduceSum(&differs)
        if differs[0] > 0 { throw GiftError(.numeric, "parameters diverged between ranks (\(Int(differs[0])) ranks differ from rank 0)") }
        return h
    }

    /// Loss of the run's objective on the validation split with fixed draws (the same masks every time,
    /// so the curve shows the model, not the draws); no gradient.
    public func validationLoss() throws -> Double? {
        let n = data.validation.count
        if n == 0 { return nil }
        var loss = 0.0
        // rank r takes every size-th chunk; the normaliser is over the whole split
        // one padded length for the whole split, so the loss does not depend on the micro-batch size
        let padTo = fixedPadLength ?? (data.validation.map(\.length).max()! + cfg.extraEOS)
        let chunks = stride(from: 0, to: n, by: cfg.microBatch).map { Array($0..<min(n, $0 + cfg.microBatch)) }
        let norm = LossNormalizer.of(data.validation, padTo: padTo, padLoss: cfg.padLoss, minEOS: cfg.extraEOS)
        // ZeRO-3's gathers are collective: every rank runs as many batches (a rank without a chunk of its
        // own in the last round runs chunk 0 again and drops the loss)
        let rounds = sharded == nil ? 0 : (chunks.count + comm.size - 1) / comm.size
        for c in 0..<max(chunks.count, rounds * comm.size) where c % comm.size == comm.rank {
            let chunk = c < chunks.count ? chunks[c] : chunks[0]
            try checkIDs(chunk, of: data.validation)
            let seqs = sequences(chunk, from: data.validation, padTo: padTo, betas: valRefBetas)
            let (st, _) = runner.run(params.pointer, grads: nil, seqs, seed: cfg.seed ^ 0x5EED_0F_7A1, step: 0, normalizer: norm)
            if c < chunks.count { loss += st.loss }
        }
        try commThread?.drain()
        var v = [loss]
        try comm.allreduceSum(&v)
        return v[0]
    }
    var valRefBetas: [[Float]] = []

    /// gift-ref: betas of every example under the frozen initial weights, computed once.
    /// The untrained model's accuracy on the same problems and seeds as the final evaluation, measured
    /// before the first step of a fresh run (RUN_DIR/eval-untrained.json, kept for resumed parts).
    func measureUntrained(fresh: Bool, outDir: String) throws {
        guard fresh, let task = try? BuiltinTask(name: cfg.evalTask) else { return }
        let weights = comm.rank == 0 || sharded != nil ? try mergedWeights() : params   // collective under ZeRO-3
        guard comm.rank == 0 else { return }
        let u = try Evaluate.run(config: model.config, params: weights, task: task, n: cfg.evalN, seeds: 3, seed: cfg.seed)
        try Data(u.jsonLine.utf8).write(to: URL(fileURLWithPath: outDir + "/eval-untrained.json"), options: .atomic)
    }

    /// eval.json (with the untrained model's accuracy beside the trained one's) and eval.jsonl (every
    /// problem's outcome, for McNemar's test in `gift compare`).
    func writeEval(_ acc: EvalResult, outDir: String) throws {
        var o = try JSONSerialization.jsonObject(with: Data(acc.jsonLine.utf8)) as! [String: Any]
        if let d = FileManager.default.contents(atPath: outDir + "/eval-untrained.json"),
           let u = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
            o["untrained_accuracy"] = u["accuracy"]; o["untrained_stderr"] = u["stderr"]; o["untrained_per_seed"] = u["per_seed"]
        }
        try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]).write(to: URL(fileURLWithPath: outDir + "/eval.json"), options: .atomic)
        try Evaluate.writeJSONL(acc.records, to: outDir + "/eval.jsonl")
    }

    func untrainedAccuracy(outDir: String) -> Double? {
        guard let d = FileManager.default.contents(atPath: outDir + "/eval-untrained.json"),
              let u = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return (u["accuracy"] as? NSNumber)?.doubleValue
    }

    func cacheReferenceBetas() {
        guard cfg.objective.kind == .giftRef, let L = fixedPadLength else { return }
        let t0 = Date()
        var o = cfg.objective; o.kind = .gift
        let pass1 = ObjectiveRunner(model: model, options: o, capacityTokens: cfg.microBatch * L, maxSeqLen: L)
        func compute(_ examples: [Example]) -> [[Float]] {
            var out = [[Float]](repeating: [], count: examples.count)
            for start in stride(from: 0, to: examples.count, by: cfg.microBatch) {
                let idx = Array(start..<min(examples.count, start + cfg.microBatch))
                let seqs = sequences(idx, from: examples, padTo: L)
                let betas = pass1.pass1Betas(params.pointer, seqs)
                for (j, s) in seqs.enumerated() {
                    out[idx[j]] = (s.promptLength..<L).map { Float(betas[j * L + $0]) }
                }
            }
            return out
        }
        refBetas = compute(data.train)
        valRefBetas = compute(data.validation)
        log(String(format: "gift-ref: cached the frozen model's betas for %d examples in %.1f s",
                   data.train.count + data.validation.count, Date().timeIntervalSince(t0)))
    }

    /// Runs the training (resuming when asked), writing metrics, progress, checkpoints, the plot, the
    /// summary and the model.
    public func run(outDir: String) throws -> TrainSummary {
        let fm = FileManager.default
        let isRoot = comm.rank == 0
        if isRoot {
            try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            var resolved = cfg; resolved.out = outDir
            try resolved.jsonData().write(to: URL(fileURLWithPath: outDir + "/config.json"), options: .atomic)
        }
        try synchronizeStart()
        let resumed = try resume(runDir: outDir)
        let startStep = resumed?.step ?? 0
        let metricsPath = outDir + "/metrics.jsonl"
        if isRoot, resumed != nil, fm.fileExists(atPath: metricsPath) {
            // keep the lines of the steps the checkpoint holds; later ones are trained again
            let kept = (try String(contentsOfFile: metricsPath, encoding: .utf8)).split(separator: "\n")
                .filter { line in
                    guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                          let st = (o["step"] as? NSNumber)?.intValue else { return false }
                    return st <= startStep
                }
            try Checkpoint.writeAtomically(Data(kept.map { $0 + "\n" }.joined().utf8), to: metricsPath)
        }
        let metrics = isRoot ? try MetricsWriter(path: metricsPath, truncate: resumed == nil) : nil
        let writer = CheckpointWriter(runDir: outDir, comm: comm, options: checkpointOptions, layout: model.layout,
                                      runConfig: cfg.json, dataFingerprint: dataFingerprint)
        if lora != nil { writer.trainable = table; writer.lora = loraIdentity }
        writer.log = isRoot ? log : { _ in }
        writer.protected = resumedFrom
        func checkpoint(_ stepsDone: Int, bad: Int) throws {
            try writer.save(state: TrainState(step: stepsDone, adamStep: opt.step, consecutiveBadSteps: bad),
                            epoch: Double(stepsDone) / Double(stepsPerEpoch), examplesSeen: stepsDone * globalBatch,
                            params: trainableBase, m: opt.m.pointer, v: opt.v.pointer, momentShard: opt.shard)
        }
        cacheReferenceBetas()
        try measureUntrained(fresh: startStep == 0, outDir: outDir)
        if isRoot {
            log("train: \(data.train.count) examples, validation \(data.validation.count) (held out: fraction \(cfg.validationFraction), by seed \(cfg.seed); \(data.report.summary)); "
                + "\(totalSteps) steps of \(globalBatch) examples (\(comm.size) ranks × \(cfg.microBatch) × \(cfg.gradAccum)), "
                + "objective \(cfg.objective.kind.rawValue), \(model.layout.count) parameters, matmuls \(Gemm.summary)")
            if let lora {
                log(String(format: "LoRA: r %d, alpha %g (scale %g), dropout %g on %@: %d trainable parameters (%.3f%% of the model), base frozen (fingerprint %016llx)",
                           lora.lora.r, lora.lora.alpha, Double(lora.lora.scale), lora.lora.dropout,
                           lora.lora.targets.map(\.rawValue).joined(separator: ","), lora.count,
                           100 * Double(lora.count) / Double(model.layout.count), loraIdentity!.baseFingerprint))
            }
            // what this rank holds of the trained state at its ZeRO stage (in flight: one block's gradients,
            // buckets; ZeRO-3 also the gathered embedding/head and two blocks)
            let shardN = opt.shard.count
            let paramBytes = sharded != nil ? 4 * shardN : (baseStore?.bytes ?? 4 * params.count) + 4 * (lora?.count ?? 0)
            let gradBytes = zeroStage >= 2 ? 4 * shardN : 4 * table.count + (gradShard != nil ? 4 * shardN : 0)
            log(String(format: "memory: activations %.1f MB (recompute %@), %@ %.1f MB, gradients %.1f MB, AdamW moments %.1f MB (ZeRO %d)",
                       Double(runner.train.bytes + runner.infer.bytes + (runner.loraTrain?.bytes ?? 0)) / 1e6, cfg.recompute.rawValue,
                       lora == nil ? (sharded != nil ? "parameter shard" : "parameters") : "frozen base (\(cfg.baseDtype)) + adapters",
                       Double(paramBytes) / 1e6, Double(gradBytes) / 1e6, Double(8 * shardN) / 1e6, zeroStage))
            if comm.size > 1 {
                let how = ["bucketed allreduce", "ZeRO-1 reduce-scatter after backward", "ZeRO-2 bucketed reduce-scatter during backward",
                           "ZeRO-2 bucketed reduce-scatter during backward, ZeRO-3 block gathers"][zeroStage]
                log("gradient sync: \(gradientBytesPerStep) bytes per step per rank (\(lora == nil ? "every parameter" : "the adapters only"), \(how), \(cfg.gradReduceDtype) on the wire)")
            }
            for line in Gemm.kernelReport { log("  " + line) }
            progress = ProgressReporter(total: totalSteps, isTerminal: ProgressReporter.stderrIsTerminal)
        }
        var losses: [(Double, Double)] = [], vals: [(Double, Double)] = [], accs: [(Double, Double)] = []
        var lastAcc: EvalResult? = nil
        var badRun = resumed?.consecutiveBadSteps ?? 0, skipped = 0, tokensTotal = 0, epochTokens = 0, epochPad = 0
        let t0 = Date()
        var firstLoss = Double.nan, lastLoss = Double.nan, lastVal: Double? = nil
        let endStep = min(totalSteps, stopAtStep ?? totalSteps)
        var lastSaved = -1
        // rank 0 keeps the replicated parameters; under ZeRO-3 every rank its shard
        let lastGood = isRoot || sharded != nil ? LastGoodParameters(count: trainable.count) : nil
        beforeUpdate = lastGood.map { k in { [trainable] in k.keep(trainable.pointer, stepsDone: $0) } }
        defer { beforeUpdate = nil }
        for s in startStep..<endStep {
            let ts = Date()
            let r = try step(s)
            let dt = Date().timeIntervalSince(ts)
            tokensTotal += r.tokens
            epochTokens += r.tokens; epochPad += r.padTokens
            if (s + 1) % stepsPerEpoch == 0 || s == endStep - 1, isRoot {
                log(String(format: "epoch %.2f: padding %.1f%% of %d tokens%@", Double(s + 1) / Double(stepsPerEpoch),
                           100 * Double(epochPad) / Double(max(1, epochTokens)), epochTokens, cfg.groupByLength ? " (grouped by length)" : ""))
                epochTokens = 0; epochPad = 0
            }
            if r.skipped {
                skipped += 1; badRun += 1
                log("warning: step \(s + 1): non-finite loss or gradient (loss \(r.stats.loss), grad norm \(r.gradNorm)); step skipped, parameters unchanged")
                if badRun >= cfg.maxBadSteps {
                    let saved = outDir + "/model-last-good"
                    let good = lastGood?.stepsDone == nil ? trainable : lastGood!.parameters
                    if sharded != nil { try saveSharded(saved, shard: good) } else if isRoot { try saveResult(saved, trainable: good) }
                    throw GiftError(.numeric, "stopped: \(badRun) consecutive non-finite steps (last at step \(s + 1)); the parameters before them are saved in \(saved). Lower --lr or check the data.")
                }
            } else {
                badRun = 0
                if firstLoss.isNaN { firstLoss = r.stats.loss }
                lastLoss = r.stats.loss
                losses.append((Double(s + 1), r.stats.loss))
            }
            let isLast = s == endStep - 1
            var val: Double? = nil, acc: EvalResult? = nil
            if isLast || (cfg.evalEvery > 0 && (s + 1) % cfg.evalEvery == 0) {
                val = try validationLoss()
                if let v = val { vals.append((Double(s + 1), v)); lastVal = v }
                lastGood?.validated(val, stepsDone: s + 1)
                // task accuracy on rank 0 (every rank holds the same parameters); 3 seeds at the end
                let task = try? BuiltinTask(name: cfg.evalTask)
                let weights = task != nil && (isRoot || sharded != nil) ? try mergedWeights() : nil   // collective under ZeRO-3
                if isRoot, let task, let weights {
                    acc = try Evaluate.run(config: model.config, params: weights, task: task, n: cfg.evalN,
                                           seeds: isLast ? 3 : 1, seed: cfg.seed)
                    accs.append((Double(s + 1), acc!.accuracy)); lastAcc = acc
                    if isLast { try writeEval(acc!, outDir: outDir) }
                }
            }
            if let metrics {
                var f: [(String, Any)] = [
                    ("step", s + 1), ("epoch", Double(s + 1) / Double(stepsPerEpoch)), ("loss", r.stats.loss),
                    ("lr", r.lr), ("grad_norm", r.gradNorm), ("tokens", r.tokens), ("tokens_per_s", Double(r.tokens) / dt),
                    ("pad_fraction", Double(r.padTokens) / Double(max(1, r.tokens))),
                    ("mask_rate", r.stats.maskRate), ("mean_weight", r.stats.meanWeight), ("masked_tokens", r.stats.maskedTokens),
                ]
                if cfg.objective.kind.usesBetas { f.append(("mean_beta", r.stats.meanBeta)) }
                if comm.size > 1 { f.append(("comm_wait_s", r.commWait)) }
                if r.skipped {
                    // the values that made it skip, as text (JSON has no nan or inf: their fields above are null)
                    f.append(("skipped", true))
                    f.append(("skipped_reason", !r.stats.loss.isFinite ? "non-finite loss (\(r.stats.loss))"
                              : "non-finite gradient norm (\(r.gradNorm))"))
                }
                if let val { f.append(("val_loss", val)) }
                if let acc { f.append(("accuracy", acc.accuracy)); f.append(("accuracy_stderr", acc.stderr)); f.append(("accuracy_task", acc.task.name)) }
                metrics.write(f)
                var shown = [("loss", String(format: "%.4f", r.stats.loss))]
                if let lv = lastVal { shown.append(("val", String(format: "%.4f", lv))) }
                if let la = lastAcc { shown.append(("acc", String(format: "%.3f", la.accuracy))) }
                progress?.update(step: s + 1, fields: shown)
            }
            try writer.poll()
            if checkpointOptions.every > 0 && (s + 1) % checkpointOptions.every == 0 {
                try checkpoint(s + 1, bad: badRun); lastSaved = s + 1
            }
        }
        // one at the end of training (or of this part of it), then wait for the writes
        if lastSaved != endStep && endStep > startStep { try checkpoint(endStep, bad: badRun) }
        try writer.finish()
        progress?.finish()
        let hash = try checkReplicas()
        if comm.size > 1 && isRoot {
            log(sharded != nil ? "parameters sharded over \(comm.size) ranks (ZeRO-3): no replicas to compare"
                : String(format: "parameters identical on all %d ranks (hash %016llx)", comm.size, hash))
        }
        let seconds = Date().timeIntervalSince(t0)
        let steps = endStep - startStep
        var summary = TrainSummary(steps: steps, firstLoss: firstLoss, finalLoss: lastLoss, finalValLoss: lastVal,
                                   tokensPerS: Double(tokensTotal) / max(seconds, 1e-9), seconds: seconds,
                                   skippedSteps: skipped, text: "")
        var health = RunHealth(parameters: trainable, finalValLoss: lastVal)
        if sharded != nil {
            var bad = [Double(health.nonFiniteParameters)]
            try comm.allreduceSum(&bad)
            health.nonFiniteParameters = Int(bad[0]); health.parameterCount = model.layout.count
        }
        summary.failure = health.failureSentence(modelDir: outDir + (lora == nil ? "/model" : "/adapter"), kept: lastGood?.stepsDone, steps: totalSteps)
        // a broken run's model is its last good parameters (RunHealth)
        let kept = health.isBroken && lastGood?.stepsDone != nil ? lastGood!.parameters : trainable
        if sharded != nil { try saveSharded(outDir + "/model", shard: kept) }
        if isRoot {
            // a drop-in replacement of a source folder (its dtype, sharding, tokenizer and remote code);
            // fp32 for a preset
            if sharded == nil { try saveResult(outDir + (lora == nil ? "/model" : "/adapter"), trainable: kept) }
            let plot = LossPlot.svg(series: [LossPlot.Series(name: "train loss", points: losses.map { (x: $0.0, y: $0.1) }),
                                             LossPlot.Series(name: "validation loss", points: vals.map { (x: $0.0, y: $0.1) })]
                                    + (accs.isEmpty ? [] : [LossPlot.Series(name: "\(cfg.evalTask) accuracy (test split)",
                                                                            points: accs.map { (x: $0.0, y: $0.1) })])
                                    + (accs.isEmpty ? [] : untrainedAccuracy(outDir: outDir).map { u in
                                        [LossPlot.Series(name: "untrained accuracy", points: [(x: 1, y: u), (x: Double(endStep), y: u)])] } ?? []),
                                    title: "gift train: \(cfg.objective.kind.rawValue) on \(URL(fileURLWithPath: cfg.data).lastPathComponent)",
                                    xLabel: "optimizer step", yLabel: accs.isEmpty ? "loss" : "loss / accuracy")
            try plot.write(toFile: outDir + "/loss.svg", atomically: true, encoding: .utf8)
            let head = Array(losses.prefix(max(1, losses.count / 10))).map(\.1), tail = Array(losses.suffix(max(1, losses.count / 10))).map(\.1)
            let h = head.reduce(0, +) / Double(max(1, head.count)), t = tail.reduce(0, +) / Double(max(1, tail.count))
            summary.text = String(format: """
                Trained %@ with %@ for %d steps (%.1f epochs of %d examples, global batch %d) in %.0f s at %.0f tokens/s. \
                Training loss %@ from %.4f (mean of the first tenth of the steps) to %.4f (last tenth), %.0f%% %@%@%@. \
                The %@, the metrics in metrics.jsonl and the curves in loss.svg.
                """, cfg.model, cfg.objective.kind.rawValue, steps, Double(endStep) / Double(stepsPerEpoch), data.train.count,
                globalBatch, seconds, summary.tokensPerS, t <= h ? "fell" : "rose", h, t, 100 * abs(1 - t / h),
                t <= h ? "lower" : "higher",
                (lastVal.map { String(format: "; validation loss %.4f", $0) } ?? "")
                    + (lastAcc.map { String(format: "; %@ test accuracy %.3f ± %.3f (%d problems × %d seeds)", $0.task.name, $0.accuracy, $0.stderr, $0.n, $0.seeds.count) } ?? "")
                    + (untrainedAccuracy(outDir: outDir).map { String(format: ", untrained %.3f", $0) } ?? ""),
                skipped > 0 ? "; \(skipped) non-finite steps were skipped" : "",
                lora == nil ? "model is in \(outDir)/model" : "LoRA adapter (r \(cfg.lora.r), PEFT format) is in \(outDir)/adapter (`gift export \(outDir) --merge --out DIR` writes the merged model)")
            if let f = summary.failure { summary.text = f + " " + summary.text }
            try summary.text.write(toFile: outDir + "/summary.txt", atomically: true, encoding: .utf8)
        }
        // every rank's peak resident memory (what `gift plan` predicts), one line on rank 0
        var peaks = [Double](repeating: 0, count: comm.size)
        peaks[comm.rank] = Double(MemoryInfo.peakResident() ?? 0)
        try comm.allreduceSum(&peaks)
        if isRoot {
            log("peak resident memory per rank (MiB): " + peaks.map { String(format: "%.1f", $0 / 1048576) }.joined(separator: " "))
        }
        if isRoot && comm.size > 1 && steps > 0 {
            let (g, p) = bytesMoved
            log("gradient bytes reduced by this rank: \(g) in \(steps) steps (\(g / steps) per step); parameter bytes gathered: \(p) (\(p / steps) per step), ZeRO \(zeroStage)")
        }
        return summary
    }
}
