import Foundation

/// Wall time per phase of a step (`gift bench --profile`). Off by default: one branch per call.
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var totals: [String: Double] = [:]
    nonisolated(unsafe) static var order: [String] = []

    @inline(__always)
    public static func measure<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if totals[phase] == nil { order.append(phase) }
            totals[phase, default: 0] += dt
        }
        return try body()
    }

    public static func reset() { totals = [:]; order = [] }
    /// The accumulated totals, to keep several measurements apart.
    public static var state: (totals: [String: Double], order: [String]) {
        get { (totals, order) }
        set { totals = newValue.totals; order = newValue.order }
    }
    /// (phase, seconds) in first-seen order.
    public static var report: [(String, Double)] { order.map { ($0, totals[$0]!) } }
}
