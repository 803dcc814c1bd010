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
