import ArgumentParser
import Foundation
import GiftCore

/// A diagnostic: what one ZeRO-3 rank's load of a model folder costs in memory and time.
struct LoadCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-check",
        abstract: "Measure the memory and speed of one rank's ranged load of a model folder (diagnostic).",
        discussion: """
        Loads the slice of MODEL_DIR's flat parameter buffer that rank --rank of --ranks holds under ZeRO-3 \
        (ModelFolder.loadRange: only the bytes of the tensors overlapping it are read) and prints one JSON \
        line: the range, the floats loaded, the bytes they hold, the peak resident memory during the load \
        minus the resident memory before it (VmHWM, reset just before the load, and VmRSS from \
        /proc/self/status), the weight-file bytes the range needs, the bytes the process read by read \
        calls meanwhile (rchar of /proc/self/io: the needed bytes, the headers, config.json and the index, \
        nothing else), the seconds and the MB/s of weight-file bytes.

        --full loads the whole model with ModelFolder.load and copies the slice out instead: the cost of \
        not using ranged loads, for comparison. One process, no MPI: start one per rank.

        Example:
          gift load-check model --rank 1 --ranks 4
        """,
        shouldDisplay: false)

    @Argument(help: "A model folder (config.json and model.safetensors or shards with an index).") var modelDir: String
    @Option(help: "The rank whose slice to load (0-based).") var rank: Int = 0
    @Option(help: "The number of ranks the parameters are split over.") var ranks: Int = 1
    @Flag(help: "Load the whole model, then copy the slice (for comparison).") var full = false

    func run() throws {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1") }
        guard (0..<ranks).contains(rank) else { throw ValidationError("--rank must be in 0..<\(ranks)") }
        let configPath = modelDir + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw GiftError(.io, "\(configPath): not found (a model folder needs a config.json)")
        }
        let count = ParameterLayout(try ModelConfig.parse(data, source: configPath)).count
        let range = shardRanges(count: count, parts: ranks)[rank]

        let resetPeak = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        let before = MemoryInfo.resident() ?? 0
        let readBefore = Self.bytesRead()
        let start = Date()
        let buffer: FloatBuffer
        if full {
            let whole = try ModelFolder.load(modelDir).1
            buffer = FloatBuffer(count: range.count)
            buffer.pointer.update(from: whole.pointer + range.lowerBound, count: range.count)
        } else {
            buffer = try ModelFolder.loadRange(modelDir, range: range).1
        }
        let seconds = Date().timeIntervalSince(start)
        let peak = MemoryInfo.peakResident() ?? 0
        let readDuring = Self.bytesRead().flatMap { a in readBefore.map { a - $0 } } ?? -1
        let fileBytes = try ModelFolder.rangeReadBytes(modelDir, range: full ? 0..<count : range)
        let out: [String: Any] = [
            "rank": rank, "ranks": ranks, "full": full, "range": [range.lowerBound, range.upperBound],
            "floats": buffer.count, "bytes": buffer.count * MemoryLayout<Float>.stride,
            "rss_before": before, "peak_rss": peak, "peak_increase": peak - before,
            "peak_reset": resetPeak, "file_bytes_read": fileBytes, "read_call_bytes": readDuring,
            "seconds": seconds,
            "mb_per_s": seconds > 0 ? Double(fileBytes) / seconds / 1e6 : 0,
        ]
        let json = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Bytes this process has read through read calls (rchar in /proc/self/io; mapped pages not counted).
    static func bytesRead() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("rchar:") }
            .flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) }
    }
}
