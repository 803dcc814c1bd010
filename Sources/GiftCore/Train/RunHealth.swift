import Foundation

/// The parameters a run falls back to when it ends broken: the last ones at which a training step had a
/// finite loss and gradient, copied just before that step's update (`Trainer.beforeUpdate`), unless a
/// validation loss measured at them was not finite.
///
/// Memory: one extra full copy of the parameters, on rank 0 only (the rank that saves the model), and one
/// copy (a memcpy) per optimizer step. Acceptable at the sizes trained here; for models near the memory
/// limit a cheaper keeper (the newest checkpoint, or a copy every N steps) would replace it.
public final class LastGoodParameters {
    public let parameters: FloatBuffer
    /// Optimizer steps done when the copy was made (0: the run's starting parameters); nil: no step was
    /// finite yet, so nothing is kept.
    public private(set) var stepsDone: Int?

    public init(count: Int) { parameters = FloatBuffer(count: count) }

    /// The validation loss after `stepsDone` steps: a non-finite one rules those parameters out.
    public func validated(_ loss: Double?, stepsDone: Int) { if let loss, !loss.isFinite { rejected = stepsDone } }

    /// The steps done at the last non-finite validation loss: those parameters are never kept.
    var rejected: Int?

    /// Keeps `p` (the parameters after `stepsDone` steps, whose next step was finite).
    public func keep(_ p: UnsafePointer<Float>, stepsDone: Int) {
        if stepsDone == rejected { return }
        parameters.pointer.update(from: p, count: parameters.count)
        self.stepsDone = stepsDone
    }
}

/// Whether a finished run is usable: its final parameters and validation loss must be finite. A broken
/// run says so first in its summary, saves the last good parameters as its model and exits non-zero.
public struct RunHealth: Sendable {
    public var nonFiniteParameters: Int
    public var parameterCount: Int
    public var finalValLoss: Double?

    public init(parameters p: FloatBuffer, finalValLoss: Double?) {
        var bad = 0
        for i in 0..<p.count where !p.pointer[i].isFinite { bad += 1 }
        nonFiniteParameters = bad; parameterCount = p.count; self.finalValLoss = finalValLoss
    }

    public var isBroken: Bool { nonFiniteParameters > 0 || finalValLoss.map { !$0.isFinite } ?? false }

    /// The summary's first sentence for a broken run (nil when healthy). `kept`: the steps done when the
    /// saved fallback parameters were copied (nil: none was finite, the starting parameters are saved).
    public func failureSentence(modelDir: String, kept: Int?, steps: Int) -> String? {
        guard isBroken else { return nil }
        var what: [String] = []
        if let v = finalValLoss, !v.isFinite { what.append("its final validation loss is \(v)") }
        if nonFiniteParameters > 0 { what.append("\(nonFiniteParameters) of its \(parameterCount) final parameters are not finite") }
        let saved = kept.map { k in
            "\(modelDir) holds the last good parameters instead of the final ones (\(k == 0 ? "the starting ones" : "those after step \(k) of \(steps)"), the last at which a training step had a finite loss and gradient)"
        } ?? "no training step had a finite loss and gradient, so \(modelDir) holds the starting parameters"
        return "FAILED: this run diverged (\(what.joined(separator: " and "))); \(saved). Lower --lr or check the data."
    }
}
