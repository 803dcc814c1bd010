import Foundation

/// What Linux reports about memory: the node's available memory and this process's peak resident size.
public enum MemoryInfo {
    /// MemAvailable from /proc/meminfo in bytes (nil where there is no such file or field).
    public static func available() -> Int? { field("MemAvailable:", in: "/proc/meminfo") }

    /// VmRSS (resident set now) of this process in bytes, from /proc/self/status.
    public static func resident() -> Int? { field("VmRSS:", in: "/proc/self/status") }

    /// VmHWM (peak resident set) of this process in bytes, from /proc/self/status.
    public static func peakResident() -> Int? { field("VmHWM:", in: "/proc/self/status") }

    /// What this process's memory cgroup still allows (its limit minus its usage, the tightest of it and
    /// its parents), with the file the limit came from; nil where no cgroup sets a limit. cgroup v2
    /// (memory.max, memory.current) and v1 (memory.limit_in_bytes, memory.usage_in_bytes).
    public static func cgroupRoom() -> (bytes: Int, source: String)? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        var best: (Int, String)?
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            let (root, limitFile, usageFile): (String, String, String)
            if f[0] == "0" && f[1].isEmpty { (root, limitFile, usageFile) = ("/sys/fs/cgroup", "memory.max", "memory.current") }
            else if f[1].split(separator: ",").contains("memory") {
                (root, limitFile, usageFile) = ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
            } else { continue }
            var path = String(f[2])
            while true {
                let dir = root + (path == "/" ? "" : path)
                if let limit = number(dir + "/" + limitFile), limit < 1 << 60, let used = number(dir + "/" + usageFile),
                   best.map({ limit - used < $0.0 }) ?? true {
                    best = (max(0, limit - used), dir + "/" + limitFile)
                }
                if path == "/" || path.isEmpty { break }
                path = (path as NSString).deletingLastPathComponent
            }
        }
        return best.map { (bytes: $0.0, source: $0.1) }
    }

    /// This process's address-space limit (RLIMIT_AS: `ulimit -v`, `prlimit --as`), nil where unlimited.
    public static func addressSpaceLimit() -> Int? {
        var r = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &r) == 0, r.rlim_cur < 1 << 62 else { return nil }
        return Int(r.rlim_cur)
    }

    /// A file holding one integer ("max" and unreadable files: nil).
    static func number(_ path: String) -> Int? {
        guard let t = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(t.trimmingCharacters(in: .whitespacesAndNewlines))
    }

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
