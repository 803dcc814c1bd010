import ArgumentParser
import GiftCore

/// The objective and its switches (shared/design/objective.md), shared by every command that runs one.
struct ObjectiveFlags: ParsableArguments {
    @Option(help: "Objective: \(ObjectiveKind.names).")
    var objective: String = "gift"
    @Option(help: "gamma in beta = H^gamma (gift, gift-sw, gift-ref; gift-raw uses 1).")
    var entropyPower: Double = 0.5
    @Option(help: "Weight on masked tokens for the gift family: inverse (1/t_i) or exact.")
    var giftWeight: String = "inverse"
    @Option(help: "Mean for beta_0: response (all response positions) or content (EOS/pad excluded).")
    var betaReference: String = "response"
    @Option(help: "Loss normalisation: token (global response tokens) or sequence.")
    var lossNorm: String = "token"
    @Option(help: "eps of the time draw t = eps + (1 - 2 eps) u.")
    var timeEpsilon: Double = 1e-3
    @Option(help: "p of the dream (CART) weights.")
    var dreamP: Double = 0.3

    func options(kind: String? = nil) throws -> ObjectiveOptions {
        let name = kind ?? objective
        guard let k = ObjectiveKind(rawValue: name) else {
            throw ValidationError("unknown objective '\(name)'; choose one of: \(ObjectiveKind.names)")
        }
        var o = ObjectiveOptions(kind: k)
        guard let gw = GiftWeight(rawValue: giftWeight) else { throw ValidationError("--gift-weight must be inverse or exact") }
        guard let br = BetaReference(rawValue: betaReference) else { throw ValidationError("--beta-reference must be response or content") }
        guard let ln = LossNorm(rawValue: lossNorm) else { throw ValidationError("--loss-norm must be token or sequence") }
        o.giftWeight = gw; o.betaReference = br; o.lossNorm = ln
        o.entropyPower = entropyPower; o.timeEpsilon = timeEpsilon; o.dreamP = dreamP
        try o.validate()
        return o
    }
}
