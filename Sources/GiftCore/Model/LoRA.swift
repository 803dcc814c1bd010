import Foundation

/// A block's linear layer that can carry a LoRA adapter. The raw values are gift's own names for the
/// layers (LLaDA's, also in checkpoint manifests); users and PEFT see `name(in:)`, the family's names.
public enum LoRATarget: String, CaseIterable, Sendable, Codable {
    case q = "q_proj", k = "k_proj", v = "v_proj", attnOut = "attn_out", ffProj = "ff_proj", upProj = "up_proj", ffOut = "ff_out"

    /// (in_features, out_features) of the layer.
    public func dims(_ c: ModelConfig) -> (inDim: Int, outDim: Int) {
        switch self {
        case .q, .attnOut: return (c.dModel, c.dModel)
        case .k, .v: return (c.dModel, c.kvDim)
        case .ffProj, .upProj: return (c.dModel, c.mlpHiddenSize)
        case .ffOut: return (c.mlpHiddenSize, c.dModel)
        }
    }

    /// The layer's name in `--lora-targets` and PEFT's target_modules for a family: LLaDA's module names,
    /// Qwen2's for Dream (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj).
    public func name(in f: ModelFamily) -> String { String(f.module(self).split(separator: ".").last!) }

    /// "q_proj, k_proj, …": a family's names of `targets` (every layer when nil), for messages and help.
    public static func names(_ targets: [LoRATarget] = allCases, in f: ModelFamily, separator: String = ", ") -> String {
        targets.map { $0.name(in: f) }.joined(separator: separator)
    }
}

/// LoRA as PEFT does it: W x + scale · B A dropout(x), A [r, in] Kaiming-uniform, B [out, r] zero,
/// scale alpha/r (or alpha/√r with rsLoRA). r 0 means no adapters (full fine-tuning).
public struct LoRAConfig: Equatable, Sendable {
    public var r = 0
    public var alpha = 16.0
    public var dropout = 0.0
    public var targets: [LoRATarget] = [.q, .k, .v]
    /// The family whose layer names `targets` was given in (nil: names both families share, q/k/v_proj and
    /// up_proj): `validate(for:)` refuses the other family's names, so a LLaDA recipe's attn_out is not
    /// silently Dream's o_proj.
    public var targetsNamedFor: ModelFamily?
    public var rslora = false
    public init() {}

    public var enabled: Bool { r > 0 }
    public var scale: Float { Float(rslora ? alpha / Double(r).squareRoot() : alpha / Double(r)) }

    /// "q_proj,k_proj,v_proj" → targets in the block's order, and the family whose names the list uses (nil
    /// when every name is common to both). Names of either family are read here, since the model is not
    /// known yet; `validate(for:)` checks them against the model's. Unknown names and a mix of both
    /// families' names are errors listing each family's names.
    public static func parseTargets(_ s: String, source: String = "--lora-targets") throws -> (targets: [LoRATarget], family: ModelFamily?) {
        var set = Set<LoRATarget>(), families = Set<ModelFamily>()
        let known = ModelFamily.allCases.map { "\($0.displayName): \(LoRATarget.names(in: $0))" }.joined(separator: "; ")
        for name in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            let owners = ModelFamily.allCases.filter { f in LoRATarget.allCases.contains { $0.name(in: f) == name } }
            guard let f = owners.first, let t = LoRATarget.allCases.first(where: { $0.name(in: f) == name }) else {
                throw GiftError(.config, "\(source): '\(name)' is not a linear layer of a block; the targets are \(known)")
            }
            if owners.count == 1 { families.insert(f) }
            set.insert(t)
        }
        if set.isEmpty { throw GiftError(.config, "\(source): no target layers given") }
        if families.count > 1 { throw GiftError(.config, "\(source): '\(s)' mixes the two families' layer names; the targets are \(known)") }
        return (LoRATarget.allCases.filter(set.contains), families.first)
    }

    /// Sets `targets` (and `targetsNamedFor`) from a --lora-targets list.
    public mutating func setTargets(_ s: String, source: String = "--lora-targets") throws {
        (targets, targetsNamedFor) = try Self.parseTargets(s, source: source)
    }

    /// The targets as given: in the family their names were given in (LLaDA's when shared).
    public var targetsText: String { LoRATarget.names(targets, in: targetsNamedFor ?? .llada, separator: ",") }

    public func validate(for c: ModelConfig) throws {
        guard enabled else { return }
        if !(alpha > 0 && alpha.isFinite) { throw GiftError(.config, "lora_alpha must be positive and finite, got \(alpha)") }
        if !(dropout >= 0 && dropout < 1) { throw GiftError(.config, "lora_dropout must be in [0, 1), got \(dropout)") }
        if targets.isEmpty { throw GiftError(.config, "lora_targets is empty") }
        if let f = targetsNamedFor, f != c.family {
            let foreign = targets.filter { $0.name(in: f) != $0.name(in: c.family) }
            throw GiftError(.config, "lora_targets names \(LoRATarget.names(foreign, in: f)), \(f.displayName)'s layer names; this model is \(c.family.displayName): its targets are \(LoRATarget.names(in: c.family))")
        }
        for t in targets {
            let (i, o) = t.dims(c)
            if r > min(i, o) {
                throw GiftError(.config, "lora_r \(r) is larger than \(t.name(in: c.family)) (\(o)×\(i)): an adapter's rank can be at most min(in, out) = \(min(i, o))")
            }
        }
    }
}

/// One adapter: offsets of A [r, in] and B [out, r] in the flat adapter buffer.
public struct LoRAModule: Sendable {
    public let target: LoRATarget
    public let a: Int, b: Int
    public let inDim: Int, outDim: Int
}

/// The flat adapter buffer's table, in PEFT's tensor names, block by block (so backward finishes the
/// offsets from the top down, as the overlapped gradient sync expects).
public struct LoRALayout: Sendable {
    public let model: ModelConfig
    public let lora: LoRAConfig
    public let tensors: [TensorInfo]
    public let count: Int
    /// blocks[l]: the adapters of block l, in `LoRATarget` order.
    public let blocks: [[LoRAModule]]
    /// Flat offset where block l's adapters begin.
    public let blockStart: [Int]

    /// PEFT's key prefix for a model wrapped by `get_peft_model` (the adapter name removed on save).
    public static let peftPrefix = "base_model.model."

    public init(_ c: ModelConfig, _ lora: LoRAConfig) throws {
        try lora.validate(for: c)
        model = c; self.lora = lora
        var t: [TensorInfo] = [], bl: [[LoRAModule]] = [], starts: [Int] = []
        var off = 0
        for l in 0..<c.nLayers {
            starts.append(off)
            var mods: [LoRAModule] = []
            for target in lora.targets {
                let (i, o) = target.dims(c)
                let name = Self.peftPrefix + Self.moduleName(block: l, target, family: c.family)
                t.append(TensorInfo(name: name + ".lora_A.weight", shape: [lora.r, i], offset: off))
                let a = off; off += lora.r * i
                t.append(TensorInfo(name: name + ".lora_B.weight", shape: [o, lora.r], offset: off))
                let b = off; off += o * lora.r
                mods.append(LoRAModule(target: target, a: a, b: b, inDim: i, outDim: o))
            }
            bl.append(mods)
        }
        tensors = t; count = off; blocks = bl; blockStart = starts
    }

    /// The module's path in the Hugging Face model ("model.transformer.blocks.3.q_proj";
    /// Dream: "model.layers.3.self_attn.q_proj").
    public static func moduleName(block: Int, _ t: LoRATarget, family: ModelFamily = .llada) -> String {
        family.blockPrefix(block) + family.module(t)
    }

    public func module(block l: Int, _ t: LoRATarget) -> LoRAModule? { blocks[l].first { $0.target == t } }

    /// PEFT's initialisation: A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), B = 0. Same seed, same bytes.
    public func initialize(seed: UInt64) -> FloatBuffer {
        let buf = FloatBuffer(count: count)
        buf.zero()
        for (l, mods) in blocks.enumerated() {
            for m in mods {
                let rng = CounterRNG(seed, 0x10_4A, UInt64(l), UInt64(LoRATarget.allCases.firstIndex(of: m.target)!))
                let bound = 1 / Double(m.inDim).squareRoot()
                let p = buf.pointer + m.a
                for j in 0..<(lora.r * m.inDim) { p[j] = Float((2 * rng.uniform(UInt64(j)) - 1) * bound) }
            }
        }
        return buf
    }

    /// The base weights with every adapter merged in (W + scale·B·A, in Double per element so the result
    /// does not depend on a GEMM's summation order), as PEFT's merge_and_unload does.
    public func merged(base: UnsafePointer<Float>, adapters: UnsafePointer<Float>) -> FloatBuffer {
        let layout = ParameterLayout(model)
        let out = FloatBuffer(count: layout.count)
        out.pointer.update(from: base, count: layout.count)
        let s = Double(lora.scale), r = lora.r
        for (l, mods) in blocks.enumerated() {
            for m in mods {
                let w = out.pointer + baseOffset(layout.blocks[l], m.target)
                let A = adapters + m.a, B = adapters + m.b, n = m.inDim
                Parallel.chunks(m.outDim, minChunk: 8) { o0, o1 in
                    for o in o0..<o1 {
                        for i in 0..<n {
                            var acc = 0.0
                            for k in 0..<r { acc += Double(B[o * r + k]) * Double(A[k * n + i]) }
                            w[o * n + i] = Float(Double(w[o * n + i]) + s * acc)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Offset of a target's base weight in the model's flat buffer.
    public func baseOffset(_ o: BlockOffsets, _ t: LoRATarget) -> Int {
        switch t {
        case .q: return o.q
        case .k: return o.k
        case .v: return o.v
        case .attnOut: return o.attnOut
        case .ffProj: return o.ffProj
        case .upProj: return o.upProj
        case .ffOut: return o.ffOut
        }
    }
}
