import Foundation

/// gift-ref's reference: the response betas of every training and validation example under the frozen
/// initial weights, computed once before the first step (pass 1 of GIFT, no gradient), in the padded
/// form every gift-ref batch has (`length` tokens).
public struct ReferenceBetas {
    public var train: [[Float]] = [], validation: [[Float]] = []

    /// `weights`: the initial weights as the model reads them.
    static func compute(model: Transformer, objective: ObjectiveOptions, microBatch: Int, length L: Int,
                        weights: UnsafePointer<Float>, batches: TrainBatches, log: (String) -> Void) -> ReferenceBetas {
        let t0 = Date()
        var o = objective; o.kind = .gift
        let pass1 = ObjectiveRunner(model: model, options: o, capacityTokens: microBatch * L, maxSeqLen: L)
        func compute(_ examples: [Example]) -> [[Float]] {
            var out = [[Float]](repeating: [], count: examples.count)
            for start in stride(from: 0, to: examples.count, by: microBatch) {
                let idx = Array(start..<min(examples.count, start + microBatch))
                let seqs = batches.sequences(idx, from: examples, padTo: L)
                let betas = pass1.pass1Betas(weights, seqs)
                for (j, s) in seqs.enumerated() {
                    out[idx[j]] = (s.promptLength..<L).map { Float(betas[j * L + $0]) }
                }
            }
            return out
        }
        let r = ReferenceBetas(train: compute(batches.data.train), validation: compute(batches.data.validation))
        log(String(format: "gift-ref: cached the frozen model's betas for %d examples in %.1f s",
                   batches.data.train.count + batches.data.validation.count, Date().timeIntervalSince(t0)))
        return r
    }
}
