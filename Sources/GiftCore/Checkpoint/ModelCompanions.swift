import Foundation

/// What makes a model folder a drop-in replacement for the one it was trained from: the source's
/// tokenizer files, generation config and remote-code files copied beside the weights, the source's own
/// config.json keys gift does not write (auto_map for `trust_remote_code`, transformers_version, ...)
/// kept, and the weights in the source's dtype and sharding.
public enum ModelCompanions {
    /// Files copied from the source folder as they are.
    static let names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                        "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
                        "generation_config.json"]

    /// The companion files present in `src` (remote code: every `*.py`), sorted.
    public static func files(in src: String) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: src)) ?? []
        return all.filter { names.contains($0) || $0.hasSuffix(".py") }.sorted()
    }

    /// How the source stores its weights: the dtype of its first tensor and, when it is sharded, the size
    /// of its largest shard (the output is sharded at that size, so it has as many shards). The weight
    /// files are mapped and their headers validated by `SafetensorsFile.read`; no tensor data is read.
    public static func weightFormat(of src: String) throws -> (dtype: SafetensorsDType, maxShardBytes: Int?) {
        let fm = FileManager.default
        let single = src + "/" + ModelFolder.weightsFile, index = src + "/" + ModelFolder.indexFile
        if fm.fileExists(atPath: single) { return (try firstDType(single), nil) }
        guard fm.fileExists(atPath: index) else { throw GiftError(.io, "\(src): no \(ModelFolder.weightsFile) or \(ModelFolder.indexFile)") }
        let shards = Set(try ModelFolder.readIndex(index).values).sorted()
        guard let first = shards.first else { throw GiftError(.format, "\(index): weight_map is empty") }
        let largest = try shards.map { s -> Int in
            guard let a = try? fm.attributesOfItem(atPath: src + "/" + s), let size = (a[.size] as? NSNumber)?.intValue else {
                throw GiftError(.io, "\(src)/\(s): cannot read the size of this shard, which \(index) names")
            }
            return size
        }.max() ?? 0
        return (try firstDType(src + "/" + first), largest)
    }

    /// The dtype of a safetensors file's first tensor (by offset).
    static func firstDType(_ path: String) throws -> SafetensorsDType {
        let f = try SafetensorsFile.read(path: path)
        guard let name = f.names.first, let t = f.tensors[name] else { throw GiftError(.format, "\(path): no tensor in the header") }
        return t.dtype
    }

    /// Copies the companion files of `src` into `dst` and merges the source config.json's keys that gift's
    /// config.json lacks (with torch_dtype set to what was written). Returns the files copied.
    @discardableResult
    public static func copy(from src: String, to dst: String, dtype: SafetensorsDType) throws -> [String] {
        let fm = FileManager.default
        var copied: [String] = []
        for f in files(in: src) {
            let to = dst + "/" + f
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: src + "/" + f))
                try data.write(to: URL(fileURLWithPath: to), options: .atomic)
            } catch { throw GiftError(.io, "copying \(src)/\(f) to \(dst): \(error.localizedDescription)") }
            copied.append(f)
        }
        let srcConfig = src + "/" + ModelFolder.configFile, dstConfig = dst + "/" + ModelFolder.configFile
        if fm.fileExists(atPath: srcConfig),
           let s = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: srcConfig))) as? [String: Any],
           var d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dstConfig))) as? [String: Any] {
            for (k, v) in s where d[k] == nil { d[k] = v }
            d["torch_dtype"] = dtype == .BF16 ? "bfloat16" : "float32"
            let out = try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])
            try out.write(to: URL(fileURLWithPath: dstConfig), options: .atomic)
        }
        return copied
    }

    /// Saves `params` into `dst` as a drop-in replacement of the model folder `src`: the source's weight
    /// dtype (unless `dtype` is given) and sharding, its companion files and config keys.
    public static func saveLike(_ src: String, dst: String, config: ModelConfig, parameters: FloatBuffer,
                                dtype: SafetensorsDType? = nil) throws -> (SafetensorsDType, [String]) {
        let format = try weightFormat(of: src)
        let dt = dtype ?? (format.dtype == .BF16 ? .BF16 : .F32)
        try ModelFolder.save(dst, config: config, parameters: parameters, dtype: dt, maxShardBytes: format.maxShardBytes)
        return (dt, try copy(from: src, to: dst, dtype: dt))
    }
}
