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

        --base-dtype bf16 measures instead what a LoRA rank's `gift train --base-dtype bf16` load holds: \
        the whole base read (or, for a preset name, initialised with --seed) straight into the bf16 store \
        a range at a time (bytes: the store's); with --full, the whole model loaded in fp32 first and then \
        rounded, for comparison. --rank and --ranks do not apply (every such rank holds the whole base).

        Examples:
          gift load-check model --rank 1 --ranks 4
          gift load-check model --base-dtype bf16
        """,
        shouldDisplay: false)

    @Argument(help: "A model folder (config.json and model.safetensors or shards with an index); with --base-dtype bf16 also a preset.") var modelDir: String
    @Option(help: "The rank whose slice to load (0-based).") var rank: Int = 0
    @Option(help: "The number of ranks the parameters are split over.") var ranks: Int = 1
    @Flag(help: "Load the whole model, then copy the slice (for comparison).") var full = false
    @Option(help: "fp32 (a ZeRO-3 rank's slice) or bf16 (a LoRA rank's bf16 base store).") var baseDtype: String = "fp32"
    @Option(help: "A preset's initialisation seed (--base-dtype bf16).") var seed: UInt64 = 0

    func run() throws {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1") }
        guard (0..<ranks).contains(rank) else { throw ValidationError("--rank must be in 0..<\(ranks)") }
        guard let dtype = BaseDtype(rawValue: baseDtype) else { throw ValidationError("--base-dtype must be fp32 or bf16") }
        var out: [String: Any] = ["full": full, "base_dtype": baseDtype]
        if dtype == .bf16 {
            let config = try Plan.modelConfig(modelDir), n = ParameterLayout(config).count
            out["bytes"] = try measure(into: &out) { try loadStore(config) }
            out["floats"] = n; out["fp32_bytes"] = 4 * n
            out["load_buffer_bytes"] = BF16BaseStore.loadBufferBytes(config)
        } else {
            let config = try Plan.modelConfig(modelDir), count = ParameterLayout(config).count
            let range = shardRanges(count: count, parts: ranks)[rank]
            out["bytes"] = try measure(into: &out) { try loadSlice(range) }
            let fileBytes = try ModelFolder.rangeReadBytes(modelDir, range: full ? 0..<count : range)
            out["rank"] = rank; out["ranks"] = ranks; out["range"] = [range.lowerBound, range.upperBound]
            out["floats"] = range.count; out["file_bytes_read"] = fileBytes
            out["mb_per_s"] = (out["seconds"] as! Double) > 0 ? Double(fileBytes) / (out["seconds"] as! Double) / 1e6 : 0
        }
        let json = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Runs `load` (which returns the bytes it holds and the object holding them) between the
    /// measurements: the peak resident memory during it (VmHWM reset first), the resident memory before,
    /// the bytes read by read calls, the seconds.
    func measure(into out: inout [String: Any], _ load: () throws -> (Int, AnyObject)) throws -> Int {
        let resetPeak = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
        let before = MemoryInfo.resident() ?? 0
        let readBefore = Self.bytesRead()
        let start = Date()
        let (bytes, held) = try load()
        let seconds = Date().timeIntervalSince(start)
        let readDuring = Self.bytesRead().flatMap { a in readBefore.map { a - $0 } } ?? -1
        let peak = withExtendedLifetime(held) { MemoryInfo.peakResident() ?? 0 }
        out["rss_before"] = before; out["peak_rss"] = peak; out["peak_increase"] = peak - before
        out["peak_reset"] = resetPeak; out["seconds"] = seconds; out["read_call_bytes"] = readDuring
        return bytes
    }

    /// A ZeRO-3 rank's slice (or the whole model, then the slice, with --full).
    func loadSlice(_ range: Range<Int>) throws -> (Int, AnyObject) {
        let buffer: FloatBuffer
        if full {
            let whole = try ModelFolder.load(modelDir).1
            buffer = FloatBuffer(count: range.count)
            buffer.pointer.update(from: whole.pointer + range.lowerBound, count: range.count)
        } else {
            buffer = try ModelFolder.loadRange(modelDir, range: range).1
        }
        return (buffer.count * MemoryLayout<Float>.stride, buffer)
    }

    /// A LoRA rank's bf16 base (or, with --full, the fp32 model loaded whole, then rounded).
    func loadStore(_ config: ModelConfig) throws -> (Int, AnyObject) {
        let store: BF16BaseStore
        if !full {
            store = try BF16BaseStore.open(model: modelDir, seed: seed).1
        } else {
            let whole = ModelConfig.isPreset(modelDir) ? ParameterLayout(config).initialize(seed: seed) : try ModelFolder.load(modelDir).1
            store = try withExtendedLifetime(whole) { try BF16BaseStore(config: config, from: whole.pointer) }
        }
        return (store.bytes, store)
    }

    /// Bytes this process has read through read calls (rchar in /proc/self/io; mapped pages not counted).
    static func bytesRead() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("rchar:") }
            .flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) }
    }
}
