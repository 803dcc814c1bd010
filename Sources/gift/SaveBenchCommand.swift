import ArgumentParser
import Foundation
import GiftCore

struct SaveBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save-bench",
        abstract: "Measure checkpoint shard writing speed (MB/s of raw state, fsync included) on real training state.",
        discussion: """
        Reads the params, m and v sections of a checkpoint shard (--from: a shard file or a checkpoint folder,
        whose rank-0 shard is used) and writes them again as a shard under each zstd --level and --workers
        setting, plus an uncompressed write of the same bytes (the disk's speed), interleaved --rounds times.
        Prints per write the raw MB/s, the compression ratio and the CPU seconds, then one JSON object per
        setting (median and range over the rounds). --dump FILE writes the same floats raw (params, m, v
        back to back, little-endian) for writing them with another tool, e.g. torch.save
        (cluster/experiments/checkpoint-bench.sh does both side by side).
        Example: gift save-bench --from runs/x/checkpoints/step-00000050 --level 1,3 --workers 0,2
        """)

    @Option(help: "A checkpoint shard (.gshard file) or checkpoint folder.") var from: String
    @Option(help: "zstd levels, comma-separated (negative levels are zstd's fast modes).") var level: String = "1,3"
    @Option(help: "zstd worker threads, comma-separated (0: compress on the calling thread).") var workers: String = "0"
    @Option(help: "Rounds over all settings.") var rounds: Int = 3
    @Option(help: "Folder to write into (default: a temporary folder on the checkpoint's file system).") var dir: String?
    @Option(help: "Also write the raw floats to this file and stop.") var dump: String?

    func run() throws {
        let shard = try SaveBench.shardPath(from)
        let contents = try ShardFile.read(path: shard)
        let sections = try ["params", "m", "v"].map { ($0, try contents.floats($0)) }
        if let dump {
            try SaveBench.dumpRaw(sections.map(\.1), to: dump)
            print("wrote \(dump): \(sections.map { "\($0.0) \($0.1.count)" }.joined(separator: ", ")) floats")
            return
        }
        func ints(_ s: String, _ flag: String) throws -> [Int] {
            try s.split(separator: ",").map { guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(flag): '\($0)' is not an integer") }; return v }
        }
        let levels = try ints(level, "--level"), ws = try ints(workers, "--workers")
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        let out = dir ?? ((shard as NSString).deletingLastPathComponent + "/.save-bench-\(getpid())")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: out) } }
        var settings: [SaveBench.Setting] = [.raw]
        for l in levels { for w in ws { settings.append(.zstd(level: l, workers: w)) } }
        let raw = sections.reduce(0) { $0 + 4 * $1.1.count }
        print(String(format: "save-bench: %@, %.1f MB raw (params, m, v), %d settings × %d rounds, writing into %@",
                     shard, Double(raw) / 1e6, settings.count, rounds, out))
        let results = try SaveBench.run(sections: sections, settings: settings, rounds: rounds, dir: out) { line in print(line) }
        for r in results { print(r.json) }
    }
}
