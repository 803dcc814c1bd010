import Foundation

/// Finding, checking and loading the checkpoint to resume from.
public enum Resume {
    /// Run-config fields that define the training (`RunSetting.defines`): a checkpoint made with other
    /// values is refused. (Not among them: out, eval/logging fields, micro_batch and grad_accum, which may
    /// change with the number of ranks as long as the global batch stays the same.)
    public static let definingFields = RunSettings.defining.map(\.key)
    /// Defining fields added after checkpoints were first written, with the value those checkpoints
    /// trained with (so they still resume).
    static let addedLater: [String: String] = RunSettings.defining.reduce(into: [:]) { d, s in
        if case .addedLater(let was) = s.defines { d[s.key] = was }
    }

    /// Refuses a checkpoint of another model, data, run config or global batch, naming the field.
    public static func checkCompatible(_ m: Manifest, path: String, config: RunConfig, model: ModelConfig,
                                       dataFingerprint: UInt64, globalBatch: Int) throws {
        if m.modelConfig.family != model.family {
            throw GiftError(.mismatch, "\(path): the checkpoint is of a \(m.modelConfig.family.displayName) model; this run's model is \(model.family.displayName)")
        }
        if m.modelConfig != model {
            throw GiftError(.mismatch, "\(path): the checkpoint is of another model (d_model \(m.modelConfig.dModel), \(m.modelConfig.nLayers) layers, vocab \(m.modelConfig.vocab)) than this run's (d_model \(model.dModel), \(model.nLayers) layers, vocab \(model.vocab))")
        }
        if m.dataFingerprint != dataFingerprint {
            throw GiftError(.mismatch, "\(path): the checkpoint was trained on other data (fingerprint \(String(format: "%016llx", m.dataFingerprint)), this run's \(String(format: "%016llx", dataFingerprint)))")
        }
        let cur = config.json
        for f in definingFields {
            guard let was = m.runConfig[f].map({ "\($0.foundation)" }) ?? Self.addedLater[f] else {
                throw GiftError(.mismatch, "\(path): the checkpoint's run config lacks '\(f)'")
            }
            let now = "\(cur[f]!)"
            if now != was && Double(now).map({ $0 != Double(was) }) ?? true {
                throw GiftError(.mismatch, "\(path): run config field '\(f)' is \(was) in the checkpoint and \(now) in this run")
            }
        }
        let mb = m.runConfig["micro_batch"]?.intValue ?? 0, ga = m.runConfig["grad_accum"]?.intValue ?? 0
        // the manifest's numbers are untrusted: their product may overflow
        let (mg, o1) = mb.multipliedReportingOverflow(by: ga), (trained, o2) = mg.multipliedReportingOverflow(by: m.worldSize)
        if o1 || o2 || trained != globalBatch {
            throw GiftError(.mismatch, "\(path): the checkpoint was trained with a global batch of \(o1 || o2 ? "(overflow)" : String(trained)) (\(m.worldSize) ranks × micro_batch \(mb) × grad_accum \(ga)); this run's is \(globalBatch): set --micro-batch/--grad-accum so ranks × micro × accum matches")
        }
    }

    /// The flat offsets a rank loads: the parameters' (all, or a ZeRO-3 shard) and the moments' (all, or
    /// its ZeRO shard); the buffers given to `load` are addressed by flat offset over these ranges.
    public struct Within: Sendable {
        public var params: Range<Int>?, moments: Range<Int>?
        public init(params: Range<Int>? = nil, moments: Range<Int>? = nil) { self.params = params; self.moments = moments }
        public static let everything = Within()
    }

    /// Reads a checkpoint folder, verifying the manifest and every shard's size and checksum first.
    /// Works for any number of ranks and any ZeRO stage: a rank reads the shards that overlap what it
    /// loads (`within`; nil ranges: everything) and copies the overlap. `m`/`v` nil: parameters only (export).
    public static func load(_ path: String, params: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>?,
                            v: UnsafeMutablePointer<Float>?, within: Within = .everything) throws -> Manifest {
        let man = try Manifest.read(path + "/manifest.json")
        func overlap(_ a: Range<Int>, _ b: Range<Int>?) -> Range<Int> {
            guard let b else { return a }
            let lo = max(a.lowerBound, b.lowerBound), hi = min(a.upperBound, b.upperBound)
            return lo..<max(lo, hi)
        }
        for s in man.shards {
            let pr = overlap(s.range, within.params), mr = overlap(s.range, within.moments)
            if pr.isEmpty && (mr.isEmpty || m == nil) { continue }
            let file = path + "/" + s.file
            let attrs = try? FileManager.default.attributesOfItem(atPath: file)
            guard let size = (attrs?[.size] as? NSNumber)?.intValue else { throw GiftError(.io, "\(file): shard missing") }
            if size != s.bytes { throw GiftError(.format, "\(file): \(size) bytes, the manifest says \(s.bytes) (truncated or replaced)") }
            let c = try ShardFile.read(path: file, expectedSize: s.bytes, expectedChecksum: s.checksum)
            let lo = s.range.lowerBound
            try c.copyFloats("params", into: params + pr.lowerBound, range: (pr.lowerBound - lo)..<(pr.upperBound - lo), of: s.range.count)
            if let m { try c.copyFloats("m", into: m + mr.lowerBound, range: (mr.lowerBound - lo)..<(mr.upperBound - lo), of: s.range.count) }
            if let v { try c.copyFloats("v", into: v + mr.lowerBound, range: (mr.lowerBound - lo)..<(mr.upperBound - lo), of: s.range.count) }
        }
        return man
    }

    /// `spec`: "auto" (the newest complete checkpoint of the run; a corrupt or incomplete newest one is
    /// reported and the previous is used) or a checkpoint folder. Returns nil for "auto" with none.
    public static func locateAndLoad(_ spec: String, runDir: String, params: UnsafeMutablePointer<Float>,
                                     m: UnsafeMutablePointer<Float>?, v: UnsafeMutablePointer<Float>?,
                                     within: Within = .everything,
                                     log: (String) -> Void) throws -> (path: String, manifest: Manifest)? {
        if spec != "auto" {
            return (spec, try load(spec, params: params, m: m, v: v, within: within))
        }
        for c in Checkpoint.candidates(in: runDir + "/checkpoints") {
            do {
                return (c.path, try load(c.path, params: params, m: m, v: v, within: within))
            } catch {
                log("warning: checkpoint \(c.path) is incomplete or corrupt (\(error)); trying the previous one")
            }
        }
        return nil
    }
}

extension Resume {
    /// Refuses, before allocating it, a buffer of `floats` floats that a manifest asks for but this
    /// machine's memory cannot hold (the manifest's model is untrusted until its shards are read).
    static func checkFitsInMemory(floats: Int, _ manifest: String) throws {
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard floats <= memory / 4 else {
            throw GiftError(.format, "\(manifest): the checkpoint's model has \(floats) parameters (\(floats) × 4 bytes), "
                            + "more than this machine's \(memory) bytes of memory")
        }
    }

    /// The model of a checkpoint folder, or of a run folder's newest complete checkpoint.
    /// The model folder a checkpoint's run started from (its run config's "model"), when that was a
    /// folder that still exists; nil for a preset.
    public static func sourceModelFolder(ofCheckpoint c: String) -> String? {
        guard let man = try? Manifest.read(c + "/manifest.json"), case .string(let m)? = man.runConfig["model"],
              FileManager.default.fileExists(atPath: m + "/" + ModelFolder.configFile) else { return nil }
        return m
    }

    public static func loadModel(_ path: String, log: (String) -> Void = { _ in }) throws -> (ModelConfig, FloatBuffer, String) {
        let fm = FileManager.default
        var candidates: [String]
        if fm.fileExists(atPath: path + "/manifest.json") {
            candidates = [path]
        } else if fm.fileExists(atPath: path + "/checkpoints") {
            candidates = Checkpoint.candidates(in: path + "/checkpoints").map(\.path)
            if candidates.isEmpty { throw GiftError(.io, "\(path)/checkpoints: no checkpoint") }
        } else {
            throw GiftError(.io, "\(path): neither a checkpoint folder (manifest.json) nor a run folder (checkpoints/)")
        }
        var lastError: Error?
        for c in candidates {
            do {
                let man = try Manifest.read(c + "/manifest.json")
                if man.lora != nil {
                    let (layout, adapters, base) = try loadAdapters(c)
                    return (man.modelConfig, layout.merged(base: base.pointer, adapters: adapters.pointer), c)
                }
                let count = ParameterLayout(man.modelConfig).count
                try checkFitsInMemory(floats: count, c + "/manifest.json")
                let params = FloatBuffer(count: count)
                _ = try load(c, params: params.pointer, m: nil, v: nil)
                return (man.modelConfig, params, c)
            } catch {
                if candidates.count == 1 { throw error }
                log("warning: checkpoint \(c) is incomplete or corrupt (\(error)); trying the previous one")
                lastError = error
            }
        }
        throw lastError!
    }
}

extension Resume {
    /// Refuses adapters for another base (by the base weights' fingerprint), and a LoRA checkpoint for a
    /// full fine-tune or the reverse, naming both.
    public static func checkAdapters(_ m: Manifest, path: String, run: LoRAIdentity?) throws {
        switch (m.lora, run) {
        case (nil, nil): return
        case (nil, let b?):
            throw GiftError(.mismatch, "\(path): the checkpoint holds a full fine-tune's parameters; this run trains LoRA adapters (r \(b.config.r)) on \(b.baseModel)")
        case (let a?, nil):
            throw GiftError(.mismatch, "\(path): the checkpoint holds LoRA adapters (r \(a.config.r) on \(a.baseModel)); this run fine-tunes every parameter: pass the same --lora-* flags")
        case (let a?, let b?):
            if a.baseFingerprint != b.baseFingerprint {
                throw GiftError(.mismatch, "\(path): the checkpoint's adapters were trained on the base \(a.baseModel) (weights fingerprint \(String(format: "%016llx", a.baseFingerprint))); this run's base \(b.baseModel) has other weights (fingerprint \(String(format: "%016llx", b.baseFingerprint))): resume on the same base")
            }
        }
    }
}

extension Resume {
    /// A LoRA checkpoint's adapters and its base weights: the base is its run's model (a folder, or a
    /// preset re-initialised with the run's init_seed), checked against the fingerprint the checkpoint
    /// recorded.
    public static func loadAdapters(_ c: String) throws -> (LoRALayout, FloatBuffer, FloatBuffer) {
        let (man, layout, adapters) = try readAdapters(c)
        let id = man.lora!
        let base: FloatBuffer
        if FileManager.default.fileExists(atPath: id.baseModel + "/" + ModelFolder.configFile) {
            base = try ModelFolder.load(id.baseModel).1
        } else if ModelConfig.presetNames.contains(id.baseModel) {
            // a preset base is the preset's config (training takes it as is); the manifest's model, untrusted
            // until then, must be that config before a buffer of its size is made and initialised
            let preset = try ModelConfig.preset(id.baseModel)
            guard man.modelConfig == preset else {
                throw GiftError(.mismatch, "\(c)/manifest.json: the adapters' base is the preset \(id.baseModel), but field 'model' "
                                + "describes another model (d_model \(man.modelConfig.dModel), \(man.modelConfig.nLayers) layers, "
                                + "vocab \(man.modelConfig.vocab); the preset has d_model \(preset.dModel), \(preset.nLayers) layers, vocab \(preset.vocab))")
            }
            var seed: UInt64 = 0
            if let v = man.runConfig["init_seed"] {
                guard case .number(let t) = v, let s = UInt64(t) else {
                    throw GiftError(.format, "\(c)/manifest.json: field 'run_config.init_seed' must be a non-negative integer, got \(v.brief)")
                }
                seed = s
            }
            base = ParameterLayout(preset).initialize(seed: seed)
        } else {
            throw GiftError(.io, "\(c): the adapters' base model \(id.baseModel) is not found (run from the folder the training ran in, or export with --model BASE --adapter RUN_DIR/adapter)")
        }
        if base.count != ParameterLayout(man.modelConfig).count {
            throw GiftError(.mismatch, "\(c): the base \(id.baseModel) is of another shape than the checkpoint's model")
        }
        let fp = LoRAIdentity.fingerprint(base.pointer, count: base.count)
        if fp != id.baseFingerprint {
            throw GiftError(.mismatch, "\(c): the base \(id.baseModel) has changed since training (weights fingerprint \(String(format: "%016llx", fp)), the checkpoint's \(String(format: "%016llx", id.baseFingerprint)))")
        }
        return (layout, adapters, base)
    }
}

extension Resume {
    /// A LoRA checkpoint's manifest and adapters (verified), without its base.
    public static func readAdapters(_ c: String) throws -> (Manifest, LoRALayout, FloatBuffer) {
        let man = try Manifest.read(c + "/manifest.json")
        guard let id = man.lora else { throw GiftError(.usage, "\(c): not a LoRA checkpoint (it holds every parameter)") }
        let layout = try LoRALayout(man.modelConfig, id.config)
        try checkFitsInMemory(floats: layout.count, c + "/manifest.json")
        let adapters = FloatBuffer(count: layout.count)
        _ = try load(c, params: adapters.pointer, m: nil, v: nil)
        return (man, layout, adapters)
    }

    /// The checkpoint `path` names (a checkpoint folder, or a run folder's newest) when it is a LoRA one.
    public static func loraCheckpoint(_ path: String) throws -> String? {
        let c = FileManager.default.fileExists(atPath: path + "/manifest.json") ? path
            : Checkpoint.candidates(in: path + "/checkpoints").first?.path
        guard let c, try Manifest.read(c + "/manifest.json").lora != nil else { return nil }
        return c
    }
}
