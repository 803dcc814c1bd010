import Foundation

/// What Linux reports about memory: the node's available memory and this process's peak resident size.
public enum MemoryInfo {
    /// MemAvailable from /proc/meminfo in bytes (nil where there is no such file or field).
    public static func available() -> Int? { field("MemAvailable:", in: "/proc/meminfo") }

    /// VmRSS (resident set now) of this process in bytes, from /proc/self/status.
    public static func resident() -> Int? { field("VmRSS:", in: "/proc/self/status") }

    /// VmHWM (peak resident set) of this process in bytes, from /proc/self/status.
    public static func peakResident() -> Int? { field("VmHWM:", in: "/proc/self/status") }

    /// A "Name:   123 kB" line's value in bytes.
    static func field(_ name: String, in path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let v = parts.first.flatMap({ Int($0) }) else { return nil }
            return parts.count > 1 && parts[1] == "kB" ? v * 1024 : v
        }
        return nil
    }

    /// "1.23 GiB".
    public static func format(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
}
