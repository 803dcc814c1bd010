import Foundation
import XCTest
@testable import GiftCore

/// Deterministic random Float arrays for tests.
func randomFloats(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    let r = CounterRNG(seed, 77)
    return (0..<n).map { Float(scale * r.normal(UInt64($0))) }
}

/// The repository root (the folder holding Package.swift) and shared/ beside it.
let packageRoot: URL = {
    var u = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: u.appendingPathComponent("Package.swift").path) {
        u.deleteLastPathComponent()
    }
    return u
}()
let goldenDir = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/golden")

/// Central finite-difference check of a scalar function of a Float array against an analytic gradient.
/// The function is evaluated in Double; `h` is the step. Entries are compared with
/// |analytic − numeric| ≤ rtol·|numeric| + atol·max|analytic| (atol covers float32 rounding of small entries).
func checkGradient(_ name: String, x: inout [Float], analytic: [Float], indices: [Int]? = nil,
                   h: Float = 1e-2, rtol: Double = 1e-2, atol: Double = 1e-3,
                   file: StaticString = #filePath, line: UInt = #line, f: ([Float]) -> Double) {
    let gmax = analytic.map { Double(abs($0)) }.max() ?? 0
    for i in indices ?? Array(0..<x.count) {
        let x0 = x[i]
        x[i] = x0 + h; let fp = f(x)
        x[i] = x0 - h; let fm = f(x)
        x[i] = x0
        let num = (fp - fm) / Double(2 * h)
        let err = abs(Double(analytic[i]) - num)
        XCTAssertLessThanOrEqual(err, rtol * abs(num) + atol * gmax,
                                 "\(name)[\(i)]: analytic \(analytic[i]) vs numeric \(num)", file: file, line: line)
    }
}

/// Σ out[i]·proj[i] in Double: a scalar whose gradient w.r.t. out is proj.
func project(_ out: [Float], _ proj: [Float]) -> Double {
    zip(out, proj).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}
