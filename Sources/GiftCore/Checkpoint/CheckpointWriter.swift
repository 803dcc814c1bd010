import Foundation

/// Saves checkpoints during training: every rank compresses and writes its shard (in the background
/// when `async`), and when every rank is done rank 0 writes the manifest, renames the folder into place,
/// moves `latest` and applies retention. All calls are collective: every rank makes them at the same steps.
public final class CheckpointWriter {
    let dir: String
    let comm: Communicator
    public let options: CheckpointOptions
    let layout: ParameterLayout
    let runConfig: [String: Any]
    let dataFingerprint: UInt64
    /// The buffer saved when it is not the whole model (LoRA: the adapters), and what they adapt.
    public var trainable: TensorTable?
    public var lora: LoRAIdentity?
    /// The matmul kernels the run runs, recorded in each manifest (a resume keeps them).
    public var kernels: GemmKernels?
    var table: TensorTable { trainable ?? layout.table }
    /// The checkpoint this run resumed from: retention never deletes it.
    public var protected: String?
    public var log: (String) -> Void = { _ in }

    struct Pending {
        var manifest: Manifest
        var tmp: String
        var result: Result<ShardWriteResult, Error>?
        var startedAt: Date
        var stall: Double
    }
    private var pending: Pending?
    private let cond = NSCondition()
    private var snapshot: FloatBuffer?

    public init(runDir: String, comm: Communicator, options: CheckpointOptions, layout: ParameterLayout,
                runConfig: [String: Any], dataFingerprint: UInt64) {
        dir = runDir + "/checkpoints"; self.comm = comm; self.options = options; self.layout = layout
        self.runConfig = runConfig; self.dataFingerprint = dataFingerprint
    }

    /// Starts saving the state after `state.step` steps. `m`/`v` are indexed by flat offset over
    /// `momentShard` (all of it, or this rank's ZeRO-1 shard, which is then exactly its checkpoint slice).
    public func save(state: TrainState, epoch: Double, examplesSeen: Int, params: UnsafePointer<Float>,
                     m: UnsafePointer<Float>, v: UnsafePointer<Float>, momentShard: Range<Int>) throws {
        let t0 = Date()
        try finish()   // at most one save in flight
        let world = comm.size, rank = comm.rank
        let shards = shardRanges(count: table.count, parts: world)
        let mine = shards[rank]
        precondition(momentShard.lowerBound <= mine.lowerBound && mine.upperBound <= momentShard.upperBound)
        let name = Checkpoint.folderName(step: state.step)
        let tmp = dir + "/.tmp-" + name
        if rank == 0 {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: tmp)   // a crashed earlier attempt
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        }
        try comm.barrier()
        // the rank's slice of params, m and v, copied so training can go on while it is written
        let n = mine.count
        if snapshot == nil || snapshot!.count != 3 * n { snapshot = FloatBuffer(count: 3 * n) }
        let snap = snapshot!.pointer
        snap.update(from: params + mine.lowerBound, count: n)
        (snap + n).update(from: m + (mine.lowerBound - momentShard.lowerBound), count: n)
        (snap + 2 * n).update(from: v + (mine.lowerBound - momentShard.lowerBound), count: n)
        let manifest = Manifest(formatVersion: Checkpoint.formatVersion, state: state, epoch: epoch, examplesSeen: examplesSeen,
                                worldSize: world, modelConfig: layout.config, runConfig: [:], tensors: table.tensors,
                                shards: shards.enumerated().map { Manifest.Shard(file: Checkpoint.shardName(rank: $0, of: world), rank: $0,
                                                                               range: $1, bytes: 0, checksum: 0) },
                                dataFingerprint: dataFingerprint, lora: lora, kernels: kernels)
        let path = tmp + "/" + Checkpoint.shardName(rank: rank, of: world)
        let rankState = try JSONSerialization.data(withJSONObject: ["rank": rank, "world_size": world, "range": [mine.lowerBound, mine.upperBound],
                                                                    "step": state.step], options: [.sortedKeys])
        var opts = ShardFile.Options(); opts.level = options.level; opts.workers = options.workers
        let nice = options.async ? options.writerNice : 0
        let write: () -> Void = { [cond] in
            // Linux: the calling thread's nice value only; the zstd workers it starts inherit it
            if nice != 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Int32(nice)) }
            let r = Result { try ShardFile.writeDetailed(path: path, floats: [("params", UnsafePointer(snap), n), ("m", UnsafePointer(snap + n), n),
                                                                      ("v", UnsafePointer(snap + 2 * n), n)],
                                                 bytes: [("rank_state", rankState)], options: opts) }
            cond.lock(); self.pending?.result = r; cond.broadcast(); cond.unlock()
        }
        cond.lock()
        pending = Pending(manifest: manifest, tmp: tmp, result: nil, startedAt: Date(), stall: 0)
        cond.unlock()
        if options.async {
            // the snapshot belongs to this write until `finish` has seen it complete
            let th = Thread(block: unsafeBitCast(write, to: (@Sendable () -> Void).self))
            th.name = "gift-checkpoint"
            th.start()
        } else {
            write()
        }
        // under the lock: the writer thread may be storing its result into `pending` right now
        cond.lock(); pending!.stall = Date().timeIntervalSince(t0); cond.unlock()
    }

    /// Collective, once per step: completes a save every rank has finished writing.
    public func poll() throws {
        guard pending != nil else { return }
        cond.lock(); let done = pending?.result != nil; cond.unlock()
        var notDone = [done ? 0.0 : 1.0]
        try comm.allreduceSum(&notDone)
        if notDone[0] == 0 { try finalize() }
    }

    /// Collective: waits for the save in flight, if any, and completes it.
    public func finish() throws {
        guard pending != nil else { return }
        cond.lock()
        while pending?.result == nil { cond.wait() }
        cond.unlock()
        try finalize()
    }

    private func finalize() throws {
        guard var p = pending else { return }
        pending = nil
        let world = comm.size, rank = comm.rank
        var slots = [Double](repeating: 0, count: 4 * world)
        var err: String?
        var ratios = ""
        switch p.result! {
        case .success(let r):
            slots[4 * rank] = 1; slots[4 * rank + 1] = Double(r.fileBytes)
            slots[4 * rank + 2] = Double(r.checksum >> 32); slots[4 * rank + 3] = Double(r.checksum & 0xFFFF_FFFF)
            ratios = ShardFile.ratioSummary(r.sections.filter { $0.kind == .floats })
        case .failure(let e): err = "\(e)"
        }
        try comm.allreduceSum(&slots)
        if let err { throw GiftError(.io, "checkpoint step \(p.manifest.state.step): writing this rank's shard failed: \(err)") }
        if let bad = (0..<world).first(where: { slots[4 * $0] != 1 }) {
            throw GiftError(.io, "checkpoint step \(p.manifest.state.step): rank \(bad) failed to write its shard")
        }
        for r in 0..<world {
            p.manifest.shards[r].bytes = Int(slots[4 * r + 1])
            p.manifest.shards[r].checksum = UInt64(slots[4 * r + 2]) << 32 | UInt64(slots[4 * r + 3])
        }
        if rank == 0 {
            let fm = FileManager.default
            let mpath = p.tmp + "/manifest.json"
            guard fm.createFile(atPath: mpath, contents: p.manifest.json(runConfig: runConfig, model: layout.config)) else {
                throw GiftError(.io, "\(mpath): cannot write the manifest")
            }
            try Checkpoint.fsyncPath(mpath)
            try Checkpoint.fsyncPath(p.tmp)
            FaultInjection.checkpointWritten(step: p.manifest.state.step)   // the worst moment to die
            let final = dir + "/" + Checkpoint.folderName(step: p.manifest.state.step)
            if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }   // re-saving a step after a resume
            if rename(p.tmp, final) != 0 { throw GiftError(.io, "\(final): rename failed (errno \(errno))") }
            try Checkpoint.fsyncPath(dir)
            try Checkpoint.writeAtomically(Data((Checkpoint.folderName(step: p.manifest.state.step) + "\n").utf8), to: dir + "/latest")
            let total = p.manifest.shards.reduce(0) { $0 + $1.bytes }
            let raw = Double(3 * table.count * 4)
            let secs = Date().timeIntervalSince(p.startedAt)
            log(String(format: "checkpoint %@: %.1f MB (compression %.2fx; rank 0: %@), written in %.2f s (%.0f MB/s of raw state), training stalled %.3f s",
                       Checkpoint.folderName(step: p.manifest.state.step), Double(total) / 1e6, raw / Double(max(total, 1)),
                       ratios, secs, raw / 1e6 / max(secs, 1e-9), p.stall))
            applyRetention()
        }
        try comm.barrier()
    }

    /// Keeps the newest `keepLast`, every multiple of `keepEvery`, and the one resumed from.
    func applyRetention() {
        let all = Checkpoint.candidates(in: dir)
        for (i, c) in all.enumerated() {
            let keep = i < max(1, options.keepLast) || (options.keepEvery > 0 && c.step % options.keepEvery == 0)
                || c.path == protected
            if !keep {
                try? FileManager.default.removeItem(atPath: c.path)
                log("checkpoint \((c.path as NSString).lastPathComponent) removed (--keep-last \(options.keepLast))")
            }
        }
    }
}
