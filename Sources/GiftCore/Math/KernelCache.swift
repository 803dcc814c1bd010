import Foundation

/// This machine's kernel measurements, kept between runs: a run that measures (`KernelChoice.table`)
/// stores its timings under a key naming everything that decides them (CPU, thread count, the BLAS and
/// its core, oneDNN's build and ISA, the candidates, the timed shapes), and a later run with the same key
/// takes them instead of measuring. Two reasons: a fresh run with the same seed, data and rank count then
/// runs the same kernels as the last one, so its losses are bit-identical to it (a new measurement near a
/// tie could choose otherwise, and other kernels sum in another order); and a run starts a second sooner.
///
/// Where: GIFT_KERNEL_CACHE (a file path, or `off` to measure every run and store nothing), else
/// $XDG_CACHE_HOME/gift/kernels.json, else ~/.cache/gift/kernels.json. Delete the file to measure again
/// (after a library upgrade the key changes by itself).
///
/// The file is JSON: {"version": 1, "entries": {KEY: {"candidates": [summary, ...], "seconds": [[s, ...], ...],
/// "measured": ISO date}}}. It is read as untrusted: a file that does not parse, is over `maxBytes`, or whose
/// entry does not match the key's candidates and shapes (counts, finite positive seconds) is ignored with a
/// warning, and the run measures; writes are atomic (rename), at most `maxEntries` kept (the newest).
public enum KernelCache {
    public static let maxBytes = 4 << 20
    public static let maxEntries = 64

    /// The file in use, or nil when GIFT_KERNEL_CACHE=off (or no home to put it in).
    public static var path: String? {
        let env = ProcessInfo.processInfo.environment
        if let p = env["GIFT_KERNEL_CACHE"], !p.isEmpty { return p == "off" ? nil : p }
        if let x = env["XDG_CACHE_HOME"], x.hasPrefix("/") { return x + "/gift/kernels.json" }
        if let h = env["HOME"], h.hasPrefix("/") { return h + "/.cache/gift/kernels.json" }
        return nil
    }

    /// What decides a measurement: same key, same timings to be expected.
    public static func key(candidates: [GemmKernels], shapes: [KernelChoice.Shape]) -> String {
        let s = shapes.map { "\($0.layer)/\($0.shapeClass.rawValue)/\($0.timed.rows)x\($0.timed.inDim)x\($0.timed.outDim)" }
        return ["cpu=\(CPU.summary)", "threads=\(Gemm.threads)", "blas=\(Blas.summary)", "onednn=\(Gemm.onednnDescription)",
                "candidates=\(candidates.map(\.summary).joined(separator: ","))", "shapes=\(s.joined(separator: ","))"]
            .joined(separator: "; ")
    }

    /// One stored measurement: the candidates' summaries, seconds[c][s], and when it was measured.
    struct Entry { var candidates: [String], seconds: [[Double]], measured: String }

    /// The stored seconds for `key` (one row per candidate, one column per shape), with the date they were
    /// measured; nil when absent or unusable (`warning` then gets a line naming the file and the fault).
    public static func lookup(key: String, candidates: [GemmKernels], shapes: Int, at file: String,
                              warning: (String) -> Void) -> (seconds: [[Double]], measured: String)? {
        guard FileManager.default.fileExists(atPath: file), let entries = read(file, warning: warning),
              let e = entries[key] else { return nil }
        guard e.candidates == candidates.map(\.summary), e.seconds.allSatisfy({ $0.count == shapes }) else {
            warning("kernel cache \(file): the entry for this machine does not match its key's candidates and shapes: measuring again")
            return nil
        }
        return (e.seconds, e.measured)
    }

    /// Adds (or replaces) `key`'s timings, keeping the newest `maxEntries`; a failure to write is a
    /// warning, never an error (the run has its measurement either way).
    public static func store(key: String, table: KernelChoice.Table, at file: String, warning: (String) -> Void) {
        var entries = FileManager.default.fileExists(atPath: file) ? read(file, warning: { _ in }) ?? [:] : [:]
        entries[key] = Entry(candidates: table.candidates.map(\.summary), seconds: table.seconds,
                             measured: ISO8601DateFormatter().string(from: Date()))
        let kept = entries.sorted { $0.value.measured > $1.value.measured }.prefix(maxEntries)
        let object: [String: Any] = ["version": 1, "entries": Dictionary(uniqueKeysWithValues: kept.map { k, e in
            (k, ["candidates": e.candidates, "seconds": e.seconds, "measured": e.measured] as [String: Any])
        })]
        do {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            warning("kernel cache \(file) not written (\(error)): the next run measures again")
        }
    }

    /// The file's entries; nil (with a warning) when it is unreadable, too large or not a version-1 cache.
    /// Entries that are malformed (a field missing, a time that is not a positive finite number) are
    /// dropped one by one.
    static func read(_ file: String, warning: (String) -> Void) -> [String: Entry]? {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: file),
              let size = (attrs[.size] as? NSNumber)?.intValue, size <= maxBytes,
              let data = FileManager.default.contents(atPath: file) else {
            warning("kernel cache \(file): unreadable or over \(maxBytes) bytes: ignored, measuring again"); return nil
        }
        guard let root = try? StrictJSON.parse([UInt8](data)), case .object(let o) = root,
              o["version"]?.intValue == 1, case .object(let raw)? = o["entries"] else {
            warning("kernel cache \(file): not a gift kernel cache (version 1): ignored, measuring again; delete it to silence this")
            return nil
        }
        var entries: [String: Entry] = [:]
        for (k, v) in raw {
            guard case .object(let e) = v, case .array(let cs)? = e["candidates"], case .array(let rows)? = e["seconds"],
                  case .string(let measured)? = e["measured"] else { continue }
            let names = cs.compactMap { c -> String? in if case .string(let s) = c { return s }; return nil }
            let seconds = rows.map { row -> [Double] in
                guard case .array(let cells) = row else { return [] }
                let v = cells.compactMap { c -> Double? in
                    if case .number(let t) = c, let x = Double(t), x.isFinite, x > 0 { return x }; return nil
                }
                return v.count == cells.count ? v : []   // one bad time spoils the row
            }
            guard names.count == cs.count, names.count == seconds.count, !seconds.contains(where: \.isEmpty) else { continue }
            entries[k] = Entry(candidates: names, seconds: seconds, measured: measured)
        }
        return entries
    }
}
