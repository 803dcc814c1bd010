import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised model folder (config.json + model.safetensors).",
        discussion: """
        Presets: tiny (d 64, 2 layers, 4 heads, ff 176, vocab 64, mask 63), small (d 512, 8 layers, 8 heads, \
        ff 1376, vocab 4096, mask 4095), base (d 1024, 16 layers, 16 heads, ff 2816, vocab 32768). Explicit \
        sizes override the preset's.

        Matrices are drawn from N(0, 0.02), norm weights are 1; the same seed gives the same bytes.

        Examples:
          gift init --preset tiny --out runs/tiny-model
          gift init --preset small --heads 8 --kv-heads 2 --seed 1 --dtype bf16 --out runs/small-gqa
          gift init --preset small --layers 16 --dtype bf16 --max-shard-bytes 20000000 --out runs/sharded
        """)

    @Option(help: "Start from a preset: tiny, mini, small, base, llada-8b, dream-tiny or dream-7b (Dream: Qwen2 blocks, Dream's config.json).") var preset: String = "tiny"
    @Option(help: "Hidden size.") var dModel: Int?
    @Option(help: "Number of transformer blocks.") var layers: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(help: "Key/value heads (grouped-query attention); defaults to --heads.") var kvHeads: Int?
    @Option(help: "MLP hidden size.") var ff: Int?
    @Option(help: "Vocabulary size.") var vocab: Int?
    @Option(help: "Mask token id (default: vocab - 1).") var maskId: Int?
    @Option(help: "EOS/pad token id (default: mask id - 1).") var eosId: Int?
    @Option(help: "Maximum sequence length recorded in config.json.") var maxSeqLen: Int?
    @Option(help: "Random seed of the initial weights.") var seed: UInt64 = 0
    @Option(help: "Write tensors as f32 or bf16.") var dtype: String = "f32"
    @Option(help: "Split the weights into shards of at most this many bytes, with model.safetensors.index.json.")
    var maxShardBytes: Int?
    @Option(help: "Output folder (created; files in it are replaced).") var out: String

    func run() throws {
        var c = try ModelConfig.preset(preset)
        if let v = dModel { c.dModel = v }
        if let v = layers { c.nLayers = v }
        if let v = heads { c.nHeads = v; c.nKVHeads = kvHeads ?? v }
        if let v = kvHeads { c.nKVHeads = v }
        if let v = ff { c.mlpHiddenSize = v }
        if let v = vocab {
            c.vocabSize = v; c.embeddingSize = v
            if maskId == nil { c.maskTokenId = v - 1 }
            if eosId == nil { c.eosTokenId = c.maskTokenId - 1; c.padTokenId = c.eosTokenId }
        }
        if let v = maskId { c.maskTokenId = v; if eosId == nil { c.eosTokenId = v - 1; c.padTokenId = v - 1 } }
        if let v = eosId { c.eosTokenId = v; c.padTokenId = v }
        if let v = maxSeqLen { c.maxSequenceLength = v }
        try c.validate(source: "gift init")
        guard let dt = ["f32": SafetensorsDType.F32, "bf16": .BF16][dtype] else {
            throw ValidationError("--dtype must be f32 or bf16")
        }
        if let m = maxShardBytes, m <= 0 { throw ValidationError("--max-shard-bytes must be positive") }
        // Streamed 16 Mi floats at a time: a model of any size initialises in 64 MB.
        let layout = ParameterLayout(c)
        let w = try StreamingModelWriter(dir: out, config: c, dtype: dt, maxShardBytes: maxShardBytes ?? Int.max)
        for r in stride(from: 0, to: layout.count, by: 1 << 24).map({ $0..<min($0 + (1 << 24), layout.count) }) {
            let part = layout.initialize(seed: seed, range: r)
            try w.append(part.pointer, count: part.count)
        }
        try w.finish()
        print("wrote \(out): \(layout.count) parameters, d_model \(c.dModel), \(c.nLayers) layers, vocab \(c.vocab)")
    }
}
