import Foundation

/// Learning-rate schedules with linear warmup (HF transformers' shapes, evaluated at the 1-based step
/// during warmup so the first step does not waste itself at lr 0).
public enum LRSchedule: String, CaseIterable, Codable, Sendable {
    case linear, cosine, constant

    /// Learning rate of optimizer step `step` (0-based) of `total`, with `warmup` warmup steps.
    /// `minRatio`: cosine's floor as a fraction of `base` (HF's cosine_with_min_lr with min_lr_rate:
    /// factor·(1 − r) + r after warmup); the other schedules take none.
    public func lr(step: Int, total: Int, warmup: Int, base: Double, minRatio: Double = 0) -> Double {
        if warmup > 0 && step < warmup { return base * Double(step + 1) / Double(warmup) }
        if self == .constant { return base }
        let span = max(1, total - warmup)
        let p = min(1, max(0, Double(step - warmup) / Double(span)))
        switch self {
        case .linear: return base * (1 - p)
        case .cosine: return base * (minRatio + (1 - minRatio) * 0.5 * (1 + Foundation.cos(Double.pi * p)))
        case .constant: return base
        }
    }

    /// Warmup steps for a ratio of the total (rounded up, as HF's get_*_schedule_with_warmup callers do).
    public static func warmupSteps(ratio: Double, total: Int) -> Int { Int((ratio * Double(total)).rounded(.up)) }
}
