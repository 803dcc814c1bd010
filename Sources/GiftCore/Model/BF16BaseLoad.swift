import Foundation

// Filling a bf16 base store without the fp32 model: a folder read a range at a time, or a preset
// initialised a range at a time, each piece rounded as it arrives. The values are those of loading (or
// initialising) the whole model in fp32 and rounding it (`init(config:from:)`), bit for bit: the ranged
// reader and the ranged initialisation give the whole-model loader's floats, and rounding is per element.

extension BF16BaseStore {
    /// A model folder read straight into a store (headers validated once, as `ModelFolder.load` does).
    public static func load(_ dir: String) throws -> (ModelConfig, BF16BaseStore) {
        let reader = try ModelFolder.RangeReader(dir)
        return (reader.config, try BF16BaseStore(config: reader.config) { r, dst in try reader.read(r, into: dst) })
    }

    /// A fresh model (`ParameterLayout.initialize(seed:)`'s values) made straight into a store.
    public static func initialize(config: ModelConfig, seed: UInt64) throws -> BF16BaseStore {
        let layout = ParameterLayout(config)
        return try BF16BaseStore(config: config) { r, dst in layout.initialize(seed: seed, range: r, into: dst) }
    }

    /// `gift train --model`'s base: a built-in preset initialised from `seed`, or a model folder.
    public static func open(model: String, seed: UInt64) throws -> (ModelConfig, BF16BaseStore) {
        guard ModelConfig.isPreset(model) else { return try load(model) }
        let c = try ModelConfig.preset(model)
        return (c, try initialize(config: c, seed: seed))
    }

    /// Bytes held beside the store while it is filled, at most: the piece buffer (`loadChunk` floats,
    /// fewer for a smaller model) and a folder reader's conversion scratch (touched for 16-bit shards).
    public static func loadBufferBytes(_ c: ModelConfig) -> Int {
        let l = ParameterLayout(c)
        return 4 * min(l.lnF - l.blocks[0].attnNorm, loadChunk) + SafetensorsHeader.scratchBytes
    }
}
