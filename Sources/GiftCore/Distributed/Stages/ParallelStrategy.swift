import Foundation

/// What one ZeRO stage does differently in an optimizer step, and what it holds (its `gift plan` parts).
/// `TrainStep` calls these in one fixed order; each stage is one type:
///
///   stage                     gradients backward writes         reduced              update       after it
///   0 `Replicated`            full buffer                       bucketed allreduce   everything   -
///   1 `ShardedOptimizer`      full buffer                       reduce-scatter       own shard    allgather params
///   2 `ShardedGradientsStage` reserved, bucket by bucket        reduce-scatter/μb    own shard    allgather params
///   3 `FullySharded`          as 2                              as 2                 own shard    drop gathered blocks
///
/// Stage 3 also shards the weights: the model reads them through its `weightSource`, block by block.
/// `ParallelStrategies.stage(_:ranks:)` is the one place that says ZeRO-1 on one rank is ZeRO-0.
public protocol ParallelStrategy: AnyObject {
    /// The stage in effect (after `ParallelStrategies.stage`).
    var stage: Int { get }
    /// The flat offsets of the trained buffer this rank updates (everything under stage 0).
    var shard: Range<Int> { get }
    /// Where backward adds the gradients: the trained buffer's full size (under 2/3 reserved pages).
    var grads: UnsafeMutablePointer<Float> { get }
    /// The summed gradient the update reads, addressed by flat offset over `shard`.
    var gradient: UnsafeMutablePointer<Float> { get }
    /// ZeRO-3's sharded weights, which the model reads block by block; nil: the model reads its buffer.
    var weights: ShardedParameters? { get }
    /// A short phrase for the start log ("bucketed allreduce", ...).
    var description: String { get }

    /// Before the step's first micro-batch: gradients zeroed (or their pages given back).
    func beginStep()
    /// Before a micro-batch's backward: the callback backward calls as the gradients above a flat offset
    /// become final (nil: nothing to start early).
    func beginMicroBatch(last: Bool) -> ((Int) -> Void)?
    /// After a micro-batch's backward.
    func endMicroBatch() throws
    /// After the last micro-batch: the gradient summed over ranks (or this rank's shard of the sum).
    /// Returns the seconds the step waited on communication.
    func reduce() throws -> Double
    /// The global gradient norm (over every rank's shard where the gradient is sharded).
    func globalNorm() throws -> Double
    /// After the optimizer updated `trained` (flat buffer or this rank's shard): every rank's view of the
    /// weights made current. Returns the seconds waited.
    func afterUpdate(trained: FloatBuffer) throws -> Double
    /// Waits for the communication thread, before the main thread makes an MPI call of its own.
    func drain() throws
    /// Bytes this rank handed to the gradient collectives and received in parameter gathers so far.
    var bytesMoved: (gradients: Int, parameters: Int) { get }

    /// The stage's own parts of `gift plan` (parameters, gradients, moments, communication, the last-good
    /// copy, and where they apply the bf16 weight copy and the export), from the same sizes it allocates.
    static func planParts(_ z: Plan.Sizes, _ s: Plan.Settings) -> Plan.StageParts
    /// Bytes one rank sends per optimizer step in the gradient and parameter collectives of each ZeRO stage
    /// (ring algorithms: a reduce-scatter or an allgather of V bytes sends V·(R−1)/R per rank, an allreduce
    /// twice that). The step's few scalar allreduces (loss sums, the gradient norm) are left out.
    ///
    /// N parameters, R ranks, A micro-batches per step, g bytes per gradient float (4, or 2 with
    /// `--grad-reduce-dtype bf16`), O = E + H floats outside the blocks (E the embedding, H ln_f and the head),
    /// P gathers of every block per micro-batch (3 for GIFT: pass 1 forward, pass 2 forward, backward; 2
    /// without pass 1), p bytes per gathered float (4, or 2 under --precision bf16: the matrices of the blocks
    /// and the head travel as bf16; the embedding and the norms (a few floats) in fp32):
    ///   ZeRO 0: allreduce of the summed gradients once per step (fp32: 2·4·N; bf16: a bf16 reduce-scatter
    ///           and an fp32 allgather of the sums)                          (g + 4)·N·(R−1)/R
    ///   ZeRO 1: reduce-scatter once per step + allgather of the parameters  (g + 4)·N·(R−1)/R
    ///   ZeRO 2: reduce-scatter every micro-batch (no full gradient is kept) + allgather of the parameters
    ///                                                                       A·g·N·(R−1)/R + 4·N·(R−1)/R
    ///   ZeRO 3: reduce-scatter every micro-batch, P gathers of the blocks per micro-batch, the outer units
    ///           gathered once per step                                      (A·(g·N + p·P·(N−O)) + 4·E + p·H)·(R−1)/R
    static func bytesPerStep(_ z: Plan.Sizes, _ s: Plan.Settings) -> Int
    /// The stage's line of the table above (for the plan's report).
    static var formula: String { get }
}

public enum ParallelStrategies {
    /// The stage that runs: ZeRO-1 on one rank has nothing to shard and is ZeRO-0; 2 and 3 keep their
    /// machinery on any count (their buffers are laid out the same way).
    public static func stage(_ zero: Int, ranks: Int) -> Int { zero == 1 && ranks == 1 ? 0 : zero }

    public static func type(stage: Int) -> any ParallelStrategy.Type {
        [Replicated.self, ShardedOptimizer.self, ShardedGradientsStage.self, FullySharded.self][stage]
    }

    /// What a stage needs to be built.
    public struct Setup {
        public var comm: Communicator
        /// Floats of the trained buffer (the model, or a LoRA run's adapters).
        public var count: Int
        public var bucketFloats: Int
        /// `--grad-reduce-dtype bf16`.
        public var bf16Reduce: Bool
        // the memberwise init, written out because a public struct's is internal
        public init(comm: Communicator, count: Int, bucketFloats: Int, bf16Reduce: Bool) {
            self.comm = comm; self.count = count; self.bucketFloats = bucketFloats; self.bf16Reduce = bf16Reduce
        }
    }

    /// Stages 0-2 (stage 3 shards the weights too: `FullySharded.init`).
    public static func make(zero: Int, _ s: Setup) throws -> any ParallelStrategy {
        switch stage(zero, ranks: s.comm.size) {
        case 0: return Replicated(s)
        case 1: return ShardedOptimizer(s)
        case 2: return try ShardedGradientsStage(s, thread: CommThread(name: "gift-zero-comm"))
        default: throw GiftError(.config, "ZeRO-3 shards the weights: build it with FullySharded(...)")
        }
    }

    /// ‖g‖ over `shard`, summed over ranks when each holds a part; squared and rooted again in Double
    /// either way, so every stage computes the norm with the same operations.
    static func norm(_ g: UnsafeMutablePointer<Float>, shard: Range<Int>, comm: Communicator?) throws -> Double {
        var sq = [GradClip.norm(g + shard.lowerBound, count: shard.count)]
        sq[0] *= sq[0]
        if let comm { try comm.allreduceSum(&sq) }
        return sq[0].squareRoot()
    }

    /// Seconds `body` takes.
    static func timed(_ body: () throws -> Void) rethrows -> Double {
        let t = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
    }
}

/// Gradient buckets, cut from the top of the flat buffer (backward finishes the head first, the embedding
/// last) on page boundaries (multiples of 1024 floats from the start, so giving a bucket's pages back
/// frees all of them); the top bucket takes the remainder. Every rank cuts the same buckets and hands them
/// to the communication thread in the same order (MPI's collectives need that).
public struct GradientBuckets {
    public let all: [Range<Int>]
    private var next = 0

    public init(count: Int, floats: Int) {
        let b = max(1024, floats / 1024 * 1024)
        var r: [Range<Int>] = [], hi = count
        while hi > 0 { let lo = (hi - 1) / b * b; r.append(lo..<hi); hi = lo }
        all = r
    }

    /// Before a backward: no bucket handed out yet.
    public mutating func restart() { next = 0 }

    /// The buckets not yet handed out that lie wholly at or above `offset` (backward reports every
    /// gradient there final), in order.
    public mutating func ready(from offset: Int) -> ArraySlice<Range<Int>> {
        let first = next
        while next < all.count && all[next].lowerBound >= offset { next += 1 }
        return all[first..<next]
    }
}
