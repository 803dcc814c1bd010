import Foundation

/// How a step of Dream's sampler chooses the masked positions it commits (`alg` in Dream's
/// generation_utils.py).
public enum DreamAlgorithm: String, CaseIterable, Sendable {
    /// The reverse process itself: each masked position is committed with probability 1 − s/t, whatever
    /// its prediction (random even at temperature 0; the draws are seeded).
    case origin
    /// The most confident: the probability of the predicted token (MaskGIT's rule).
    case maskgitPlus = "maskgit_plus"
    /// The largest margin between the two most probable tokens.
    case topkMargin = "topk_margin"
    /// The most certain: the highest negative entropy Σ p·log(p + 1e−10).
    case entropy

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public init(name: String) throws {
        guard let a = DreamAlgorithm(rawValue: name.lowercased().replacingOccurrences(of: "-", with: "_")) else {
            throw GiftError(.usage, "unknown Dream algorithm '\(name)'; known: \(Self.names)")
        }
        self = a
    }
}

/// Dream's own sampler settings (DreamGenerationConfig), beside the ones it shares with LLaDA's
/// (`SamplerOptions`: gen length, steps, temperature, seed, batch).
///
/// Default `entropy`: dllm's Dream evaluation default and Dream's published examples (its
/// DreamGenerationConfig falls back to `origin`, which is random even at temperature 0).
public struct DreamSettings: Equatable, Sendable {
    public var alg: DreamAlgorithm
    /// 0: commit the highest-confidence positions. > 0: draw them without replacement from
    /// softmax(confidence / algTemp).
    public var algTemp: Double
    /// The schedule's last time: timesteps are linspace(1, eps, steps + 1).
    public var eps: Double
    /// Nucleus filtering of each prediction (nil or 1: off), as Dream's top_p_logits.
    public var topP: Double?
    /// Keep only the k largest logits of each prediction (nil: off), as Dream's top_k_logits.
    public var topK: Int?

    public init(alg: DreamAlgorithm = .entropy, algTemp: Double = 0, eps: Double = 1e-3, topP: Double? = nil, topK: Int? = nil) {
        self.alg = alg; self.algTemp = algTemp; self.eps = eps; self.topP = topP; self.topK = topK
    }

    public func validate() throws {
        if !(algTemp >= 0) || !algTemp.isFinite { throw GiftError(.usage, "alg temp must be a finite number >= 0, got \(algTemp)") }
        if !(eps >= 0 && eps < 1) { throw GiftError(.usage, "eps must be in [0, 1), got \(eps)") }
        if let p = topP, !(p > 0 && p <= 1) { throw GiftError(.usage, "top p must be in (0, 1], got \(p)") }
        if let k = topK, k < 1 { throw GiftError(.usage, "top k must be at least 1, got \(k)") }
    }

    /// Steps when none are given: one per generated token (dllm's Dream evaluation, Dream's examples).
    public static func defaultSteps(genLength: Int) -> Int { genLength }
}

/// Dream's timesteps and what each step commits. The times are linspace(1, eps, steps + 1) in float32 as
/// torch computes them element by element: with step = (eps − 1)/steps, t_i = fma(step, i, 1) for the first
/// half and fma(−step, steps − i, eps) for the rest (checked against torch.linspace in the tests).
public struct DreamSchedule: Equatable, Sendable {
    public let steps: Int
    public let timesteps: [Float]

    public init(steps: Int, eps: Double) throws {
        guard steps >= 1 else { throw GiftError(.usage, "steps must be at least 1, got \(steps)") }
        let n = steps + 1, end = Float(eps), step = (end - 1) / Float(n - 1), half = n / 2
        self.steps = steps
        timesteps = (0..<n).map { i in
            i < half ? Float(1).addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// 1 − s/t of step i (float32, as Dream); 1 at the last step.
    public func transferProbability(step i: Int) -> Float {
        i < steps - 1 ? 1 - timesteps[i + 1] / timesteps[i] : 1
    }

    /// How many of `masked` positions step i commits: int(masked · (1 − s/t)) in float32, all at the last
    /// step (Dream's number_transfer_tokens, per sequence).
    public func transferCount(masked: Int, step i: Int) -> Int {
        i < steps - 1 ? Int((Float(masked) * transferProbability(step: i)).rounded(.towardZero)) : masked
    }
}
