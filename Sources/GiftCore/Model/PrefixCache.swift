import Foundation

/// Fast-dLLM's approximate prefix cache (NVlabs/Fast-dLLM, `generate_with_prefix_cache`): the keys and
/// values (after RoPE) of each sequence's first `prefix` positions, per layer, kept from one full forward
/// (`.fill`) and attended to by the forwards that follow over the rest of the sequence only (`.read`), so
/// those forwards skip the prefix's rows. Approximate: the prefix's keys and values are not recomputed
/// while the rest of the sequence changes (in a bidirectional model they would change). Inference only.
public final class PrefixCache: @unchecked Sendable {
    public let batch: Int, prefix: Int, maxLen: Int
    let kvDim: Int
    /// Per layer, [batch, prefix, kvDim] each.
    let k: [FloatBuffer], v: [FloatBuffer]
    /// The keys and values one `.read` forward attends to, cache then fresh rows: [batch, maxLen, kvDim].
    let keys: FloatBuffer, values: FloatBuffer

    public init(config: ModelConfig, batch: Int, prefix: Int, maxLen: Int) {
        precondition(batch >= 1 && prefix >= 0 && prefix <= maxLen)
        self.batch = batch; self.prefix = prefix; self.maxLen = maxLen; kvDim = config.kvDim
        k = (0..<config.nLayers).map { _ in FloatBuffer(count: batch * prefix * config.kvDim) }
        v = (0..<config.nLayers).map { _ in FloatBuffer(count: batch * prefix * config.kvDim) }
        keys = FloatBuffer(count: batch * maxLen * config.kvDim)
        values = FloatBuffer(count: batch * maxLen * config.kvDim)
    }

    /// Bytes held (for memory reports).
    public var bytes: Int { 4 * (2 * k.count * batch * prefix * kvDim + 2 * batch * maxLen * kvDim) }
}

/// How a forward uses a prefix cache: `.fill` runs the whole sequence and keeps its prefix's keys and
/// values; `.read` runs only the rows after the prefix (positions prefix..<prefix + seqLen) against them.
public enum PrefixCacheUse {
    case fill(PrefixCache)
    case read(PrefixCache)
}
