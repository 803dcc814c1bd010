import Foundation

/// The model families gift trains, read from config.json's `model_type`: what differs between them lives
/// here and nowhere else — the Hugging Face tensor names and the bias slots, the config.json fields (in
/// `ModelConfig`'s per-family reader and writer), the LoRA/PEFT module paths, and which logit row
/// predicts which token. The block's forward and backward are one code path for both.
///
/// - `llada` (GSAI-ML LLaDA): `model.transformer.blocks.N.*`, no biases, row i predicts token i.
/// - `dream` (Dream-org Dream-v0, initialised from Qwen2.5): Qwen2's `model.layers.N.self_attn.*` /
///   `mlp.*` names, q/k/v biases, an untied `lm_head`, and shifted predictions: Dream keeps the AR
///   model's next-token head, so row i−1 predicts token i (its sampler and dllm's trainer right-shift the
///   logits, `cat([logits[:, :1], logits[:, :-1]])`: the first row stands for itself).
public enum ModelFamily: String, Sendable, CaseIterable {
    case llada, dream

    /// The family of a config.json `model_type` ("llada"; "Dream" as Dream ships it, any case), nil if
    /// gift does not know it.
    public static func from(modelType: String) -> ModelFamily? {
        if modelType == "llada" { return .llada }
        if modelType.lowercased() == "dream" { return .dream }
        return nil
    }

    /// config.json's `model_type` and `architectures` as the family's own folders write them.
    public var modelType: String { self == .llada ? "llada" : "Dream" }
    public var architectures: [String] { self == .llada ? ["LLaDAModelLM"] : ["DreamModel"] }
    /// The name in messages.
    public var displayName: String { self == .llada ? "LLaDA" : "Dream" }

    /// Whether q_proj, k_proj and v_proj carry biases (LLaDA's `include_qkv_bias`; Qwen2 always).
    public var hasQKVBias: Bool { self == .dream }

    /// How many rows before token i its logit row is: 0 (LLaDA), 1 (Dream).
    public var predictionShift: Int { self == .llada ? 0 : 1 }

    /// The logit row (position in the same sequence) that predicts the token at position i.
    @inline(__always) public func logitRow(forToken i: Int) -> Int { max(i - predictionShift, 0) }

    // MARK: tensor names

    public var embeddingName: String { self == .llada ? "model.transformer.wte.weight" : "model.embed_tokens.weight" }
    public var finalNormName: String { self == .llada ? "model.transformer.ln_f.weight" : "model.norm.weight" }
    public var headName: String { self == .llada ? "model.transformer.ff_out.weight" : "lm_head.weight" }
    /// The output head's module path (PEFT's target matching must not reach it).
    public var headModule: String { String(headName.dropLast(".weight".count)) }
    /// Where the blocks' tensor names begin ("model.transformer.blocks." / "model.layers.").
    public var blocksRoot: String { self == .llada ? "model.transformer.blocks." : "model.layers." }
    public func blockPrefix(_ l: Int) -> String { blocksRoot + "\(l)." }

    /// A block's module paths after the block prefix, in `BlockOffsets` order (the two norms, then the
    /// linear layers in `LoRATarget` order).
    var attnNormModule: String { self == .llada ? "attn_norm" : "input_layernorm" }
    var ffNormModule: String { self == .llada ? "ff_norm" : "post_attention_layernorm" }
    public func module(_ t: LoRATarget) -> String {
        switch self {
        case .llada: return t.rawValue
        case .dream:
            switch t {
            case .q: return "self_attn.q_proj"
            case .k: return "self_attn.k_proj"
            case .v: return "self_attn.v_proj"
            case .attnOut: return "self_attn.o_proj"
            case .ffProj: return "mlp.gate_proj"
            case .upProj: return "mlp.up_proj"
            case .ffOut: return "mlp.down_proj"
            }
        }
    }

    /// A block's tensors (name after `blockPrefix`, shape), in layout order: attention norm, q, k, v
    /// weights, then (with `hasQKVBias`) the q, k, v biases back to back (one [d + 2·kv] row the fused
    /// q|k|v projection adds), attention output, MLP norm, gate, up, down.
    func blockTensors(_ c: ModelConfig) -> [(name: String, shape: [Int])] {
        let d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize
        func w(_ t: LoRATarget) -> String { module(t) + ".weight" }
        var t: [(name: String, shape: [Int])] = [(attnNormModule + ".weight", [d]), (w(.q), [d, d]), (w(.k), [kv, d]), (w(.v), [kv, d])]
        if hasQKVBias { t += [(module(.q) + ".bias", [d]), (module(.k) + ".bias", [kv]), (module(.v) + ".bias", [kv])] }
        t += [(w(.attnOut), [d, d]), (ffNormModule + ".weight", [d]), (w(.ffProj), [ff, d]), (w(.upProj), [ff, d]),
              (w(.ffOut), [d, ff])]
        return t
    }

    /// config.json field names for `ModelConfig.validate`'s messages (its LLaDA names as keys).
    func field(_ llada: String) -> String {
        guard self == .dream else { return llada }
        switch llada {
        case "d_model": return "hidden_size"
        case "n_heads": return "num_attention_heads"
        case "n_kv_heads": return "num_key_value_heads"
        case "n_layers": return "num_hidden_layers"
        case "mlp_hidden_size": return "intermediate_size"
        case "embedding_size": return "vocab_size"
        case "max_sequence_length": return "max_position_embeddings"
        default: return llada
        }
    }
}

extension ModelConfig {
    /// Each token row (index into batch·seqLen) → the row of the model output that predicts it, under
    /// the family's rule. LLaDA: the same rows.
    public func logitRows(forTokenRows rows: [Int32], seqLen L: Int) -> [Int32] {
        let s = family.predictionShift
        guard s != 0 else { return rows }
        return rows.map { t in
            let b = Int(t) / L, i = Int(t) % L
            return Int32(b * L + family.logitRow(forToken: i))
        }
    }
}
