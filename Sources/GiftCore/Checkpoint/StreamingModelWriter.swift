import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a model folder (config.json plus one `model.safetensors`, or shards and
/// `model.safetensors.index.json`) from values handed over in layout order, never holding the model:
/// what it holds is one conversion buffer. Files and bytes equal `ModelFolder.save`'s for the same
/// values, dtype and shard limit (same greedy split at tensor boundaries, same headers, same index).
///
/// Every shard's header is known from the layout before any data, so each file is written once, front
/// to back. Everything goes to a hidden folder beside `dir` and is moved into place by `finish()`; the
/// file that makes a folder loadable (the index, or the single weights file) arrives last, so a crash
/// leaves either the old folder, a folder without weights to load, or the complete new one.
///
///     let w = try StreamingModelWriter(dir: out, config: c, dtype: .BF16, maxShardBytes: 5 << 30)
///     for t in ParameterLayout(c).tensors { try w.write(name: t.name, shape: t.shape, values: p, count: t.count) }
///     try w.finish()
public final class StreamingModelWriter {
    public let dir: String
    public let config: ModelConfig
    public let dtype: SafetensorsDType
    let layout: ParameterLayout
    /// One entry per weight file: its name, the flat range of floats it holds, its header.
    let shards: [(name: String, floats: Range<Int>, header: [UInt8])]
    let staging: String
    /// Floats of the flat layout written so far; the shard being written, and its open file.
    private(set) var position = 0
    private var shard = -1
    private var fd: Int32 = -1
    /// Bytes written to the open shard so far.
    private var fileOffset = 0
    private var finished = false
    private let scratch: UnsafeMutableRawPointer
    static let chunkElements = 1 << 20

    /// `maxShardBytes`: the most data bytes a shard holds (a larger tensor gets a shard of its own);
    /// weights that fit in it go to a single `model.safetensors`.
    public init(dir: String, config: ModelConfig, dtype: SafetensorsDType = .BF16, maxShardBytes: Int) throws {
        guard dtype == .F32 || dtype == .BF16 else {
            throw GiftError(.usage, "saving \(dir): can write F32 or BF16 weights, not \(dtype.rawValue)")
        }
        guard maxShardBytes > 0 else { throw GiftError(.usage, "saving \(dir): maxShardBytes must be positive") }
        self.dir = URL(fileURLWithPath: dir).standardizedFileURL.path
        self.config = config; self.dtype = dtype
        layout = ParameterLayout(config)

        // Greedy split in layout order, as ModelFolder.save does.
        var groups: [[TensorInfo]] = [[]]
        var bytes = 0
        let total = layout.count * dtype.size
        for t in layout.tensors {
            if total > maxShardBytes, let last = groups.last, !last.isEmpty, bytes + t.count * dtype.size > maxShardBytes {
                groups.append([]); bytes = 0
            }
            groups[groups.count - 1].append(t)
            bytes += t.count * dtype.size
        }
        var plan: [(name: String, floats: Range<Int>, header: [UInt8])] = []
        for (i, g) in groups.enumerated() {
            let name = groups.count == 1 ? ModelFolder.weightsFile : ModelFolder.shardName(i + 1, of: groups.count)
            let header = try SafetensorsFile.encodeHeader(
                path: name, tensors: g.map { ($0.name, $0.shape, dtype, $0.count) }, metadata: ["format": "pt"])
            plan.append((name, g.first!.offset..<(g.last!.offset + g.last!.count), header))
        }
        shards = plan

        let url = URL(fileURLWithPath: self.dir)
        let parent = url.deletingLastPathComponent().path
        staging = parent + "/." + url.lastPathComponent + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do { try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true) } catch {
            throw GiftError(.io, "\(staging): cannot create folder (\(error.localizedDescription))")
        }
        scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkElements * 4, alignment: 64)
    }

    deinit {
        if fd >= 0 { close(fd) }
        scratch.deallocate()
        if !finished { try? FileManager.default.removeItem(atPath: staging) }
    }

    /// The tensor the next `write` must be, nil once all are written or while one is half appended.
    public var nextTensor: TensorInfo? { layout.tensors.first { $0.offset == position } }

    /// Writes the next tensor of the layout, which must be `name` with `shape` and `count` values.
    public func write(name: String, shape: [Int], values: UnsafePointer<Float>, count: Int) throws {
        guard let t = nextTensor else {
            throw GiftError(.usage, "\(dir): tensor '\(name)' written after \(position) of \(layout.count) floats, "
                            + "not at a tensor boundary")
        }
        guard t.name == name else {
            throw GiftError(.usage, "\(dir): tensor '\(name)' written where the layout's next tensor is '\(t.name)'")
        }
        guard t.shape == shape, count == t.count else {
            throw GiftError(.mismatch, "\(dir): tensor '\(name)' given shape \(shape) with \(count) values; "
                            + "the config needs shape \(t.shape)")
        }
        try append(values, count: count)
    }

    /// Appends the next `count` floats of the flat layout, across tensor and shard boundaries (a ZeRO-3
    /// rank's range, gathered range by range).
    public func append(_ values: UnsafePointer<Float>, count: Int) throws {
        guard !finished else { throw GiftError(.usage, "\(dir): written after finish()") }
        guard count >= 0, position + count <= layout.count else {
            throw GiftError(.usage, "\(dir): \(count) floats appended after \(position) would pass the model's "
                            + "\(layout.count)")
        }
        var done = 0
        while done < count {
            if shard < 0 || position == shards[shard].floats.upperBound { try openNextShard() }
            let n = min(count - done, shards[shard].floats.upperBound - position, Self.chunkElements)
            let src = values + done
            if dtype == .BF16 {
                BFloat16.encode(src, intoLittleEndianBytes: scratch, count: n)
            } else {
                for j in 0..<n { scratch.storeBytes(of: src[j].bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self) }
            }
            try writeAll(scratch, n * dtype.size)
            done += n; position += n
        }
    }

    /// Checks every float was written, then moves the folder into place (config.json, the weights, the
    /// index when there are shards). Weight files of an earlier save in `dir` that the new one does not
    /// have are removed, as `ModelFolder.save` does.
    public func finish() throws {
        guard !finished else { return }
        guard position == layout.count else {
            let next = nextTensor.map { " (next: '\($0.name)')" } ?? ""
            throw GiftError(.usage, "\(dir): finish() after \(position) of \(layout.count) floats\(next)")
        }
        try closeShard()
        try writeFile(config.jsonData(), ModelFolder.configFile)
        if shards.count > 1 {
            var weightMap: [String: String] = [:]
            for s in shards {
                for t in layout.tensors where s.floats.contains(t.offset) { weightMap[t.name] = s.name }
            }
            let index: [String: Any] = ["metadata": ["total_size": layout.count * dtype.size], "weight_map": weightMap]
            let data: Data
            do { data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys]) } catch {
                throw GiftError(.io, "\(dir): cannot encode \(ModelFolder.indexFile) (\(error.localizedDescription))")
            }
            try writeFile(data, ModelFolder.indexFile)
        }
        try syncFolder(staging)
        try moveIntoPlace()
        finished = true
    }

    // MARK: files

    private func openNextShard() throws {
        try closeShard()
        shard += 1
        let path = staging + "/" + shards[shard].name
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        fileOffset = 0
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot create (\(String(cString: strerror(errno))))") }
        let header = shards[shard].header
        var prefix = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        prefix += header
        try prefix.withUnsafeBytes { try writeAll($0.baseAddress!, $0.count) }
    }

    private func closeShard() throws {
        guard fd >= 0 else { return }
        let path = staging + "/" + shards[shard].name
        let ok = fsync(fd) == 0
        let why = String(cString: strerror(errno))
        close(fd); fd = -1
        guard ok else { throw GiftError(.io, "\(path): fsync failed (\(why))") }
    }

    private func writeAll(_ p: UnsafeRawPointer, _ count: Int) throws {
        try PositionalIO.write(fd, from: p, count: count, at: fileOffset, path: "\(staging)/\(shards[shard].name)")
        fileOffset += count
    }

    private func writeFile(_ data: Data, _ name: String) throws {
        let path = staging + "/" + name
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "\(path): cannot write (\(error.localizedDescription))")
        }
        let f = open(path, O_RDONLY | O_CLOEXEC)
        if f >= 0 { _ = fsync(f); close(f) }
    }

    private func syncFolder(_ path: String) throws {
        let f = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard f >= 0 else { throw GiftError(.io, "\(path): cannot open folder (\(String(cString: strerror(errno))))") }
        _ = fsync(f); close(f)
    }

    /// A new folder is one rename. Into an existing one: the old marker (index, single weights file) goes
    /// first, then the new shards and config, the new marker last, then stale shards.
    private func moveIntoPlace() throws {
        let fm = FileManager.default
        func move(_ from: String, _ to: String) throws {
            guard rename(from, to) == 0 else {
                throw GiftError(.io, "\(to): cannot move \(from) into place (\(String(cString: strerror(errno))))")
            }
        }
        var isDir: ObjCBool = false
        if !fm.fileExists(atPath: dir, isDirectory: &isDir) {
            try move(staging, dir)
            try syncFolder(URL(fileURLWithPath: dir).deletingLastPathComponent().path)
            return
        }
        guard isDir.boolValue else { throw GiftError(.io, "\(dir): exists and is not a folder") }
        let old = ModelFolder.existingShards(dir)
        for marker in [ModelFolder.indexFile, ModelFolder.weightsFile] {
            let p = ModelFolder.join(dir, marker)
            if fm.fileExists(atPath: p) {
                guard unlink(p) == 0 else { throw GiftError(.io, "\(p): cannot remove (\(String(cString: strerror(errno))))") }
            }
        }
        try syncFolder(dir)
        let marker = shards.count > 1 ? ModelFolder.indexFile : ModelFolder.weightsFile
        for name in shards.map(\.name).filter({ $0 != marker }) + [ModelFolder.configFile, marker] {
            try move(staging + "/" + name, ModelFolder.join(dir, name))
        }
        try syncFolder(dir)
        let names = Set(shards.map(\.name))
        for s in old where !names.contains(s) { try? fm.removeItem(atPath: ModelFolder.join(dir, s)) }
        try? fm.removeItem(atPath: staging)
    }
}
