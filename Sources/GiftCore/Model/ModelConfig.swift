import Foundation

/// The model's shape and constants, read from and written to the Hugging Face `config.json` of its family
/// (LLaDA's or Dream's fields: `ModelFamily`).
public struct ModelConfig: Equatable, Sendable {
    /// Which architecture's names, config fields and logit-row rule (from config.json's `model_type`).
    public var family: ModelFamily = .llada
    public var dModel: Int
    public var nHeads: Int
    public var nKVHeads: Int
    public var nLayers: Int
    public var mlpHiddenSize: Int
    public var vocabSize: Int
    public var embeddingSize: Int
    public var maskTokenId: Int
    public var eosTokenId: Int
    public var padTokenId: Int
    public var ropeTheta: Double
    public var rmsNormEps: Double
    public var maxSequenceLength: Int
    /// config.json's `mlp_ratio` where it is not the derived max(1, mlp_hidden_size / d_model) (LLaDA's code
    /// reads mlp_hidden_size and ignores the ratio, but a drop-in folder keeps the published value: LLaDA-8B
    /// says 4 beside 12288 / 4096); nil: the derived value.
    public var mlpRatio: Int? = nil
    var writtenMLPRatio: Int { mlpRatio ?? (dModel > 0 ? max(1, mlpHiddenSize / dModel) : 1) }

    public var headDim: Int { dModel / nHeads }
    public var kvDim: Int { nKVHeads * headDim }
    /// Rows of the embedding and the output head (LLaDA sizes both by embedding_size).
    public var vocab: Int { embeddingSize }

    public init(dModel: Int, nHeads: Int, nKVHeads: Int? = nil, nLayers: Int, mlpHiddenSize: Int,
                vocabSize: Int, embeddingSize: Int? = nil, maskTokenId: Int, eosTokenId: Int? = nil,
                padTokenId: Int? = nil, ropeTheta: Double = 10000, rmsNormEps: Double = 1e-5,
                maxSequenceLength: Int = 4096, family: ModelFamily = .llada) {
        self.family = family
        self.dModel = dModel; self.nHeads = nHeads; self.nKVHeads = nKVHeads ?? nHeads
        self.nLayers = nLayers; self.mlpHiddenSize = mlpHiddenSize; self.vocabSize = vocabSize
        self.embeddingSize = embeddingSize ?? vocabSize; self.maskTokenId = maskTokenId
        let eos = eosTokenId ?? (maskTokenId > 0 ? maskTokenId - 1 : 0)
        self.eosTokenId = eos; self.padTokenId = padTokenId ?? eos
        self.ropeTheta = ropeTheta; self.rmsNormEps = rmsNormEps; self.maxSequenceLength = maxSequenceLength
    }

    /// Checks the sizes fit together; `source` names the file in the message.
    public func validate(source: String = "config") throws {
        func bad(_ field: String, _ why: String) -> GiftError {
            GiftError(.config, "\(source): field '\(family.field(field))' \(why)")
        }
        for (f, v) in [("d_model", dModel), ("n_heads", nHeads), ("n_kv_heads", nKVHeads), ("n_layers", nLayers),
                       ("mlp_hidden_size", mlpHiddenSize), ("vocab_size", vocabSize),
                       ("embedding_size", embeddingSize), ("max_sequence_length", maxSequenceLength)] where v <= 0 {
            throw bad(f, "must be positive, got \(v)")
        }
        if dModel % nHeads != 0 { throw bad("d_model", "(\(dModel)) must be divisible by n_heads (\(nHeads))") }
        if headDim % 2 != 0 { throw bad("d_model", "/ n_heads must be even for rotary embeddings, got \(headDim)") }
        if nHeads % nKVHeads != 0 { throw bad("n_heads", "(\(nHeads)) must be a multiple of n_kv_heads (\(nKVHeads))") }
        if embeddingSize < vocabSize { throw bad("embedding_size", "(\(embeddingSize)) is smaller than vocab_size (\(vocabSize))") }
        if nLayers > Self.maxLayers { throw bad("n_layers", "(\(nLayers)) is more than gift's limit of \(Self.maxLayers)") }
        guard let n = ParameterLayout.checkedCount(self), n <= Self.maxParameters else {
            let f = family.field
            throw GiftError(.config, "\(source): \(f("d_model")) \(dModel), \(f("n_layers")) \(nLayers), \(f("mlp_hidden_size")) \(mlpHiddenSize) and "
                            + "\(f("embedding_size")) \(embeddingSize) describe more than gift's limit of \(Self.maxParameters) parameters")
        }
        for (f, v) in [("mask_token_id", maskTokenId), ("eos_token_id", eosTokenId), ("pad_token_id", padTokenId)]
        where v < 0 || v >= embeddingSize {
            throw bad(f, "(\(v)) is outside the vocabulary of \(embeddingSize) tokens")
        }
        if !(ropeTheta > 0 && ropeTheta.isFinite) { throw bad("rope_theta", "must be positive and finite") }
        if !(rmsNormEps > 0 && rmsNormEps.isFinite) { throw bad("rms_norm_eps", "must be positive and finite") }
    }

    /// Most parameters a config may describe: 2^40 (1.1 trillion, 4.4 TB of fp32), so that no size read from
    /// a config.json can overflow the layout's offsets or have it allocate or loop absurdly.
    public static let maxParameters = 1 << 40
    /// Most blocks a config may describe (LLaDA-8B has 32).
    public static let maxLayers = 10_000

    // MARK: presets

    public static let presetNames = ["tiny", "mini", "small", "base", "llada-8b", "dream-tiny", "dream-7b"]

    /// Whether `--model` names a built-in preset: a preset's name, unless a folder of that name exists.
    public static func isPreset(_ model: String) -> Bool {
        presetNames.contains(model) && !FileManager.default.fileExists(atPath: model)
    }

    public static func preset(_ name: String) throws -> ModelConfig {
        switch name {
        case "tiny": return ModelConfig(dModel: 64, nHeads: 4, nLayers: 2, mlpHiddenSize: 176, vocabSize: 64, maskTokenId: 63)
        case "mini": return ModelConfig(dModel: 128, nHeads: 4, nLayers: 4, mlpHiddenSize: 352, vocabSize: 64, maskTokenId: 63)
        case "small": return ModelConfig(dModel: 512, nHeads: 8, nLayers: 8, mlpHiddenSize: 1376, vocabSize: 4096, maskTokenId: 4095)
        case "base": return ModelConfig(dModel: 1024, nHeads: 16, nLayers: 16, mlpHiddenSize: 2816, vocabSize: 32768, maskTokenId: 32767)
        // GSAI-ML/LLaDA-8B-Base and -Instruct config.json: 8.02 B parameters (32 GB in fp32)
        case "llada-8b":
            var c = ModelConfig(dModel: 4096, nHeads: 32, nKVHeads: 32, nLayers: 32, mlpHiddenSize: 12288,
                                vocabSize: 126464, embeddingSize: 126464, maskTokenId: 126336, eosTokenId: 126081,
                                padTokenId: 126081, ropeTheta: 500000, rmsNormEps: 1e-5, maxSequenceLength: 4096)
            c.mlpRatio = 4   // as published (mlp_hidden_size 12288 is what the model uses)
            return c
        // a tiny Dream (Qwen2 blocks with q/k/v biases, GQA, shifted predictions) for tests
        case "dream-tiny":
            return ModelConfig(dModel: 64, nHeads: 4, nKVHeads: 2, nLayers: 2, mlpHiddenSize: 128, vocabSize: 100,
                               maskTokenId: 99, eosTokenId: 97, padTokenId: 97, ropeTheta: 1_000_000, rmsNormEps: 1e-6,
                               maxSequenceLength: 4096, family: .dream)
        // Dream-org/Dream-v0-Base-7B and -Instruct-7B config.json: 7.62 B parameters
        case "dream-7b":
            return ModelConfig(dModel: 3584, nHeads: 28, nKVHeads: 4, nLayers: 28, mlpHiddenSize: 18944, vocabSize: 152064,
                               maskTokenId: 151666, eosTokenId: 151643, padTokenId: 151643, ropeTheta: 1_000_000,
                               rmsNormEps: 1e-6, maxSequenceLength: 131072, family: .dream)
        default: throw GiftError(.usage, "unknown preset '\(name)'; known presets: \(presetNames.joined(separator: ", "))")
        }
    }

    // MARK: config.json

    /// The family's full config.json: LLaDA's with every field LLaDA's own modeling code checks; Dream's
    /// with Qwen2's field names (its remote code's `auto_map` and the like come from the source folder,
    /// `ModelCompanions`).
    public func jsonObject() -> [String: Any] {
        switch family {
        case .llada: return lladaJSONObject()
        case .dream: return dreamJSONObject()
        }
    }

    func dreamJSONObject() -> [String: Any] {
        [
            "model_type": family.modelType, "architectures": family.architectures,
            "hidden_size": dModel, "num_attention_heads": nHeads, "num_key_value_heads": nKVHeads,
            "num_hidden_layers": nLayers, "intermediate_size": mlpHiddenSize, "vocab_size": vocabSize,
            "mask_token_id": maskTokenId, "eos_token_id": eosTokenId, "pad_token_id": padTokenId,
            "rope_theta": ropeTheta, "rms_norm_eps": rmsNormEps, "max_position_embeddings": maxSequenceLength,
            "tie_word_embeddings": false, "hidden_act": "silu", "rope_scaling": NSNull(), "use_sliding_window": false,
            "attention_dropout": 0.0, "use_cache": false,
        ]
    }

    func lladaJSONObject() -> [String: Any] {
        [
            "model_type": "llada", "architectures": ["LLaDAModelLM"],
            "d_model": dModel, "n_heads": nHeads, "n_kv_heads": nKVHeads, "n_layers": nLayers,
            "mlp_hidden_size": mlpHiddenSize, "mlp_ratio": writtenMLPRatio,
            "vocab_size": vocabSize, "embedding_size": embeddingSize,
            "mask_token_id": maskTokenId, "eos_token_id": eosTokenId, "pad_token_id": padTokenId,
            "rope_theta": ropeTheta, "rms_norm_eps": rmsNormEps, "max_sequence_length": maxSequenceLength,
            "weight_tying": false, "block_type": "llama", "activation_type": "silu", "rope": true,
            "rope_full_precision": true, "layer_norm_type": "rms", "layer_norm_with_affine": true,
            "include_bias": false, "include_qkv_bias": false, "bias_for_layer_norm": false,
            "attention_layer_norm": false, "alibi": false, "scale_logits": false, "use_cache": false,
        ]
    }

    public func jsonData() -> Data {
        try! JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
    }

    /// Parses a config.json. Every required field is checked for presence and type, and every
    /// architecture switch gift does not implement is refused by name.
    public static func parse(_ data: Data, source: String) throws -> ModelConfig {
        // The strict reader: it bounds nesting (64 levels), refuses duplicate keys and names the place of
        // any fault, where JSONSerialization says only "The data is not in the correct format" (and
        // refuses numbers such as 1e999 that JSON allows).
        let bytes = [UInt8](data)
        let root: StrictJSON
        do { root = try StrictJSON.parse(bytes) } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(source): not valid JSON (\(e.message) at \(StrictJSON.place(in: bytes, offset: e.offset)))")
        }
        guard case .object(let o) = root else { throw GiftError(.format, "\(source): expected a JSON object") }
        return try parse(object: o, source: source)
    }

    /// Parses a config.json's object (also a checkpoint manifest's "model").
    static func parse(object o: [String: StrictJSON], source: String) throws -> ModelConfig {
        let f = ConfigFields(o: o, source: source)
        if case .string(let mt)? = o["model_type"] {
            guard let fam = ModelFamily.from(modelType: mt) else {
                throw GiftError(.config, "\(source): field 'model_type' is '\(mt)'; gift supports 'llada' and 'Dream'")
            }
            if fam == .dream { return try parseDream(o, source: source) }
        }
        try f.flag("weight_tying", expect: false)
        try f.flag("include_bias", expect: false)
        try f.flag("include_qkv_bias", expect: false)
        try f.flag("alibi", expect: false)
        try f.flag("attention_layer_norm", expect: false)
        try f.flag("scale_logits", expect: false)
        try f.flag("rope", expect: true)
        for (k, want) in [("activation_type", "silu"), ("layer_norm_type", "rms"), ("block_type", "llama")] {
            if let v = f.present(k) {
                if case .string(want) = v { continue }
                let shown: String
                if case .string(let s) = v { shown = s } else { shown = v.brief }
                throw GiftError(.config, "\(source): field '\(k)' is \(shown); gift supports only '\(want)'")
            }
        }
        let d = try f.int("d_model")!, h = try f.int("n_heads")!
        var c = ModelConfig(
            dModel: d, nHeads: h, nKVHeads: try f.int("n_kv_heads", required: false) ?? h,
            nLayers: try f.int("n_layers")!, mlpHiddenSize: try f.int("mlp_hidden_size")!,
            vocabSize: try f.int("vocab_size")!, embeddingSize: try f.int("embedding_size", required: false),
            maskTokenId: try f.int("mask_token_id")!, eosTokenId: try f.int("eos_token_id", required: false),
            padTokenId: try f.int("pad_token_id", required: false), ropeTheta: try f.double("rope_theta", default: 10000),
            rmsNormEps: try f.double("rms_norm_eps", default: 1e-5),
            maxSequenceLength: try f.int("max_sequence_length", required: false) ?? 4096)
        try c.validate(source: source)
        // after validate: the derived ratio divides by d_model
        if let r = try f.int("mlp_ratio", required: false), r != c.writtenMLPRatio { c.mlpRatio = r }
        return c
    }

    /// Dream's config.json (Qwen2's fields; DreamConfig's defaults where a field is absent). Every Qwen2
    /// switch gift does not implement is refused by name.
    static func parseDream(_ o: [String: StrictJSON], source: String) throws -> ModelConfig {
        let f = ConfigFields(o: o, source: source)
        try f.flag("tie_word_embeddings", expect: false)
        try f.flag("use_sliding_window", expect: false)
        if let v = f.present("hidden_act") {
            guard case .string("silu") = v else {
                throw GiftError(.config, "\(source): field 'hidden_act' is \(v.brief); gift supports only 'silu'")
            }
        }
        if let v = f.present("rope_scaling") {
            throw GiftError(.config, "\(source): field 'rope_scaling' is \(v.brief); gift supports only null (plain RoPE)")
        }
        let d = try f.int("hidden_size")!, h = try f.int("num_attention_heads")!
        if let hd = try f.int("head_dim", required: false), h > 0, hd != d / h {
            throw GiftError(.config, "\(source): field 'head_dim' is \(hd); gift supports only hidden_size / num_attention_heads (\(d / h))")
        }
        let c = ModelConfig(
            dModel: d, nHeads: h, nKVHeads: try f.int("num_key_value_heads", required: false) ?? h,
            nLayers: try f.int("num_hidden_layers")!, mlpHiddenSize: try f.int("intermediate_size")!,
            vocabSize: try f.int("vocab_size")!, maskTokenId: try f.int("mask_token_id")!,
            eosTokenId: try f.int("eos_token_id", required: false), padTokenId: try f.int("pad_token_id", required: false),
            ropeTheta: try f.double("rope_theta", default: 10000), rmsNormEps: try f.double("rms_norm_eps", default: 1e-6),
            maxSequenceLength: try f.int("max_position_embeddings", required: false) ?? 32768, family: .dream)
        try c.validate(source: source)
        return c
    }
}

/// The fields of a config.json object, each read with an error naming the file and field (both
/// families' parsers read through it).
struct ConfigFields {
    let o: [String: StrictJSON], source: String

    func present(_ k: String) -> StrictJSON? {
        guard let v = o[k] else { return nil }
        if case .null = v { return nil }
        return v
    }
    func int(_ k: String, required: Bool = true) throws -> Int? {
        guard let v = present(k) else {
            if required { throw GiftError(.config, "\(source): missing field '\(k)'") }
            return nil
        }
        // an integer literal, or a number with an integral value (64.0, 6.4e1) that fits in Int
        guard case .number(let t) = v, let i = Int(t) ?? Double(t).flatMap({ Int(exactly: $0) }) else {
            throw GiftError(.config, "\(source): field '\(k)' must be an integer, got \(v.brief)")
        }
        return i
    }
    func double(_ k: String, default d: Double) throws -> Double {
        guard let v = present(k) else { return d }
        guard case .number(let t) = v, let x = Double(t) else {
            throw GiftError(.config, "\(source): field '\(k)' must be a number, got \(v.brief)")
        }
        return x
    }
    func flag(_ k: String, expect: Bool) throws {
        guard let v = present(k) else { return }
        guard case .bool(let b) = v else { throw GiftError(.config, "\(source): field '\(k)' must be true or false") }
        if b != expect { throw GiftError(.config, "\(source): field '\(k)' is \(b); gift supports only \(expect)") }
    }
}
