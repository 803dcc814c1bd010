import Foundation

/// Fast-dLLM's approximate key/value caches (NVlabs/Fast-dLLM, llada/generate.py), opt-in for the padded
/// sampler: a block's first step runs the whole sequence and keeps every layer's keys and values; its later
/// steps run only a window of rows and take every other position's keys and values from the cache. They are
/// approximate: the cached rows are not recomputed while the window changes (in a bidirectional model they
/// would change).
public enum CacheMode: String, CaseIterable, Sendable {
    /// Every step runs the whole sequence (d1).
    case none
    /// `generate_with_prefix_cache`: the later steps run the block and everything after it; the positions
    /// before the block are cached.
    case prefix
    /// `generate_with_dual_cache`: the later steps run the block alone; the positions before it (prefix) and
    /// after it (suffix) are cached.
    case dual

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public init(name: String) throws {
        guard let m = CacheMode(rawValue: name.lowercased()) else {
            throw GiftError(.usage, "unknown cache '\(name)'; known: \(Self.names)")
        }
        self = m
    }

    /// The positions a block's later steps run, of a sequence of `seqLen` positions whose block is `block`.
    /// `shift`: the family's prediction shift (Dream: the row before the block predicts its first token, so
    /// the window starts there).
    public func window(block: Range<Int>, seqLen: Int, shift: Int) -> Range<Int> {
        let first = max(block.lowerBound - shift, 0)
        switch self {
        case .none: return 0..<seqLen
        case .prefix: return first..<seqLen
        case .dual: return first..<block.upperBound
        }
    }
}

/// The keys (after RoPE) and values of every position of each sequence, per layer, as the last `.fill`
/// forward left them. A `.read(cache, from: p)` forward runs positions p..<p + S only: it writes their fresh
/// keys and values over the cache's rows there (Fast-dLLM's `replace_position`, in place) and attends to all
/// `seqLen` rows, cached and fresh. Inference only.
public final class KVCache: @unchecked Sendable {
    public private(set) var batch = 0, seqLen = 0
    let kvDim: Int, capacity: Int
    /// Per layer, [batch, seqLen, kvDim] each (within `capacity` rows).
    let k: [FloatBuffer], v: [FloatBuffer]

    /// A cache for up to `capacityTokens` positions (batch × sequence length) of `config`'s model.
    public init(config: ModelConfig, capacityTokens: Int) {
        precondition(capacityTokens >= 1)
        kvDim = config.kvDim; capacity = capacityTokens
        k = (0..<config.nLayers).map { _ in FloatBuffer(count: capacityTokens * config.kvDim) }
        v = (0..<config.nLayers).map { _ in FloatBuffer(count: capacityTokens * config.kvDim) }
    }

    /// The shape the next `.fill` keeps (its contents are then stale until that fill).
    public func setShape(batch: Int, seqLen: Int) {
        precondition(batch >= 1 && seqLen >= 1 && batch * seqLen <= capacity, "KV cache of \(capacity) rows for \(batch) × \(seqLen)")
        self.batch = batch; self.seqLen = seqLen
    }

    /// Bytes held (for memory reports).
    public var bytes: Int { 4 * 2 * k.count * capacity * kvDim }
}

/// How a forward uses a KV cache: `.fill` runs whole sequences and keeps every position's keys and values;
/// `.read(cache, from: p)` runs positions p..<p + seqLen against them (see `KVCache`).
public enum KVCacheUse {
    case fill(KVCache)
    case read(KVCache, from: Int)
}
