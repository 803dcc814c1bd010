import Foundation

/// The per-token math of the objectives: time, importance ratios, masking probabilities and weights.
/// Pure functions in Double, so tests can check them against objective.md directly.
public enum Masking {
    /// The floor on a token's masking probability (objective.md step 7).
    public static let minMaskProb = 1e-6
    /// beta_0 below this makes every r_i = 1 (objective.md step 4).
    public static let minBetaReference = 1e-8

    /// t = eps + (1 − 2 eps)·u: every objective's time draw.
    @inline(__always) public static func time(u: Double, eps: Double) -> Double { eps + (1 - 2 * eps) * u }

    /// r_i = beta_i / beta_0, beta_0 the mean over the response (or over its non-EOS/pad tokens).
    /// `include[i]` says whether response token i enters the mean.
    public static func importance(betas: [Double], include: [Bool]) -> [Double] {
        var sum = 0.0, n = 0
        for (b, inc) in zip(betas, include) where inc { sum += b; n += 1 }
        let b0 = n > 0 ? sum / Double(n) : 0
        // a non-finite beta makes every r non-finite: the caller reports it instead of training on it
        if !b0.isFinite { return Array(repeating: .nan, count: betas.count) }
        guard b0 >= minBetaReference else { return Array(repeating: 1, count: betas.count) }
        return betas.map { $0 / b0 }
    }

    /// t_i = 1 − (1 − t)^{r}, as −expm1(r·log1p(−t)), floored at 1e-6. At r = 1 it is t itself, bit for
    /// bit, so GIFT with unit importance masks exactly like SFT from the same draws (objective.md, property 1).
    @inline(__always) public static func maskProbability(r: Double, t: Double) -> Double {
        if r == 1 { return max(minMaskProb, t) }
        return max(minMaskProb, -Foundation.expm1(r * Foundation.log1p(-t)))
    }

    /// Masking probability of a response token under `kind`.
    @inline(__always)
    public static func maskProbability(_ o: ObjectiveOptions, r: Double, t: Double) -> Double {
        o.kind.importanceMasking ? maskProbability(r: r, t: t) : t
    }

    /// Weight of a masked response token (all but dream, which depends on its neighbours).
    @inline(__always)
    public static func weight(_ o: ObjectiveOptions, r: Double, t: Double) -> Double {
        switch o.kind {
        case .sft: return 1 / t
        case .giftSW: return r / t
        case .dream: preconditionFailure("dream weights need the whole mask: use dreamWeights")
        case .gift, .giftRaw, .nll, .giftRef:
            let ti = maskProbability(r: r, t: t)
            switch o.giftWeight {
            case .inverse: return 1 / ti
            case .exact: return r == 1 ? 1 / ti : r * Foundation.exp((r - 1) * Foundation.log1p(-t)) / ti
            }
        }
    }

    /// CART weights (Dream): w_i = ½ Σ_{j unmasked, j≠i} p(1−p)^{|i−j|−1}, for masked i; 0 elsewhere.
    /// `masked` covers the whole sequence (prompt positions are never masked).
    public static func dreamWeights(masked: [Bool], p: Double) -> [Double] {
        let L = masked.count
        let logq = Foundation.log1p(-p)
        var w = [Double](repeating: 0, count: L)
        for i in 0..<L where masked[i] {
            var s = 0.0
            for j in 0..<L where !masked[j] && j != i {
                s += p * Foundation.exp(Double(abs(i - j) - 1) * logq)
            }
            w[i] = 0.5 * s
        }
        return w
    }
}
