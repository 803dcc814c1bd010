import Foundation

/// The objectives of `shared/design/objective.md`.
public enum ObjectiveKind: String, CaseIterable, Sendable, Codable {
    case sft, gift, giftRaw = "gift-raw", nll, giftSW = "gift-sw", dream, giftRef = "gift-ref"

    /// Betas from a no-gradient pass over the fully masked response with the current weights.
    public var needsPass1: Bool { [.gift, .giftRaw, .nll, .giftSW].contains(self) }
    /// Uses betas at all (gift-ref: from the frozen initial weights, cached per example).
    public var usesBetas: Bool { needsPass1 || self == .giftRef }
    /// Where the objective's betas come from (nil: it uses none).
    public var betaSource: BetaSource? { needsPass1 ? .pass1 : self == .giftRef ? .cached : nil }
    /// Masks token i with probability 1 − (1 − t)^{r_i} (otherwise with probability t).
    public var importanceMasking: Bool { [.gift, .giftRaw, .nll, .giftRef].contains(self) }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Where an objective's betas come from.
public enum BetaSource: Sendable {
    /// Pass 1 under the weights being trained: a no-gradient forward over the fully masked response.
    case pass1
    /// Each sequence's `cachedBetas`, computed once elsewhere (gift-ref: by the frozen initial weights).
    case cached
}

public enum GiftWeight: String, CaseIterable, Sendable, Codable { case inverse, exact }
public enum BetaReference: String, CaseIterable, Sendable, Codable { case response, content }
public enum LossNorm: String, CaseIterable, Sendable, Codable { case token, sequence }

/// One objective with every switch; written into each run's saved config.
public struct ObjectiveOptions: Sendable, Codable, Equatable {
    public var kind: ObjectiveKind = .gift
    public var entropyPower: Double = 0.5
    public var giftWeight: GiftWeight = .inverse
    public var betaReference: BetaReference = .response
    public var timeEpsilon: Double = 1e-3
    public var lossNorm: LossNorm = .token
    public var dreamP: Double = 0.3

    public init(kind: ObjectiveKind = .gift) { self.kind = kind }

    enum CodingKeys: String, CodingKey {
        case kind = "objective", entropyPower = "entropy_power", giftWeight = "gift_weight",
             betaReference = "beta_reference", timeEpsilon = "time_epsilon", lossNorm = "loss_norm", dreamP = "dream_p"
    }

    /// gamma of beta = H^gamma: gift-raw is the raw-entropy ablation (gamma = 1); nll's betas are the
    /// raw NLL of the true token (objective.md's table; the golden outputs agree), so gamma = 1 there too.
    public var gamma: Double { kind == .giftRaw || kind == .nll ? 1 : entropyPower }

    public func validate() throws {
        if !(entropyPower > 0) || !entropyPower.isFinite { throw GiftError(.usage, "--entropy-power must be positive, got \(entropyPower)") }
        if !(timeEpsilon > 0 && timeEpsilon < 0.5) { throw GiftError(.usage, "--time-epsilon must be in (0, 0.5), got \(timeEpsilon)") }
        if !(dreamP > 0 && dreamP < 1) { throw GiftError(.usage, "--dream-p must be in (0, 1), got \(dreamP)") }
    }
}
