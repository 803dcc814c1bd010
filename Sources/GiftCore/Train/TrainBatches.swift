import Foundation

/// Which examples every optimizer step trains on, and in what padded form: the epoch's seeded order cut
/// into global batches, each rank's slice of them, and the data's identity (fingerprints) that ranks and
/// checkpoints compare.
public final class TrainBatches {
    let cfg: RunConfig
    public let data: TrainData
    let eos: Int32, vocab: Int
    /// Examples per optimizer step over all ranks, and per rank.
    public let globalBatch: Int, rankBatch: Int
    public let stepsPerEpoch: Int

    init(config: RunConfig, data: TrainData, ranks: Int, eos: Int32, vocab: Int) throws {
        cfg = config; self.data = data; self.eos = eos; self.vocab = vocab
        globalBatch = ranks * config.microBatch * config.gradAccum
        rankBatch = config.microBatch * config.gradAccum
        stepsPerEpoch = data.train.count / globalBatch
        if stepsPerEpoch == 0 {
            throw GiftError(.config, "a global batch of \(globalBatch) examples (\(ranks) ranks × micro_batch \(config.microBatch) × grad_accum \(config.gradAccum)) is larger than the \(data.train.count) training examples")
        }
    }

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
    private var cachedEpoch = -1, cachedOrder: [Int] = []

    /// One step's part for `rank`: its sequences, the global batch's normaliser, and the global batch's
    /// tokens and EOS padding (for tokens/s and the padding fraction).
    public struct Step {
        public var sequences: [TrainSequence]
        public var normalizer: LossNormalizer
        public var tokens: Int, padTokens: Int
    }

    /// `fixedPadLength`: gift-ref pads every batch to one length (its cached betas are of that form).
    public func step(_ step: Int, rank: Int, fixedPadLength: Int?, betas: [[Float]]) throws -> Step {
        let indices = globalIndices(step: step)
        // the padded length and the normaliser come from the lengths: a rank reads only its own examples' ids
        let padTo = fixedPadLength ?? ((indices.map { data.train[$0].length }.max() ?? 0) + cfg.extraEOS)
        let normalizer = LossNormalizer.of(indices.map { data.train[$0] }, padTo: padTo, padLoss: cfg.padLoss, minEOS: cfg.extraEOS)
        let mine = Array(indices[(rank * rankBatch)..<((rank + 1) * rankBatch)])
        try checkIDs(mine, of: data.train)
        let tokens = indices.count * padTo
        return Step(sequences: sequences(mine, from: data.train, padTo: padTo, betas: betas), normalizer: normalizer,
                    tokens: tokens, padTokens: tokens - indices.reduce(0) { $0 + data.train[$1].length })
    }

    /// Every sequence of the global batch, padded with EOS to one length (the longest, plus one EOS),
    /// so the padded form of an example and the normaliser do not depend on how ranks and micro-batches
    /// split the batch.
    /// `betas`: gift-ref's cached betas of `examples` (indexed like them), attached to each sequence.
    public func sequences(_ indices: [Int], from examples: [Example], padTo: Int? = nil, betas: [[Float]] = []) -> [TrainSequence] {
        let padded = Batching.pad(indices.map { (examples[$0], $0) }, eos: eos, toLength: padTo, minEOS: cfg.extraEOS)
        return padded.map { p in
            var s = TrainSequence(tokens: p.tokens, promptLength: p.promptLength, exampleIndex: p.exampleIndex)
            if cfg.padLoss == .off { s.contentLength = p.contentLength }
            if !betas.isEmpty { s.cachedBetas = betas[p.exampleIndex] }
            return s
        }
    }

    /// A prepared set opened without its id scan (`TrainData.idsUnchecked`): the ids of the examples this
    /// rank is about to use, against the vocabulary, with an error that names the example.
    func checkIDs(_ indices: [Int], of examples: [Example]) throws {
        guard data.idsUnchecked else { return }
        let V = Int32(vocab)
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
    /// only, which broadcasts it: `RankHandshake`).
    public var dataFingerprint: UInt64 {
        if let f = cachedDataFingerprint { return f }
        var h = FNV1a(); h.add([Self.fingerprint(data.train), Self.fingerprint(data.validation)])
        cachedDataFingerprint = h.value
        return h.value
    }
    var cachedDataFingerprint: UInt64?
}
