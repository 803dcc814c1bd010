import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Step progress for a training loop.
///
/// On a terminal it redraws one line in place (`\r` … `ESC[K`), at most every `minInterval` seconds:
///
///     [#########...........] 45/100 45% 3.2 step/s ETA 0:17 loss 1.234
///
/// Elsewhere (a log file, a pipe) it prints a plain line at most every `plainEvery` seconds:
///
///     step 45/100 (45%) 3.2 step/s ETA 0:17 loss 1.234
///
/// In both modes the first update and the last step (`step >= total`) always print; on the last step the
/// ETA is replaced by the total time (`elapsed 0:31`). Rate and ETA come from the wall time since the first
/// update (`--:--` until a second update makes them known); durations print as m:ss, or h:mm:ss from an
/// hour on. A `total` ≤ 0 means unknown: no bar, percentage or ETA. `finish()` prints a throttled-away
/// final state and, on a terminal, ends the line. Not thread-safe: call from one thread.
public final class ProgressReporter {
    public let total: Int
    public let isTerminal: Bool
    let output: (String) -> Void
    let minInterval: Double
    let plainEvery: Double
    /// The clock, in seconds (monotonic).
    let now: () -> Double

    static let barWidth = 20

    private var startTime: Double?
    private var startStep = 0
    private var lastPrintTime = -Double.infinity
    /// The latest state not yet printed (throttled away), for `finish()`.
    private var pending: (step: Int, fields: [(String, String)], time: Double)?
    /// A terminal line is drawn and not yet ended with a newline.
    private var lineOpen = false
    private var finished = false

    public init(total: Int, isTerminal: Bool,
                output: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
                minInterval: Double = 0.2, plainEvery: Double = 10,
                clock: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime }) {
        self.total = total
        self.now = clock
        self.isTerminal = isTerminal
        self.output = output
        self.minInterval = minInterval
        self.plainEvery = plainEvery
    }

    /// Whether standard error is a terminal.
    public static var stderrIsTerminal: Bool { isatty(2) != 0 }

    public func update(step: Int, fields: [(String, String)]) {
        guard !finished else { return }
        let t = now()
        let first = startTime == nil
        if first { startTime = t; startStep = step }
        let last = total > 0 && step >= total
        let interval = isTerminal ? minInterval : plainEvery
        if first || last || t - lastPrintTime >= interval {
            emit(step: step, fields: fields, time: t)
        } else {
            pending = (step, fields, t)
        }
    }

    public func finish() {
        guard !finished else { return }
        finished = true
        if let p = pending { emit(step: p.step, fields: p.fields, time: p.time) }
        if lineOpen { output("\n"); lineOpen = false }
    }

    private func emit(step: Int, fields: [(String, String)], time: Double) {
        pending = nil
        lastPrintTime = time
        let text = line(step: step, fields: fields, time: time)
        if isTerminal {
            output("\r" + text + "\u{1B}[K")
            lineOpen = true
        } else {
            output(text + "\n")
        }
    }

    /// The status text for a step (without `\r`, escape codes or newline).
    func line(step: Int, fields: [(String, String)], time: Double) -> String {
        let elapsed = time - (startTime ?? time)
        let done = step - startStep
        let rate: Double? = elapsed > 0 && done > 0 ? Double(done) / elapsed : nil
        let known = total > 0
        let last = known && step >= total
        var parts: [String] = []
        if isTerminal {
            if known {
                let frac = min(max(Double(step) / Double(total), 0), 1)
                let filled = Int(frac * Double(Self.barWidth))
                parts.append("[" + String(repeating: "#", count: filled)
                             + String(repeating: ".", count: Self.barWidth - filled) + "]")
                parts.append("\(step)/\(total)")
                parts.append("\(Self.percent(step, total))%")
            } else {
                parts.append("step \(step)")
            }
        } else {
            parts.append(known ? "step \(step)/\(total) (\(Self.percent(step, total))%)" : "step \(step)")
        }
        parts.append((rate.map(Self.formatRate) ?? "--") + " step/s")
        if last {
            parts.append("elapsed " + Self.formatDuration(elapsed))
        } else if known {
            let eta = rate.map { Double(max(total - step, 0)) / $0 }
            parts.append("ETA " + (eta.map(Self.formatDuration) ?? "--:--"))
        }
        for (k, v) in fields { parts.append(k.isEmpty ? v : "\(k) \(v)") }
        return parts.joined(separator: " ")
    }

    static func percent(_ step: Int, _ total: Int) -> Int {
        min(max(Int((Double(step) * 100 / Double(total)).rounded(.down)), 0), 100)
    }

    /// "123", "45.6", "3.2", "0.25", "0.0012".
    static func formatRate(_ r: Double) -> String {
        guard r.isFinite else { return "--" }
        if r >= 100 { return String(format: "%.0f", r) }
        if r >= 1 { return String(format: "%.1f", r) }
        if r >= 0.01 { return String(format: "%.2f", r) }
        return String(format: "%.2g", r)
    }

    /// m:ss below an hour ("0:17", "12:05"), h:mm:ss from an hour on ("1:02:03"); "--:--" when unknown.
    static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e9 else { return "--:--" }
        let s = Int(seconds.rounded())
        let h = s / 3600, m = (s % 3600) / 60, sec = s % 60
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return h > 0 ? "\(h):\(two(m)):\(two(sec))" : "\(m):\(two(sec))"
    }
}
