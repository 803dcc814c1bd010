import Foundation

/// One named tensor inside the flat parameter buffer.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Norm weights get no weight decay and are initialised to 1 (LLaDA's attn_norm, ff_norm, ln_f;
    /// Dream's input_layernorm, post_attention_layernorm, model.norm).
    public var isNorm: Bool {
        name.hasSuffix("_norm.weight") || name.hasSuffix("ln_f.weight") || name.hasSuffix("layernorm.weight")
            || name == "model.norm.weight"
    }
    /// Biases (Dream's q/k/v) get no weight decay and are initialised to 0.
    public var isBias: Bool { name.hasSuffix(".bias") }
    /// Whether AdamW's weight decay applies: matrices only (as Hugging Face's Trainer: no norms, no biases).
    public var decays: Bool { !isNorm && !isBias }
}

/// Offsets of one transformer block's tensors in the flat buffer.
public struct BlockOffsets: Sendable {
    public let attnNorm, q, k, v, attnOut, ffNorm, ffProj, upProj, ffOut: Int
    /// The q|k|v biases, back to back ([d + 2·kv] floats), where the family has them (Dream).
    public let qkvBias: Int?
}

/// The table (name, shape, offset) of every parameter, in the family's Hugging Face names (`ModelFamily`). Parameters,
/// gradients and optimizer moments all use these offsets into buffers of `count` floats.
public struct ParameterLayout: Sendable {
    public let config: ModelConfig
    public let tensors: [TensorInfo]
    public let count: Int
    public let wte: Int, lnF: Int, head: Int
    public let blocks: [BlockOffsets]

    public init(_ c: ModelConfig) {
        config = c
        var t: [TensorInfo] = []
        var off = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let o = off
            t.append(TensorInfo(name: name, shape: shape, offset: o))
            off += shape.reduce(1, *)
            return o
        }
        let d = c.dModel
        let f = c.family
        wte = add(f.embeddingName, [c.vocab, d])
        let blockTensors = Self.blockTensors(c)
        let j = f.hasQKVBias ? 3 : 0   // the bias slots after v_proj's weight
        var bl: [BlockOffsets] = []
        for i in 0..<c.nLayers {
            let p = f.blockPrefix(i), o = blockTensors.map { add(p + $0.name, $0.shape) }
            bl.append(BlockOffsets(attnNorm: o[0], q: o[1], k: o[2], v: o[3], attnOut: o[4 + j], ffNorm: o[5 + j],
                                   ffProj: o[6 + j], upProj: o[7 + j], ffOut: o[8 + j], qkvBias: f.hasQKVBias ? o[4] : nil))
        }
        blocks = bl
        lnF = add(f.finalNormName, [d])
        head = add(f.headName, [c.vocab, d])
        tensors = t
        count = off
    }

    /// One block's tensors (name after the family's block prefix), in layout order: the order
    /// `BlockOffsets` lists them (the biases, where the family has them, after v_proj's weight).
    static func blockTensors(_ c: ModelConfig) -> [(name: String, shape: [Int])] { c.family.blockTensors(c) }

    /// The count `init` would reach, nil when it overflows Int (for sizes read from an untrusted config,
    /// before a layout is made): the same tensors, each product and sum checked.
    static func checkedCount(_ c: ModelConfig) -> Int? {
        func product(_ shape: [Int]) -> Int? {
            var p = 1
            for x in shape {
                let (m, o) = p.multipliedReportingOverflow(by: x)
                if o { return nil }
                p = m
            }
            return p
        }
        func sum(_ xs: [Int?]) -> Int? {
            var s = 0
            for x in xs {
                guard let x else { return nil }
                let (t, o) = s.addingReportingOverflow(x)
                if o { return nil }
                s = t
            }
            return s
        }
        let block = sum(blockTensors(c).map { product($0.shape) })
        return sum([product([c.vocab, c.dModel]), block.flatMap { product([c.nLayers, $0]) }, c.dModel, product([c.vocab, c.dModel])])
    }

    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    /// Parameters that take part in matrix multiplies (all but the embedding table and the norms):
    /// the N in the 6·N·tokens FLOP estimate.
    public var matmulParameterCount: Int {
        tensors.filter { $0.decays && $0.offset != wte }.reduce(0) { $0 + $1.count }
    }

    /// A fresh parameter buffer: normal(0, 0.02) matrices, unit norm weights, zero biases. Same seed, same bytes:
    /// each tensor draws from its own counter stream keyed by (seed, tensor index).
    public func initialize(seed: UInt64, std: Double = 0.02) -> FloatBuffer {
        initialize(seed: seed, std: std, range: 0..<count)   // ParameterLayoutRangeInit.swift
    }
}

/// A flat buffer's tensor table: what the optimizer, gradient sync, clipping and checkpoints loop over
/// (the whole model in full fine-tuning, the adapters under LoRA).
public struct TensorTable: Equatable, Sendable {
    public let tensors: [TensorInfo]
    public let count: Int
    public init(tensors: [TensorInfo], count: Int) { self.tensors = tensors; self.count = count }
}

extension ParameterLayout {
    public var table: TensorTable { TensorTable(tensors: tensors, count: count) }
}

extension LoRALayout {
    public var table: TensorTable { TensorTable(tensors: tensors, count: count) }
}
