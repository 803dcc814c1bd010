import Foundation

/// When and how to checkpoint (flags of `gift train`).
public struct CheckpointOptions: Sendable, Equatable {
    /// Every N optimizer steps (0: only at the end of training).
    public var every = 0
    /// Complete checkpoints kept (the newest K), besides those kept by `keepEvery`.
    public var keepLast = 2
    /// Also keep every checkpoint whose step is a multiple of M (0: none).
    public var keepEvery = 0
    /// zstd level: 1 by measurement (cluster/experiments/checkpoint-bench.sh on a trained model's params
    /// and moments: faster than 3 with a ratio as good, 1.26x against 1.25x).
    public var level = 1
    /// zstd worker threads (0: compress on the writing thread).
    public var workers = CheckpointOptions.defaultWorkers
    /// Nice value of a background save's threads (writer and zstd workers): 19 lets training take the
    /// cores it uses first, so a save in flight slows it little; 0 competes as an equal.
    public var writerNice = 19
    public static let defaultWorkers = min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))
    /// Write in the background while training continues (at most one save in flight).
    public var async = true
    public init() {}
}

/// The trainer state a checkpoint restores, besides the flat buffers.
public struct TrainState: Sendable, Equatable {
    /// Optimizer steps completed (the next step to run).
    public var step: Int
    /// AdamW updates applied (skipped non-finite steps do not count): its bias correction.
    public var adamStep: Int
    public var consecutiveBadSteps: Int
}

/// RUN_DIR/checkpoints/step-NNNNNNNN/: `manifest.json` (written last) and one zstd shard per rank, each
/// holding a contiguous slice of the parameters and of both AdamW moments. Saving writes into a hidden
/// temporary folder, fsyncs files and folder, renames it into place when every rank is done, then
/// replaces the `latest` pointer atomically: a crash at any moment leaves the previous checkpoint whole
/// and never a partial one that resume would pick.
public enum Checkpoint {
    public static let formatVersion = 1
    public static func folderName(step: Int) -> String { String(format: "step-%08d", step) }
    public static func shardName(rank: Int, of n: Int) -> String { String(format: "shard-%05d-of-%05d.gshard", rank, n) }

    /// Complete-looking checkpoint folders under `dir` (RUN_DIR/checkpoints), newest first.
    public static func candidates(in dir: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("step-"), n.count == 13, let s = Int(n.dropFirst(5)) else { return nil }
            return (s, dir + "/" + n)
        }.sorted { $0.0 > $1.0 }
    }

    /// fsync a file or folder (a folder's entry list is durable only after this).
    public static func fsyncPath(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw GiftError(.io, "\(path): cannot open to sync (errno \(errno))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw GiftError(.io, "\(path): fsync failed (errno \(errno))") }
    }

    /// Atomically replaces `path` with `contents` (temp file in the same folder, fsync, rename, fsync folder).
    public static func writeAtomically(_ contents: Data, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = dir + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: contents) else { throw GiftError(.io, "\(tmp): cannot write") }
        try fsyncPath(tmp)
        if rename(tmp, path) != 0 { throw GiftError(.io, "\(path): rename failed (errno \(errno))") }
        try fsyncPath(dir)
    }
}

/// A checkpoint's manifest: what was trained, where the state is, and how to check it.
public struct Manifest: Sendable {
    public struct Shard: Sendable, Equatable {
        public var file: String; public var rank: Int; public var range: Range<Int>; public var bytes: Int; public var checksum: UInt64
    }
    public var formatVersion: Int
    public var state: TrainState
    public var epoch: Double
    public var examplesSeen: Int
    public var worldSize: Int
    public var modelConfig: ModelConfig
    var runConfig: [String: StrictJSON]
    public var tensors: [TensorInfo]
    public var shards: [Shard]
    public var dataFingerprint: UInt64
    /// A LoRA run's checkpoint: the buffer is the adapters of this config, on this base.
    public var lora: LoRAIdentity? = nil
    /// The matmul kernels the run ran (`GemmKernels`): a resume with `--gemm auto` runs them again
    /// (bit-identical continuation) instead of measuring. nil in checkpoints of an older gift.
    public var kernels: GemmKernels? = nil

    /// The table the shards' ranges cover.
    public var table: TensorTable {
        get throws {
            guard let lora else { return ParameterLayout(modelConfig).table }
            return try LoRALayout(modelConfig, lora.config).table
        }
    }

    func json(runConfig rc: [String: Any], model: ModelConfig) -> Data {
        var o: [String: Any] = [
            "format_version": formatVersion, "step": state.step, "adam_step": state.adamStep,
            "consecutive_bad_steps": state.consecutiveBadSteps, "epoch": epoch, "examples_seen": examplesSeen,
            "data_position": ["epoch": state.step, "note": "data order is EpochOrder(seed, epoch); position = step"],
            "world_size": worldSize, "model": model.jsonObject(), "run_config": rc,
            "data_fingerprint": String(format: "%016llx", dataFingerprint),
            "rng": "counter-based: every draw is keyed by (seed, step, example index); no state to save",
            "tensors": tensors.map { ["name": $0.name, "shape": $0.shape, "offset": $0.offset] },
            "shards": shards.map { ["file": $0.file, "rank": $0.rank, "range": [$0.range.lowerBound, $0.range.upperBound],
                                    "bytes": $0.bytes, "checksum": String(format: "%016llx", $0.checksum)] },
        ]
        if let lora { o["lora"] = lora.json }
        if let kernels { o["kernels"] = kernels.json }
        let body = try! JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
        // the envelope: a checksum of the body's exact bytes, so any changed byte is detected
        var h = FNV1a(); body.withUnsafeBytes { h.add($0) }
        return Data((Manifest.prefix(String(format: "%016llx", h.value))).utf8) + body + Data(Manifest.suffix.utf8)
    }

    /// `{"checksum": "<16 hex>", "manifest": <body>}` + newline; the prefix has a fixed length.
    static func prefix(_ hex: String) -> String { "{\"checksum\": \"\(hex)\", \"manifest\": " }
    static let suffix = "}\n"
    static let prefixLength = prefix("0000000000000000").utf8.count

    /// Parses and checks a manifest; every field's type and range is checked before use.
    public static func read(_ path: String) throws -> Manifest {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "\(path): cannot read (\(error.localizedDescription))")
        }
        if data.count > 64 << 20 { throw GiftError(.format, "\(path): \(data.count) bytes is too large for a manifest") }
        let bytes = [UInt8](data)
        let pl = prefixLength, sl = suffix.utf8.count
        guard bytes.count > pl + sl,
              let head = String(bytes: bytes[0..<pl], encoding: .utf8), head.hasPrefix("{\"checksum\": \""),
              head == prefix(String(head.dropFirst(14).prefix(16))),
              let want = UInt64(String(head.dropFirst(14).prefix(16)), radix: 16),
              Array(bytes[(bytes.count - sl)...]) == Array(suffix.utf8) else {
            throw GiftError(.format, "\(path): not a gift checkpoint manifest (bad envelope)")
        }
        let body = Array(bytes[pl..<(bytes.count - sl)])
        var h = FNV1a(); body.withUnsafeBytes { h.add($0) }
        if h.value != want {
            throw GiftError(.format, "\(path): manifest checksum mismatch (stored \(String(format: "%016llx", want)), computed \(String(format: "%016llx", h.value))): the file was changed or damaged")
        }
        let root: StrictJSON
        do { root = try StrictJSON.parse(body) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(path): not valid JSON at byte \(e.offset): \(e.message)")
        }
        guard case .object(let o) = root else { throw GiftError(.format, "\(path): not a JSON object") }
        func bad(_ f: String, _ why: String) -> GiftError { GiftError(.format, "\(path): field '\(f)' \(why)") }
        func int(_ f: String, in obj: [String: StrictJSON]? = nil) throws -> Int {
            guard let v = (obj ?? o)[f] else { throw bad(f, "is missing") }
            guard let i = v.intValue, i >= 0 else { throw bad(f, "must be a non-negative integer") }
            return i
        }
        func hex(_ f: String, in obj: [String: StrictJSON]? = nil) throws -> UInt64 {
            guard case .string(let s)? = (obj ?? o)[f], s.count == 16, let v = UInt64(s, radix: 16) else { throw bad(f, "must be 16 hex digits") }
            return v
        }
        let version = try int("format_version")
        if version > Checkpoint.formatVersion {
            throw GiftError(.format, "\(path): written by a newer gift (checkpoint format \(version); this gift reads up to \(Checkpoint.formatVersion))")
        }
        let state = TrainState(step: try int("step"), adamStep: try int("adam_step"), consecutiveBadSteps: try int("consecutive_bad_steps"))
        guard case .number(let et)? = o["epoch"], let epoch = Double(et) else { throw bad("epoch", "must be a number") }
        let world = try int("world_size")
        if world < 1 || world > 1 << 20 { throw bad("world_size", "out of range") }
        guard case .object(let mo)? = o["model"] else { throw bad("model", "must be an object") }
        let mc = try ModelConfig.parse(object: mo, source: path + " (model)")
        guard case .object(let rc)? = o["run_config"] else { throw bad("run_config", "must be an object") }
        guard case .array(let ta)? = o["tensors"] else { throw bad("tensors", "must be an array") }
        var lora: LoRAIdentity?
        if let lo = o["lora"] {
            guard case .object(let lobj) = lo else { throw bad("lora", "must be an object") }
            lora = try LoRAIdentity(json: lobj, source: path + " (lora)")
        }
        var kernels: GemmKernels?
        if let ko = o["kernels"] {
            guard case .object(let kobj) = ko else { throw bad("kernels", "must be an object") }
            kernels = try GemmKernels(json: kobj, source: path + " (kernels)")
        }
        let layout: TensorTable
        do { layout = try lora.map { try LoRALayout(mc, $0.config).table } ?? ParameterLayout(mc).table } catch {
            throw GiftError(.format, "\(path): field 'lora' does not fit the model: \(error)")
        }
        var tensors: [TensorInfo] = []
        for (i, t) in ta.enumerated() {
            guard case .object(let to) = t, case .string(let name)? = to["name"], case .array(let sh)? = to["shape"] else {
                throw bad("tensors[\(i)]", "must be {name, shape, offset}")
            }
            let shape = try sh.map { v -> Int in guard let d = v.intValue, d >= 0, d < 1 << 40 else { throw bad("tensors[\(i)].shape", "bad dimension") }; return d }
            tensors.append(TensorInfo(name: name, shape: shape, offset: try int("offset", in: to)))
        }
        if tensors != layout.tensors { throw GiftError(.format, "\(path): the tensor table does not match the model config") }
        guard case .array(let sa)? = o["shards"], sa.count == world else { throw bad("shards", "must list one shard per rank (\(world))") }
        var shards: [Manifest.Shard] = []
        var covered = 0
        for (i, s) in sa.enumerated() {
            guard case .object(let so) = s, case .string(let file)? = so["file"], case .array(let r)? = so["range"], r.count == 2,
                  let lo = r[0].intValue, let hi = r[1].intValue else { throw bad("shards[\(i)]", "must be {file, rank, range, bytes, checksum}") }
            if file != Checkpoint.shardName(rank: i, of: world) { throw bad("shards[\(i)].file", "must be \(Checkpoint.shardName(rank: i, of: world))") }
            if lo != covered || hi < lo || hi > layout.count { throw bad("shards[\(i)].range", "[\(lo), \(hi)) does not continue the previous shard inside \(layout.count) parameters") }
            covered = hi
            shards.append(Manifest.Shard(file: file, rank: try int("rank", in: so), range: lo..<hi, bytes: try int("bytes", in: so),
                                         checksum: try hex("checksum", in: so)))
        }
        if covered != layout.count { throw bad("shards", "cover \(covered) of \(layout.count) parameters") }
        return Manifest(formatVersion: version, state: state, epoch: epoch, examplesSeen: try int("examples_seen"),
                        worldSize: world, modelConfig: mc, runConfig: rc, tensors: tensors, shards: shards,
                        dataFingerprint: try hex("data_fingerprint"), lora: lora, kernels: kernels)
    }
}

extension StrictJSON {
    /// The value as Foundation objects (for JSONSerialization).
    var foundation: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let t): if let i = Int(t) { return i }; return Double(t) ?? 0
        case .string(let s): return s
        case .array(let a): return a.map(\.foundation)
        case .object(let o): return o.mapValues(\.foundation)
        }
    }
}
