import Foundation

/// Sampling lanes: a batch of prompts split into groups sampled at once, each group on one core with
/// single-threaded kernels. One multi-threaded forward per step synchronises its threads at every GEMM and
/// leaves a core idle in the step's serial parts (the choice of tokens, the copies); lanes have neither,
/// and a prompt's output does not depend on its group (its draws are keyed by the prompt, and every group
/// pads as the whole batch). On a 2-core Zen 2, LLaDA's exact sampler at batch 8 took 0.90 of the time of the
/// batch on both cores (`cluster/experiments/eval-speed.sh`, the `--lanes 1` lane).
public enum SamplingLanes {
    /// Lanes for batches of up to `batch` prompts: `requested`, or with 0 one per worker (`Parallel.workers`,
    /// the kernels' threads); 1 where lanes cannot share the work: weights not resident as fp32 (a bf16
    /// store's decode buffer, ZeRO-3's collective gathers), bf16 matmuls (one weight mirror per batch) and
    /// the profiler (one set of totals).
    public static func count(requested: Int, batch: Int, residentWeights: Bool) -> Int {
        if !residentWeights || Gemm.precision != .fp32 || Profiler.enabled { return 1 }
        return max(1, min(batch, requested > 0 ? requested : Parallel.workers))
    }

    /// The sampler `make` builds for `options`, or, with more than one lane, `LaneSampler` over one such
    /// sampler per lane, each made for its share of `options.maxBatch`.
    public static func sampler(options: SamplerOptions, weights: EvalWeights,
                               make: (SamplerOptions) throws -> BatchSampler) throws -> BatchSampler {
        var resident = false
        if case .fp32 = weights { resident = true }
        let n = count(requested: options.lanes, batch: options.maxBatch, residentWeights: resident)
        if n == 1 { return try make(options) }
        var share = options
        share.maxBatch = (options.maxBatch + n - 1) / n
        return LaneSampler(lanes: try (0..<n).map { _ in try make(share) }, maxBatch: options.maxBatch)
    }

    /// `count` split into `groups` contiguous ranges, sizes differing by at most one.
    static func split(_ count: Int, groups: Int) -> [Range<Int>] {
        (0..<groups).map { g in (count * g / groups)..<(count * (g + 1) / groups) }
    }

    /// One batch of `count` prompts over up to `lanes` lanes: `body(lane, range)` samples the prompts in
    /// `range` (their outputs in order), the lanes at once (one lane: inline, on all cores); the outputs
    /// come back in prompt order.
    static func run(_ count: Int, lanes: Int, _ body: (_ lane: Int, _ range: Range<Int>) throws -> [[Int32]]) throws -> [[Int32]] {
        let shares = split(count, groups: max(1, min(lanes, count)))
        let out = UnsafeMutableBufferPointer<Result<[[Int32]], Error>>.allocate(capacity: shares.count)
        out.initialize(repeating: .success([]))
        defer { out.deinitialize(); out.deallocate() }
        Parallel.tasks(shares.count) { g, _ in out[g] = Result { try body(g, shares[g]) } }
        return try out.flatMap { try $0.get() }
    }
}

/// One batch over lanes: prompt i goes to the lane of its contiguous share, and the outputs come back in
/// input order.
public final class LaneSampler: BatchSampler, @unchecked Sendable {
    let lanes: [BatchSampler]
    public let maxBatch: Int
    /// Forward passes of every lane (each over its share of a batch).
    public var forwardPasses: Int { lanes.reduce(0) { $0 + $1.forwardPasses } }

    init(lanes: [BatchSampler], maxBatch: Int) {
        self.lanes = lanes; self.maxBatch = maxBatch
    }

    public func generate(_ prompts: [[Int32]], keys: [Int]?, seeds: [UInt64]?, paddedTo: Int) throws -> [[Int32]] {
        guard prompts.count <= maxBatch else {
            throw GiftError(.usage, "\(prompts.count) prompts in one batch; the sampler was made for \(maxBatch)")
        }
        let keys = keys ?? Array(prompts.indices)
        // every lane pads as the whole batch would: a prompt's output is then the same in any lane
        let length = max(paddedTo, prompts.map(\.count).max() ?? 0)
        return try SamplingLanes.run(prompts.count, lanes: lanes.count) { g, r in
            try lanes[g].generate(Array(prompts[r]), keys: Array(keys[r]), seeds: seeds.map { Array($0[r]) }, paddedTo: length)
        }
    }
}
