import Foundation

/// RUN_DIR/metrics.jsonl: one JSON object per optimizer step, appended and flushed as it happens, so a
/// crash loses nothing already logged.
public final class MetricsWriter {
    let handle: FileHandle
    public let path: String

    public init(path: String, truncate: Bool = true) throws {
        self.path = path
        if truncate || !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw GiftError(.io, "\(path): cannot create the metrics file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw GiftError(.io, "\(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    /// Writes one line. Values: Int, Double (full precision, non-finite as null), String, Bool.
    public func write(_ fields: [(String, Any)]) {
        var parts: [String] = []
        for (k, v) in fields {
            let s: String
            switch v {
            case let d as Double: s = d.isFinite ? "\(d)" : "null"
            case let i as Int: s = "\(i)"
            case let b as Bool: s = b ? "true" : "false"
            case let t as String: s = "\"" + t.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            default: s = "\"\(v)\""
            }
            parts.append("\"\(k)\": \(s)")
        }
        handle.write(Data(("{" + parts.joined(separator: ", ") + "}\n").utf8))
    }

    deinit { try? handle.close() }

    /// Reads a metrics file back (for plots, summaries, comparisons and tests).
    public static func read(_ path: String) throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw GiftError(.io, "\(path): cannot read")
        }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}
