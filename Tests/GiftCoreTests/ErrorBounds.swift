import Foundation
@testable import GiftCore

// Tolerances come from error bounds, not from one machine's reading: machines here differ in CPU, and
// with it in BLAS kernel, blocking and summation order. Every numeric tolerance in these tests is
// written as (unit roundoff) × (length of the reductions involved) × (a stated factor), or is a
// comparison with a float64 reference under such a bound.

/// float32 unit roundoff u = 2^-24 (half of `Float.ulpOfOne`): |fl(x ∘ y) − x ∘ y| ≤ u·|x ∘ y|.
let float32UnitRoundoff = Double(Float.ulpOfOne) / 2

/// bfloat16 unit roundoff: 8 significant bits (7 stored + the implicit one), so rounding to nearest
/// moves a value by at most 2^-8 relative. (A product of two rounded operands is off by at most
/// 2·2^-8 + 2^-16 relative; the product itself is exact in float32, 16 ≤ 24 bits.)
let bfloat16UnitRoundoff = 0x1p-8

/// factor · n · u, with u = 2^-24: the float32 rounding-error bound of a reduction of length n.
///
/// Higham's bound (Accuracy and Stability of Numerical Algorithms, §3.1, §4.2): a sum of n terms
/// evaluated in float32 in ANY order satisfies |fl(Σ xᵢ) − Σ xᵢ| ≤ γ_{n−1} Σ|xᵢ|, and a dot product
/// |fl(xᵀy) − xᵀy| ≤ γ_n Σ|xᵢ yᵢ|, with γ_n = n·u / (1 − n·u) ≈ n·u for n·u ≪ 1. The order does not
/// enter the bound, which is why it holds for every BLAS kernel and blocking (pairwise or blocked
/// summation only makes the actual error smaller). Fused multiply-adds only remove roundings.
///
/// The bound is relative to Σ|terms|, not to |Σ terms|. Comparing an error with the largest
/// magnitude of a row (max|c|) is valid when the terms do not cancel much, i.e. Σ|terms| is within a
/// small factor of max|c|: true for random-sign inputs of order 1 (Σ|aᵢbᵢ| / |Σ aᵢbᵢ| ~ √n on one
/// entry, but the row maximum is ~√(2 ln m) standard deviations, so Σ|terms|/max|c| ~ √n / 2 over a
/// row) — a `factor` ≥ 1 covers that and any amplification through later operations (layers,
/// normalisation, softmax), and must be stated where the bound is used. Where the test can compute
/// Σ|terms| itself (GemmBackendTests), it uses it and needs no such factor.
///
/// The worst case n·u is rarely approached (rounding errors of random data are closer to √n·u), so
/// a bound with factor 1 already has a large margin; a wrong index or a missing term, which gives
/// O(1) relative errors, fails every bound used here by orders of magnitude.
func float32Bound(reduction n: Int, factor: Double) -> Double {
    precondition(n >= 0 && factor >= 0)
    return factor * Double(n) * float32UnitRoundoff
}

/// γ_n = n·u / (1 − n·u) for a unit roundoff u (Higham's constant, rigorous for n·u < 1).
func highamGamma(_ n: Int, unitRoundoff u: Double = float32UnitRoundoff) -> Double {
    let nu = Double(n) * u
    precondition(nu < 1, "γ_n needs n·u < 1")
    return nu / (1 - nu)
}

/// The sum of the float32 reduction lengths along one forward pass of the transformer up to the
/// logits, per sequence position: each block's two RMSNorms (d each), the Q/K/V projections (d), the
/// scores (head dim), the softmax sum and the probability-weighted sum of values (L each), the output
/// projection (d), the gate/up projections (d), the down projection (mlp hidden), then ln_f (d) and
/// the head (d). An error made in an early operation is carried along the residual stream; summing
/// the lengths bounds the accumulated relative error to first order when each later operation has
/// relative condition number ≤ 1 (the normalisations rescale, they do not amplify relative error).
func forwardReductionLength(dModel d: Int, headDim hd: Int, mlpHidden ff: Int, layers: Int, seqLen L: Int) -> Int {
    layers * (2 * d + d + hd + 2 * L + d + d + ff) + 2 * d
}

/// `forwardReductionLength` of a model configuration at sequence length L.
func forwardReductionLength(_ c: ModelConfig, seqLen L: Int) -> Int {
    forwardReductionLength(dModel: c.dModel, headDim: c.headDim, mlpHidden: c.mlpHiddenSize, layers: c.nLayers, seqLen: L)
}

/// float64 unit roundoff 2^-53, for quantities the code accumulates in Double.
let float64UnitRoundoff = Double.ulpOfOne / 2

/// Relative bound on the error of ONE float32 evaluation of the objective's loss, |fl(L) − L| / |L|:
/// 2·n·u with n = `forwardReductionLength` (factor 2: cross-entropy is 2-Lipschitz in the logits, as
/// in ModelGradientTests and BF16Tests; the sum over tokens is in Double and adds nothing at this
/// scale). Two float32 evaluations of the same loss with different summation orders differ by at most
/// twice this.
func float32LossBound(_ c: ModelConfig, seqLen L: Int) -> Double {
    float32Bound(reduction: forwardReductionLength(c, seqLen: L), factor: 2)
}

/// The reduction length behind one gradient entry: the backward pass carries the forward's errors and
/// makes about twice its reductions again (3n in all, as in ModelGradientTests), and a weight
/// gradient dW = Σ_rows xᵀ·dy is itself a sum over every token row of the (global) batch. Higham's
/// bound does not depend on the order of that sum, so it covers any split of the rows into
/// micro-batches, ranks, or an all-reduce of per-rank partial sums (which is why the split's own
/// log2(k) or k − 1 additions need no separate term: they are part of the `tokens` reduction).
func backwardReductionLength(_ c: ModelConfig, seqLen L: Int, tokens: Int) -> Int {
    3 * forwardReductionLength(c, seqLen: L) + tokens
}

/// R_t: a bound on |m̂_t| / √v̂_t of Adam at step t (1-based) for ANY gradient sequence. By
/// Cauchy–Schwarz, |m_t| ≤ (1−β₁) Σ_k β₁^{t−k}|g_k| ≤ (1−β₁)/√(1−β₂) · √(Σ_{j<t} (β₁²/β₂)^j) · √v_t,
/// and the bias corrections multiply m/√v by √(1−β₂^t)/(1−β₁^t). R_1 = 1; R_20 ≈ 1.13 for
/// (0.9, 0.999); it grows to ≈ 7.3 only as t → ∞.
func adamRatioBound(step t: Int, beta1 b1: Double = 0.9, beta2 b2: Double = 0.999) -> Double {
    precondition(t >= 1)
    var geo = 0.0
    for j in 0..<t { geo += pow(b1 * b1 / b2, Double(j)) }
    return (1 - b1) / (1 - pow(b1, Double(t))) * ((1 - pow(b2, Double(t))) / (1 - b2)).squareRoot() * geo.squareRoot()
}

/// A stated (first-order, not rigorous) model of how two trainings that differ ONLY in the summation
/// order of their gradient sums (world size, micro-batch split, all-reduce order) drift apart.
///
/// 1. Per step, each gradient entry differs by at most δ relative: δ = F · 2 · 2 · (3n + tokens) · u.
///    One factor 2: two float32 evaluations (`backwardReductionLength`), each within (3n + tokens)·u of
///    the exact value relative to Σ|terms|; the other 2: the clip factor maxNorm/‖g‖ comes from the
///    norm of those gradients, whose relative difference is at most theirs. F = 1 (the file's
///    convention): Σ|terms| within a small factor of |g|. Entries whose gradient cancels to near zero
///    (F_i ≫ 1; Adam normalises them, so their update can flip sign, "near-zero v" entries) are NOT
///    covered by the formula; they rest on the worst-case n·u overestimating actual rounding (≈ √n·u)
///    by ~√n ≈ 70 at these lengths, and on the √P below.
/// 2. Adam turns that into an update difference ≤ lr_t · 2·R_t · δ per entry: with ĉ = m̂/√v̂,
///    |Δĉ| ≤ |Δm̂|/√v̂ + |m̂|·|Δv̂|/(2 v̂^{3/2}); both terms are ≤ R_t·δ by the Cauchy–Schwarz bound of
///    `adamRatioBound` (|Δm| ≤ δ·(1−β₁)Σβ₁^{t−k}|g_k|; v is a sum of positive terms, |Δv| ≤ 2δ·v). ε in
///    the denominator only lowers the sensitivity. Weight decay is common to both and contracts.
/// 3. The differences add up linearly over the steps from the first one at which the runs differ,
///    `maxParameterDifference`. NOT modelled: the feedback of Δp into later gradients through the
///    Hessian (valid while lr·‖H‖·steps ≪ 1) — the trajectory's amplification has no closed-form bound.
/// 4. A loss at step t (taken at the parameters after step t−1) changes by
///    ≤ ‖∇L_t‖₂ · √P · max|Δp| (first order, ‖Δp‖₂ ≤ √P·max|Δp|; ‖∇L_t‖₂ is the logged pre-clip
///    grad_norm of exactly that loss), plus the forward's own rounding, 2 · `float32LossBound` · |L|.
struct SummationOrderTrajectory {
    let config: ModelConfig
    /// the longest sequence (the `--max-length`), for the reduction lengths
    let seqLen: Int
    /// token rows of one step's global batch (sequences × seqLen, an upper bound)
    let globalTokens: Int
    var factor: Double = 1

    var parameterCount: Int { ParameterLayout(config).count }

    /// δ, the per-step relative gradient difference of point 1.
    var gradientRelative: Double {
        float32Bound(reduction: backwardReductionLength(config, seqLen: seqLen, tokens: globalTokens), factor: 4 * factor)
    }

    /// max|Δp| after each step (index t−1 for step t) given the learning rates of steps 1...T and the first
    /// step at which the two runs' arithmetic differs (0 before it). Point 2 and 3.
    func maxParameterDifference(lrs: [Double], firstDiffering: Int = 1) -> [Double] {
        var acc = 0.0
        return lrs.indices.map { i in
            let t = i + 1
            if t >= firstDiffering { acc += lrs[i] * 2 * adamRatioBound(step: t) * gradientRelative }
            return acc
        }
    }

    /// Point 4: the bound on |ΔL| for a loss `loss` with gradient norm `gradNorm`, taken at parameters
    /// that differ by at most `paramDifference`.
    func lossDifference(loss: Double, gradNorm: Double, paramDifference: Double) -> Double {
        2 * float32LossBound(config, seqLen: seqLen) * abs(loss) + gradNorm * Double(parameterCount).squareRoot() * paramDifference
    }
}

extension SummationOrderTrajectory {
    /// The model's tolerances for the "loss" and "val_loss" of each step of a reference run's metrics
    /// rows (which give each step's lr and grad_norm), keyed by step. val_loss is taken after its
    /// step's update, on the validation split, whose gradient norm is not logged: the largest logged
    /// training grad_norm stands in for it (same objective, same data distribution — a proxy, stated).
    func tolerances(reference rows: [[String: Any]], firstDiffering: Int = 1) -> [Int: (loss: Double, valLoss: Double?)] {
        func num(_ r: [String: Any], _ k: String) -> Double? { (r[k] as? NSNumber)?.doubleValue }
        var byStep: [Int: [String: Any]] = [:]
        for r in rows { if let s = (r["step"] as? NSNumber)?.intValue { byStep[s] = r } }
        guard let last = byStep.keys.max() else { return [:] }
        let lrs = (1...last).map { byStep[$0].flatMap { num($0, "lr") } ?? 0 }
        let dp = maxParameterDifference(lrs: lrs, firstDiffering: firstDiffering)
        let maxNorm = byStep.values.compactMap { num($0, "grad_norm") }.max() ?? 0
        var out: [Int: (loss: Double, valLoss: Double?)] = [:]
        for (s, r) in byStep {
            let before = s >= 2 ? dp[s - 2] : 0
            let loss = lossDifference(loss: num(r, "loss") ?? 0, gradNorm: num(r, "grad_norm") ?? maxNorm, paramDifference: before)
            let val = num(r, "val_loss").map { lossDifference(loss: $0, gradNorm: maxNorm, paramDifference: dp[s - 1]) }
            out[s] = (loss, val)
        }
        return out
    }
}
