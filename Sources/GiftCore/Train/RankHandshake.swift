import Foundation

/// The ranks' agreement before and after training: before the first step every rank must have the same
/// run config, model, data and matmul backend (a mismatch stops all ranks naming the field), and rank 0's
/// weights are copied to all; after the last, replicated parameters must be bit-identical on every rank.
enum RankHandshake {
    /// Before the first step (collective). `batches` gets rank 0's data fingerprint for a prepared set.
    static func start(comm: Communicator, config cfg: RunConfig, model: ModelConfig, batches: TrainBatches,
                      replicated: [FloatBuffer], baseStore: BF16BaseStore?) throws {
        guard comm.size > 1 else { return }
        let data = batches.data
        var fields: [(String, UInt64)] = []
        let cj = cfg.json
        for k in cj.keys.sorted() { var h = FNV1a(); h.add("\(cj[k]!)"); fields.append(("run config field '\(k)'", h.value)) }
        var hm = FNV1a(); hm.add(String(decoding: model.jsonData(), as: UTF8.self)); fields.append(("model config", hm.value))
        if let id = data.identity {
            // a prepared set: its files' checksums and the split, so no rank reads other ranks' examples
            fields.append(("training data (prepared set: its files' checksums and the split)", id))
        } else {
            fields.append(("training data", TrainBatches.fingerprint(data.train)))
            fields.append(("validation data", TrainBatches.fingerprint(data.validation)))
        }
        // "auto" resolves per host: a rank without oneDNN would round differently and drift
        var hg = FNV1a(); hg.add(Gemm.summary); fields.append(("matmul backend (\(Gemm.summary) on rank 0)", hg.value))
        var mine = fields.map(\.1)
        try mine.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        if data.identity != nil {
            // the checkpoints' data fingerprint (every example's ids) from rank 0, which verified the set
            var f = [comm.rank == 0 ? batches.dataFingerprint : 0]
            try f.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: 8, root: 0) }
            batches.cachedDataFingerprint = f[0]
        }
        var differs = zip(fields, mine).map { $0.0.1 == $0.1 ? 0.0 : 1.0 }
        try comm.allreduceSum(&differs)
        if let i = differs.firstIndex(where: { $0 > 0 }) {
            throw GiftError(.mismatch, "\(fields[i].0) differs between ranks (\(Int(differs[i])) of \(comm.size) ranks differ from rank 0): every rank must be started with the same arguments and files")
        }
        // (ZeRO-3: each rank read its own shard; the files behind --model were compared at load, RankAgreement: nothing to copy)
        if let baseStore { try baseStore.broadcast(comm) }
        for b in replicated { try comm.broadcast(UnsafeMutableRawPointer(b.pointer), bytes: b.count * 4, root: 0) }
    }

    /// After training: every rank must hold bit-identical parameters (`sharded`: ZeRO-3 holds no
    /// replicas: the hash of this rank's shard, unchecked). Returns the hash.
    static func checkReplicas(comm: Communicator, trained: FloatBuffer, sharded: Bool) throws -> UInt64 {
        let h = FNV1a.of(trained.pointer, count: trained.count)
        guard comm.size > 1, !sharded else { return h }
        var mine = [h]
        try mine.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: 8, root: 0) }
        var differs = [mine[0] == h ? 0.0 : 1.0]
        try comm.allreduceSum(&differs)
        if differs[0] > 0 { throw GiftError(.numeric, "parameters diverged between ranks (\(Int(differs[0])) ranks differ from rank 0)") }
        return h
    }
}
