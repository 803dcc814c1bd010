import Foundation

/// A Hugging Face LLaDA model folder: `config.json` plus the weights, either one `model.safetensors`
/// or shards `model-0000i-of-0000N.safetensors` listed by `model.safetensors.index.json`
/// (`{"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file name}}`).
/// Tensor names and shapes are those of `ParameterLayout`.
public enum ModelFolder {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let indexFile = "model.safetensors.index.json"

    // MARK: load

    /// Reads the config and every parameter into a flat buffer laid out by `ParameterLayout(config)`.
    /// The weights must hold exactly the layout's tensors with exactly its shapes; F32, BF16 and F16 are
    /// accepted and widened to Float.
    public static func load(_ dir: String) throws -> (ModelConfig, FloatBuffer) {
        let w = try WeightFolder(dir, open: { try SafetensorsFile.read(path: $0) })
        let layout = ParameterLayout(w.config)
        // Every tensor checked (present, its shape, a float dtype, nothing extra) before the buffer is
        // allocated: the layout's size comes from config.json, and only tensors the files hold bound it.
        let entries = try w.check(layout)
        let buffer = FloatBuffer(count: layout.count)
        for (t, (f, _)) in zip(layout.tensors, entries) {
            try f.copyFloats(t.name, into: buffer.pointer + t.offset, count: t.count)
        }
        return (w.config, buffer)
    }

    /// A model folder's config and its weight files (`F`: whole files for `load`, headers only for
    /// `loadRange`), validated alike for both loaders: the same checks, the same messages.
    struct WeightFolder<F: TensorFileListing> {
        let config: ModelConfig
        let configPath: String
        /// The weight files in the order they were opened (the one file, or the index's shards sorted).
        let files: [F]
        /// Where each tensor lives.
        let location: [String: F]
        /// The weights as messages name them: the one file, or "DIR (N shards)".
        let source: String

        init(_ dir: String, open: (String) throws -> F) throws {
            let fm = FileManager.default
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir, isDirectory: &isDir) else {
                throw GiftError(.io, "model folder '\(dir)' does not exist")
            }
            guard isDir.boolValue else { throw GiftError(.io, "model folder '\(dir)' is not a directory") }
            configPath = join(dir, configFile)
            guard fm.fileExists(atPath: configPath) else {
                throw GiftError(.io, "\(configPath): not found (a model folder needs a config.json)")
            }
            guard let configData = fm.contents(atPath: configPath) else { throw GiftError(.io, "\(configPath): cannot read") }
            config = try ModelConfig.parse(configData, source: configPath)
            // Where each tensor lives: one file, or the shards named by the index.
            let (files, location) = try locateTensors(dir, open: open)
            self.files = files; self.location = location
            source = files.count == 1 ? files[0].path : "\(dir) (\(files.count) shards)"
        }

        /// Each layout tensor's file and entry, in layout order, after the checks: present, the layout's
        /// shape, a float dtype, and no tensor outside the layout.
        func check(_ layout: ParameterLayout) throws -> [(F, SafetensorsTensor)] {
            var out: [(F, SafetensorsTensor)] = []
            for t in layout.tensors {
                guard let f = location[t.name] else {
                    throw GiftError(.mismatch, "\(source): missing tensor '\(t.name)' (expected shape \(t.shape))")
                }
                let entry = try f.tensor(t.name)
                guard entry.shape == t.shape else {
                    throw GiftError(.mismatch, "\(f.path): tensor '\(t.name)' has shape \(entry.shape) but "
                                    + "\(configPath) needs \(t.shape)")
                }
                guard entry.dtype == .F32 || entry.dtype == .BF16 || entry.dtype == .F16 else {
                    throw GiftError(.format, "\(f.path): tensor '\(t.name)' has dtype \(entry.dtype.rawValue); "
                                    + "only F32, BF16 and F16 can be read as floats")
                }
                out.append((f, entry))
            }
            let known = Set(layout.tensors.map(\.name))
            let extra = location.keys.filter { !known.contains($0) }.sorted()
            if !extra.isEmpty {
                let shown = extra.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
                let more = extra.count > 5 ? " and \(extra.count - 5) more" : ""
                throw GiftError(.mismatch, "\(source): unexpected tensors not in the \(layout.config.family.displayName) layout of \(configPath): "
                                + shown + more)
            }
            return out
        }
    }

    /// Parses and validates the shard index; returns tensor name -> shard file name.
    /// The weight files of `dir` (one file, or the shards its index names, each opened once with `open`)
    /// and the file each tensor is in; a tensor in two shards, or an index entry its shard lacks, is an
    /// error naming both. A tensor in a shard but absent from the map is still found (and, if it is not
    /// in the layout, refused by the caller as unexpected). Shared by the full and the ranged loader.
    static func locateTensors<F: TensorFileListing>(_ dir: String, open: (String) throws -> F) throws -> ([F], [String: F]) {
        var files: [F] = []
        var location: [String: F] = [:]
        let single = join(dir, weightsFile), indexPath = join(dir, indexFile)
        if FileManager.default.fileExists(atPath: single) {
            let f = try open(single)
            files = [f]
            for name in f.tensors.keys { location[name] = f }
        } else if FileManager.default.fileExists(atPath: indexPath) {
            let weightMap = try readIndex(indexPath)
            for shard in Set(weightMap.values).sorted() {  // each shard read once
                files.append(try open(join(dir, shard)))
            }
            for f in files {
                for name in f.tensors.keys {
                    if let other = location[name] {
                        throw GiftError(.format, "tensor '\(name)' appears in both \(other.path) and \(f.path)")
                    }
                    location[name] = f
                }
            }
            for (name, shard) in weightMap.sorted(by: { $0.key < $1.key }) {
                let path = join(dir, shard)
                guard location[name]?.path == path else {
                    throw GiftError(.format, "\(indexPath): maps tensor '\(name)' to \(shard), "
                                    + "but \(path) has no tensor '\(name)'")
                }
            }
        } else {
            throw GiftError(.io, "\(dir): no \(weightsFile) or \(indexFile) in the model folder")
        }
        return (files, location)
    }

    static func readIndex(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw GiftError(.io, "\(path): cannot read") }
        let root: StrictJSON
        do { root = try StrictJSON.parse(Array(data)) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(path): not valid JSON (\(e.message) at byte \(e.offset))")
        }
        guard case .object(let o) = root else { throw GiftError(.format, "\(path): expected a JSON object") }
        guard let wm = o["weight_map"] else { throw GiftError(.format, "\(path): missing field 'weight_map'") }
        guard case .object(let entries) = wm else {
            throw GiftError(.format, "\(path): field 'weight_map' is not an object")
        }
        var map: [String: String] = [:]
        for (name, v) in entries {
            guard case .string(let shard) = v else {
                throw GiftError(.format, "\(path): weight_map entry for tensor '\(name)' is not a string")
            }
            // Shards must be plain file names inside the folder.
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), !shard.contains(".."),
                  !shard.contains("\0") else {
                throw GiftError(.format, "\(path): weight_map entry for tensor '\(name)' names shard '\(shard)', "
                                + "which is not a plain file name in the model folder")
            }
            map[name] = shard
        }
        return map
    }

    // MARK: save

    /// Writes `config.json` and the weights (tensors in layout order) as `dtype` (.F32 or .BF16). When
    /// `maxShardBytes` is set and the weights exceed it, they are split into shards of at most that size
    /// (a single larger tensor gets a shard of its own) plus `model.safetensors.index.json`. Weight files
    /// of the other form left over from an earlier save are removed, so `load` sees only the new ones.
    public static func save(_ dir: String, config: ModelConfig, parameters: FloatBuffer,
                            dtype: SafetensorsDType = .F32, maxShardBytes: Int? = nil) throws {
        let layout = ParameterLayout(config)
        guard parameters.count == layout.count else {
            throw GiftError(.mismatch, "saving \(dir): parameter buffer has \(parameters.count) floats, "
                            + "the config needs \(layout.count)")
        }
        guard dtype == .F32 || dtype == .BF16 else {
            throw GiftError(.usage, "saving \(dir): can write F32 or BF16 weights, not \(dtype.rawValue)")
        }
        if let m = maxShardBytes, m <= 0 { throw GiftError(.usage, "saving \(dir): maxShardBytes must be positive") }
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw GiftError(.io, "\(dir): cannot create folder (\(error.localizedDescription))")
        }
        do { try config.jsonData().write(to: URL(fileURLWithPath: join(dir, configFile)), options: .atomic) } catch {
            throw GiftError(.io, "\(join(dir, configFile)): cannot write (\(error.localizedDescription))")
        }

        let entries = layout.tensors.map {
            SafetensorsWriteEntry(name: $0.name, shape: $0.shape, dtype: dtype,
                                  pointer: UnsafePointer(parameters.pointer + $0.offset), count: $0.count)
        }
        let totalBytes = entries.reduce(0) { $0 + $1.byteCount }
        // transformers refuses safetensors weights whose metadata lacks format "pt".
        let metadata = ["format": "pt"]
        let oldShards = existingShards(dir)

        guard let maxBytes = maxShardBytes, totalBytes > maxBytes else {
            try SafetensorsFile.write(path: join(dir, weightsFile), tensors: entries, metadata: metadata)
            try? fm.removeItem(atPath: join(dir, indexFile))
            for s in oldShards { try? fm.removeItem(atPath: join(dir, s)) }
            return
        }

        // Greedy split in layout order.
        var shards: [[SafetensorsWriteEntry]] = [[]]
        var current = 0
        for e in entries {
            if let last = shards.last, !last.isEmpty, current + e.byteCount > maxBytes {
                shards.append([]); current = 0
            }
            shards[shards.count - 1].append(e)
            current += e.byteCount
        }
        var weightMap: [String: String] = [:]
        var names: [String] = []
        for (i, shard) in shards.enumerated() {
            let name = shardName(i + 1, of: shards.count)
            names.append(name)
            try SafetensorsFile.write(path: join(dir, name), tensors: shard, metadata: metadata)
            for e in shard { weightMap[e.name] = name }
        }
        // model.safetensors would shadow the index on load: remove it before the index appears.
        try? fm.removeItem(atPath: join(dir, weightsFile))
        let index: [String: Any] = ["metadata": ["total_size": totalBytes], "weight_map": weightMap]
        do {
            let data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: join(dir, indexFile)), options: .atomic)
        } catch {
            throw GiftError(.io, "\(join(dir, indexFile)): cannot write (\(error.localizedDescription))")
        }
        for s in oldShards where !names.contains(s) { try? fm.removeItem(atPath: join(dir, s)) }
    }

    /// `model-00001-of-00003.safetensors`, the Hugging Face shard naming.
    public static func shardName(_ i: Int, of n: Int) -> String {
        func pad(_ k: Int) -> String { let s = String(k); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        return "model-\(pad(i))-of-\(pad(n)).safetensors"
    }

    /// Files in `dir` named like shards (`model-<digits>-of-<digits>.safetensors`).
    static func existingShards(_ dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { n in
            guard n.hasPrefix("model-"), n.hasSuffix(".safetensors") else { return false }
            let parts = n.dropFirst(6).dropLast(12).split(separator: "-", omittingEmptySubsequences: false)
            return parts.count == 3 && parts[1] == "of" && !parts[0].isEmpty && !parts[2].isEmpty
                && parts[0].allSatisfy(\.isNumber) && parts[2].allSatisfy(\.isNumber)
        }
    }

    static func join(_ dir: String, _ file: String) -> String {
        dir.hasSuffix("/") ? dir + file : dir + "/" + file
    }
}

/// A safetensors file's path and tensor table: a whole file read, or only its header.
protocol TensorFileListing {
    var path: String { get }
    var tensors: [String: SafetensorsTensor] { get }
    /// The entry for `name`, or an error naming the file and the tensor.
    func tensor(_ name: String) throws -> SafetensorsTensor
}
extension SafetensorsFile: TensorFileListing {}
