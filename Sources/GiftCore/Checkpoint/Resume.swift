import Foundation

/// Finding, checking and loading the checkpoint to resume from.
public enum Resume {
    /// Run-config fields that define the training: a checkpoint made with other values is refused.
    /// (Not here: out, eval/logging fields, micro_batch and grad_accum, which may change with the
    /// number of ranks as long as the global batch stays the same.)
    public static let definingFields = ["task_examples", "objective", "entropy_power", "gift_weight", "beta_reference",
                                        "time_epsilon", "loss_norm", "dream_p", "max_steps", "epochs", "lr", "warmup_ratio",
                                        "schedule", "weight_decay", "beta1", "beta2", "adam_eps", "max_grad_norm",
                                        "max_length", "seed", "validation_fraction", "init_seed", "extra_eos", "min_lr_ratio"]
    /// Defining fields added after checkpoints were first written, with the value those checkpoints
    /// trained with (so they still resume).
    static let addedLater = ["extra_eos": "1", "min_lr_ratio": "0"]

    /// Refuses a checkpoint of another model, data, run config or global batch, naming the field.
    public static func checkCompatible(_ m: Manifest, path: String, config: RunConfig, model: ModelConfig,
                                       dataFingerprint: UInt64, globalBatch: Int) throws {
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
        if mb * ga * m.worldSize != globalBatch {
            throw GiftError(.mismatch, "\(path): the checkpoint was trained with a global batch of \(mb * ga * m.worldSize) (\(m.worldSize) ranks × micro_batch \(mb) × grad_accum \(ga)); this run's is \(globalBatch): set --micro-batch/--grad-accum so ranks × micro × accum matches")
        }
    }

    /// Reads a checkpoint folder into full-size buffers, verifying the manifest and every shard's size
    /// and checksum first. Works for any number of ranks: every rank reads every shard.
    /// `m`/`v` nil: parameters only (export).
    public static func load(_ path: String, params: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>?,
                            v: UnsafeMutablePointer<Float>?) throws -> Manifest {
        let man = try Manifest.read(path + "/manifest.json")
        for s in man.shards {
            let file = path + "/" + s.file
            let attrs = try? FileManager.default.attributesOfItem(atPath: file)
            guard let size = (attrs?[.size] as? NSNumber)?.intValue else { throw GiftError(.io, "\(file): shard missing") }
            if size != s.bytes { throw GiftError(.format, "\(file): \(size) bytes, the manifest says \(s.bytes) (truncated or replaced)") }
            let c = try ShardFile.read(path: file, expectedSize: s.bytes, expectedChecksum: s.checksum)
            let lo = s.range.lowerBound, n = s.range.count
            try c.copyFloats("params", into: params + lo, count: n)
            if let m { try c.copyFloats("m", into: m + lo, count: n) }
            if let v { try c.copyFloats("v", into: v + lo, count: n) }
        }
        return man
    }

    /// `spec`: "auto" (the newest complete checkpoint of the run; a corrupt or incomplete newest one is
    /// reported and the previous is used) or a checkpoint folder. Returns nil for "auto" with none.
    public static func locateAndLoad(_ spec: String, runDir: String, params: UnsafeMutablePointer<Float>,
                                     m: UnsafeMutablePointer<Float>?, v: UnsafeMutablePointer<Float>?,
                                     log: (String) -> Void) throws -> (path: String, manifest: Manifest)? {
        if spec != "auto" {
            return (spec, try load(spec, params: params, m: m, v: v))
        }
        for c in Checkpoint.candidates(in: runDir + "/checkpoints") {
            do {
                return (c.path, try load(c.path, params: params, m: m, v: v))
            } catch {
                log("warning: checkpoint \(c.path) is incomplete or corrupt (\(error)); trying the previous one")
            }
        }
        return nil
    }
}

extension Resume {
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
                let params = FloatBuffer(count: ParameterLayout(man.modelConfig).count)
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
