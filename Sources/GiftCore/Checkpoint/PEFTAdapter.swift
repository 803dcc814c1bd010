import Foundation

/// What a LoRA run's adapters belong to: their config and the base weights they were trained on
/// (a fingerprint of the base's bytes, so resuming on another base is refused by name).
public struct LoRAIdentity: Equatable, Sendable {
    public var config: LoRAConfig
    public var baseFingerprint: UInt64
    public var baseModel: String
    public init(config: LoRAConfig, baseFingerprint: UInt64, baseModel: String) {
        self.config = config; self.baseFingerprint = baseFingerprint; self.baseModel = baseModel
    }

    /// XXH64 of the base's fp32 bytes.
    public static func fingerprint(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
        XXH64.hash(UnsafeRawBufferPointer(start: p, count: count * 4))
    }

    var json: [String: Any] {
        ["r": config.r, "alpha": config.alpha, "dropout": config.dropout, "targets": config.targets.map(\.rawValue),
         "rslora": config.rslora, "base_fingerprint": String(format: "%016llx", baseFingerprint), "base_model": baseModel]
    }

    init(json o: [String: StrictJSON], source: String) throws {
        func bad(_ f: String, _ why: String) -> GiftError { GiftError(.format, "\(source): field '\(f)' \(why)") }
        var c = LoRAConfig()
        guard let r = o["r"]?.intValue, r > 0 else { throw bad("r", "must be a positive integer") }
        c.r = r
        guard case .number(let a)? = o["alpha"], let alpha = Double(a) else { throw bad("alpha", "must be a number") }
        guard case .number(let d)? = o["dropout"], let dropout = Double(d) else { throw bad("dropout", "must be a number") }
        c.alpha = alpha; c.dropout = dropout
        guard case .array(let ts)? = o["targets"] else { throw bad("targets", "must be a list of layer names") }
        // gift's own layer names (LoRATarget's raw values) whatever the family: no family check here
        c.targets = try LoRAConfig.parseTargets(ts.map { v -> String in
            guard case .string(let s) = v else { throw bad("targets", "must be a list of layer names") }
            return s
        }.joined(separator: ","), source: source + " field 'targets'").targets
        guard case .bool(let rs)? = o["rslora"] else { throw bad("rslora", "must be true or false") }
        c.rslora = rs
        guard case .string(let h)? = o["base_fingerprint"], h.count == 16, let fp = UInt64(h, radix: 16) else {
            throw bad("base_fingerprint", "must be 16 hex digits")
        }
        guard case .string(let bm)? = o["base_model"] else { throw bad("base_model", "must be a string") }
        config = c; baseFingerprint = fp; baseModel = bm
    }
}

/// PEFT's adapter folder: `adapter_config.json` (peft_type LORA, r, lora_alpha, lora_dropout,
/// target_modules, …) and `adapter_model.safetensors` with PEFT's tensor names, e.g.
/// `base_model.model.model.transformer.blocks.0.q_proj.lora_A.weight` ([r, in]) and `.lora_B.weight`
/// ([out, r]). `PeftModel.from_pretrained(llada, DIR)` loads it; `gift train --adapter DIR` continues it.
public enum PEFTAdapter {
    public static let configFile = "adapter_config.json", weightsFile = "adapter_model.safetensors"

    /// PEFT matches a plain name against every module whose path ends with it, and LLaDA's output head
    /// is `model.transformer.ff_out`: a list naming ff_out would adapt the head too. So with ff_out the
    /// targets are written as the regex PEFT full-matches, naming the blocks only.
    /// Dream (Qwen2): the modules' own names (q_proj, o_proj, gate_proj, …; the head lm_head matches none).
    static func targetModules(_ targets: [LoRATarget], family: ModelFamily = .llada) -> Any {
        if family != .llada { return targets.map { $0.name(in: family) } }
        let names = targets.map(\.rawValue)
        if !targets.contains(.ffOut) { return names }
        return "model\\.transformer\\.blocks\\.\\d+\\.(" + names.joined(separator: "|") + ")"
    }

    public static func save(_ dir: String, layout: LoRALayout, weights: UnsafePointer<Float>, baseModel: String) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw GiftError(.io, "\(dir): cannot create folder (\(error.localizedDescription))")
        }
        let l = layout.lora
        let cfg: [String: Any] = [
            "peft_type": "LORA", "task_type": NSNull(), "r": l.r, "lora_alpha": l.alpha, "lora_dropout": l.dropout,
            "target_modules": targetModules(l.targets, family: layout.model.family), "base_model_name_or_path": baseModel, "bias": "none",
            "fan_in_fan_out": false, "use_rslora": l.rslora, "init_lora_weights": true, "inference_mode": true,
            "modules_to_save": NSNull(), "layers_to_transform": NSNull(), "layers_pattern": NSNull(),
            "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](), "use_dora": false, "revision": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
        try Checkpoint.writeAtomically(data, to: dir + "/" + configFile)
        let entries = layout.tensors.map {
            SafetensorsWriteEntry(name: $0.name, shape: $0.shape, pointer: weights + $0.offset, count: $0.count)
        }
        try SafetensorsFile.write(path: dir + "/" + weightsFile, tensors: entries, metadata: ["format": "pt"])
    }

    /// Reads an adapter folder for `model`: its LoRA config and weights in gift's adapter layout. Refused
    /// with the file and field: another peft_type, targets the model lacks (or its output head), tensors
    /// missing, unexpected or of another shape (an adapter for another base shape).
    public static func load(_ dir: String, model: ModelConfig) throws -> (LoRAConfig, FloatBuffer) {
        let cpath = dir + "/" + configFile
        guard let data = FileManager.default.contents(atPath: cpath) else {
            throw GiftError(.io, "\(cpath): not found (a PEFT adapter folder has adapter_config.json and adapter_model.safetensors)")
        }
        let root: StrictJSON
        do { root = try StrictJSON.parse([UInt8](data)) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(cpath): not valid JSON at byte \(e.offset): \(e.message)")
        }
        guard case .object(let o) = root else { throw GiftError(.format, "\(cpath): not a JSON object") }
        func bad(_ f: String, _ why: String) -> GiftError { GiftError(.format, "\(cpath): field '\(f)' \(why)") }
        guard case .string(let pt)? = o["peft_type"], pt == "LORA" else { throw bad("peft_type", "must be \"LORA\"") }
        var c = LoRAConfig()
        guard let r = o["r"]?.intValue, r > 0 else { throw bad("r", "must be a positive integer") }
        c.r = r
        guard case .number(let a)? = o["lora_alpha"], let alpha = Double(a) else { throw bad("lora_alpha", "must be a number") }
        c.alpha = alpha
        if case .number(let d)? = o["lora_dropout"], let p = Double(d) { c.dropout = p }
        if case .bool(let rs)? = o["use_rslora"] { c.rslora = rs }
        for (f, ok) in [("fan_in_fan_out", StrictJSON.bool(false)), ("use_dora", .bool(false)), ("bias", .string("none"))] {
            guard let v = o[f] else { continue }
            if case .null = v { continue }
            if v.brief != ok.brief { throw bad(f, "is \(v.brief); gift's LoRA has \(ok.brief)") }
        }
        for f in ["rank_pattern", "alpha_pattern"] {
            if case .object(let p)? = o[f], !p.isEmpty { throw bad(f, "sets per-layer ranks or alphas, which gift does not support") }
        }
        c.targets = try targets(o["target_modules"], model: model, bad: bad)
        let layout: LoRALayout
        do { layout = try LoRALayout(model, c) } catch { throw GiftError(.mismatch, "\(cpath): \(error)") }
        let wpath = dir + "/" + weightsFile
        let f = try SafetensorsFile.read(path: wpath)
        // an adapter of the other family (its module paths say which), refused by name
        for other in ModelFamily.allCases where other != model.family {
            if let n = f.names.first(where: { $0.hasPrefix(LoRALayout.peftPrefix + other.blocksRoot) }) {
                throw GiftError(.mismatch, "\(wpath): the adapter is for a \(other.displayName) model (tensor '\(n)'); this model is \(model.family.displayName)")
            }
        }
        let buf = FloatBuffer(count: layout.count)
        for t in layout.tensors {
            guard let info = f.tensors[t.name] else {
                throw GiftError(.mismatch, "\(wpath): tensor '\(t.name)' missing (adapter_config.json targets \(LoRATarget.names(c.targets, in: model.family, separator: ",")) with r \(r) on \(model.nLayers) layers)")
            }
            if info.shape != t.shape {
                throw GiftError(.mismatch, "\(wpath): tensor '\(t.name)' has shape \(info.shape); this model needs \(t.shape): the adapter is for another base")
            }
            try f.copyFloats(t.name, into: buf.pointer + t.offset, count: t.count)
        }
        let known = Set(layout.tensors.map(\.name))
        if let extra = f.names.first(where: { !known.contains($0) }) {
            throw GiftError(.mismatch, "\(wpath): unexpected tensor '\(extra)' (not an adapter of this model's \(model.nLayers) blocks for targets \(LoRATarget.names(c.targets, in: model.family, separator: ",")))")
        }
        return (c, buf)
    }

    /// PEFT's target_modules: a list of names (matched as path suffixes) or a regex (full match).
    static func targets(_ v: StrictJSON?, model: ModelConfig, bad: (String, String) -> GiftError) throws -> [LoRATarget] {
        let fam = model.family
        let blockModules = (0..<model.nLayers).flatMap { l in LoRATarget.allCases.map { (LoRALayout.moduleName(block: l, $0, family: fam), $0) } }
        let head = fam.headModule
        var matched: [String] = []
        switch v {
        case .array(let a)?:
            let names = try a.map { x -> String in guard case .string(let s) = x else { throw bad("target_modules", "must list strings") }; return s }
            for n in names {
                guard blockModules.contains(where: { $0.0 == n || $0.0.hasSuffix("." + n) }) else {
                    throw bad("target_modules", "names '\(n)', which is not a linear layer of a \(fam.displayName) block (\(LoRATarget.names(in: fam)))")
                }
                if head == n || head.hasSuffix("." + n) {
                    let blocks = fam.blocksRoot.replacingOccurrences(of: ".", with: "\\.")
                    throw bad("target_modules", "'\(n)' also matches the output head \(head) in PEFT; gift adapts block layers only (write the regex \(blocks)\\d+\\.(\(n)) to mean the blocks)")
                }
            }
            matched = blockModules.filter { m in names.contains { m.0 == $0 || m.0.hasSuffix("." + $0) } }.map(\.0)
        case .string(let pattern)?:
            guard let re = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$") else { throw bad("target_modules", "is not a valid regex") }
            func full(_ s: String) -> Bool { re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
            if full(head) { throw bad("target_modules", "matches the output head \(head); gift adapts block layers only") }
            matched = blockModules.map(\.0).filter(full)
        default:
            throw bad("target_modules", "must be a list of module names or a regex")
        }
        let targets = LoRATarget.allCases.filter { t in matched.contains { $0.hasSuffix("." + fam.module(t)) } }
        if targets.isEmpty { throw bad("target_modules", "matches no linear layer of the model") }
        // every block gets the same adapters (layers_to_transform is not supported)
        let want = Set((0..<model.nLayers).flatMap { l in targets.map { LoRALayout.moduleName(block: l, $0, family: fam) } })
        if Set(matched) != want { throw bad("target_modules", "adapts some blocks but not others, which gift does not support") }
        return targets
    }
}

extension PEFTAdapter {
    /// A base model folder with a PEFT adapter merged in (what sampling and `gift export --merge` use).
    public static func merged(base dir: String, adapter: String) throws -> (ModelConfig, FloatBuffer) {
        let (c, base) = try ModelFolder.load(dir)
        let (lc, weights) = try load(adapter, model: c)
        return (c, try LoRALayout(c, lc).merged(base: base.pointer, adapters: weights.pointer))
    }
}
