import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `gift save-bench`: how fast a checkpoint shard of real training state is written (fsync included),
/// under several zstd settings and, as the disk's own figure, uncompressed.
public enum SaveBench {
    public enum Setting: Equatable, Sendable {
        case raw
        case zstd(level: Int, workers: Int)
        public var name: String {
            switch self {
            case .raw: return "raw"
            case .zstd(let l, let w): return "zstd level \(l) workers \(w)"
            }
        }
    }

    public struct Result {
        public let setting: Setting
        public var mbPerS: [Double] = []
        public var cpuSeconds: [Double] = []
        public var ratio = 1.0
        public var json: String {
            let s = mbPerS.sorted(), mid = s[s.count / 2]
            let kind: String
            switch setting {
            case .raw: kind = "\"setting\": \"raw\""
            case .zstd(let l, let w): kind = "\"setting\": \"zstd\", \"level\": \(l), \"workers\": \(w)"
            }
            return String(format: "{%@, \"mb_per_s_median\": %.1f, \"mb_per_s_min\": %.1f, \"mb_per_s_max\": %.1f, \"ratio\": %.3f, \"cpu_s_median\": %.3f, \"rounds\": %d}",
                          kind, mid, s.first!, s.last!, ratio, cpuSeconds.sorted()[cpuSeconds.count / 2], s.count)
        }
    }

    /// The shard file itself, or the rank-0 shard of a checkpoint folder.
    public static func shardPath(_ p: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
            throw GiftError(.io, "\(p): no such shard file or checkpoint folder")
        }
        guard isDir.boolValue else { return p }
        let names = (try FileManager.default.contentsOfDirectory(atPath: p)).filter { $0.hasSuffix(".gshard") }.sorted()
        guard let first = names.first else { throw GiftError(.io, "\(p): checkpoint folder holds no shard file") }
        return p + "/" + first
    }

    /// The floats back to back, little-endian, fsynced.
    public static func dumpRaw(_ arrays: [[Float]], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot create (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var off = 0
        for a in arrays {
            try a.withUnsafeBytes { try ShardFile.pwriteAll(fd, $0, offset: off, path: path) }
            off += 4 * a.count
        }
        guard fsync(fd) == 0 else { throw GiftError(.io, "\(path): fsync failed") }
    }

    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return s(u.ru_utime) + s(u.ru_stime)
    }

    /// Writes the sections once per setting per round (settings interleaved within a round).
    public static func run(sections: [(String, [Float])], settings: [Setting], rounds: Int, dir: String,
                           log: (String) -> Void) throws -> [Result] {
        let raw = sections.reduce(0) { $0 + 4 * $1.1.count }
        var results = settings.map { Result(setting: $0) }
        for round in 1...rounds {
            for (i, s) in settings.enumerated() {
                let path = dir + "/bench-\(i).shard"
                unlink(path)
                let c0 = cpuSeconds(), t0 = DispatchTime.now().uptimeNanoseconds
                var fileBytes = raw
                switch s {
                case .raw:
                    try dumpRaw(sections.map(\.1), to: path)
                case .zstd(let level, let workers):
                    let r = try withPointers(sections) { floats in
                        try ShardFile.writeDetailed(path: path, floats: floats,
                                                    options: ShardFile.Options(level: level, workers: workers))
                    }
                    fileBytes = r.fileBytes
                }
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, cpu = cpuSeconds() - c0
                unlink(path)
                results[i].mbPerS.append(Double(raw) / 1e6 / dt)
                results[i].cpuSeconds.append(cpu)
                results[i].ratio = Double(raw) / Double(fileBytes)
                log(String(format: "round %d %@: %.1f MB/s, ratio %.3fx, %.2f s, cpu %.2f s", round, s.name,
                           Double(raw) / 1e6 / dt, Double(raw) / Double(fileBytes), dt, cpu))
            }
        }
        return results
    }

    static func withPointers<R>(_ sections: [(String, [Float])],
                                _ body: ([(name: String, pointer: UnsafePointer<Float>, count: Int)]) throws -> R) rethrows -> R {
        // the arrays outlive the call: their storage is stable while `sections` is alive
        var ptrs: [(name: String, pointer: UnsafePointer<Float>, count: Int)] = []
        func go(_ k: Int) throws -> R {
            if k == sections.count { return try body(ptrs) }
            return try sections[k].1.withUnsafeBufferPointer { b in
                ptrs.append((sections[k].0, b.baseAddress!, b.count))
                return try go(k + 1)
            }
        }
        return try go(0)
    }
}
