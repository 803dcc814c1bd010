import Foundation

extension LossNormalizer {
    /// The normaliser of `examples` each padded to `padTo` tokens (at least its length + `minEOS`), from their
    /// lengths alone, equal to `of` their padded sequences: with `--pad-loss on` a sequence's response is
    /// everything after its prompt, with `off` only its own response tokens. A rank needs no other rank's
    /// tokens to know it.
    static func of(_ examples: [Example], padTo: Int, padLoss: PadLoss, minEOS: Int = 1) -> LossNormalizer {
        var n = 0
        for e in examples {
            precondition(e.length + minEOS <= padTo, "an example of \(e.length) tokens and \(minEOS) EOS does not fit a padded length of \(padTo)")
            n += padLoss == .on ? padTo - e.promptCount : e.responseCount
        }
        return LossNormalizer(responseTokens: n, sequences: examples.count)
    }
}
