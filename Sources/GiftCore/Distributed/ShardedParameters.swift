import Foundation

/// ZeRO-3 (FSDP-style) parameters: each rank keeps only its shard of the flat fp32 weights (`master`,
/// what AdamW updates and checkpoints save); the model reads a reserved full-size address range (`view`)
/// into which each block is all-gathered just before it runs and whose pages are given back right after.
/// While block l runs, the next block in the pass's direction is gathered on the communication thread.
/// The tensors outside the blocks (embedding, ln_f, head) are gathered at their first use in a step and
/// kept until `dropAll` (after the optimizer step), as FSDP keeps its root unit.
///
/// Units: 0 the embedding, 1...n the blocks, n+1 ln_f with the head. The gathers are collective: every
/// rank must acquire the same blocks in the same order, which the same program on every rank does.
public final class ShardedParameters: BlockWeightSource, @unchecked Sendable {
    let comm: Communicator
    let thread: CommThread
    public let layout: ParameterLayout
    public let shards: [Range<Int>]
    public let shard: Range<Int>
    /// This rank's fp32 weights, `shard.count` floats.
    public let master: FloatBuffer
    public let view: ReservedFloats
    public let units: [Range<Int>]
    private enum State { case absent, pending(Int), resident }
    private var state: [State]
    private var pass = WeightPass.forward
    /// `--precision bf16`: the matrices of the blocks and the head travel as bf16 (half the bytes; their
    /// GEMMs round them to bf16 anyway, so the products are the same bits); the embedding (a lookup) and
    /// the norm weights (applied in fp32) travel in fp32.
    public let bf16Matrices: Bool
    /// The norm tensors inside each unit (sent in fp32 when the rest goes in bf16).
    private let normsOf: [[Range<Int>]]
    /// Parameter bytes this rank received in gathers.
    public private(set) var bytesGathered = 0

    /// `master`: this rank's shard (`shardRanges(count: layout.count, parts: comm.size)[comm.rank]`).
    public init(config: ModelConfig, comm: Communicator, thread: CommThread, master: FloatBuffer, bf16Matrices: Bool = false) throws {
        self.comm = comm; self.thread = thread; self.bf16Matrices = bf16Matrices
        layout = ParameterLayout(config)
        shards = shardRanges(count: layout.count, parts: comm.size)
        shard = shards[comm.rank]
        guard master.count == shard.count else {
            throw GiftError(.mismatch, "ZeRO-3: rank \(comm.rank) was given \(master.count) parameters; its shard holds \(shard.count)")
        }
        self.master = master
        view = try ReservedFloats(count: layout.count, what: "the ZeRO-3 gathered weights")
        let b = layout.blocks, lnF = layout.lnF, n = layout.count
        units = [0..<b[0].attnNorm] + (0..<b.count).map { l in b[l].attnNorm..<(l + 1 < b.count ? b[l + 1].attnNorm : lnF) }
            + [lnF..<n]
        state = Array(repeating: .absent, count: units.count)
        let norms = layout.tensors.filter { $0.isNorm || $0.isBias }.map { $0.offset..<($0.offset + $0.count) }
        normsOf = units.map { u in norms.filter { u.contains($0.lowerBound) } }
    }

    public func begin(_ p: WeightPass) { pass = p }
    public var isCollective: Bool { true }

    /// Queues unit u's gather unless it is resident or on its way.
    private func request(_ u: Int) {
        guard case .absent = state[u] else { return }
        let r = units[u]
        state[u] = .pending(thread.submit { [unowned self] in try self.gather(r) })
    }

    /// On the communication thread: this rank's part from `master`, the others' from their ranks.
    private func gather(_ r: Range<Int>) throws {
        let parts = piecesOf(r, shards: shards), mine = parts[comm.rank]
        (view.pointer + r.lowerBound + mine.lowerBound)
            .update(from: master.pointer + (r.lowerBound + mine.lowerBound - shard.lowerBound), count: mine.count)
        guard bf16Matrices && r.lowerBound > 0 else {
            try comm.allgather(view.pointer + r.lowerBound, shards: parts)
            bytesGathered += (r.count - mine.count) * 4
            return
        }
        try comm.allgatherBF16(view.pointer + r.lowerBound, shards: parts)
        bytesGathered += (r.count - mine.count) * 2
        // the norm weights again in fp32, over their bf16-rounded copies
        for n in normsOf[units.firstIndex(of: r)!] {
            let np = piecesOf(n, shards: shards), nm = np[comm.rank]
            (view.pointer + n.lowerBound + nm.lowerBound)
                .update(from: master.pointer + (n.lowerBound + nm.lowerBound - shard.lowerBound), count: nm.count)
            try comm.allgather(view.pointer + n.lowerBound, shards: np)
            bytesGathered += (n.count - nm.count) * 4
        }
    }

    public func acquire(block l: Int) {
        let u = l + 1, n = layout.blocks.count
        request(u)
        if case .pending(let t) = state[u] {
            do { try thread.wait(t) } catch { comm.abort("ZeRO-3 gather of \(l < 0 ? "the embedding" : l < n ? "block \(l)" : "ln_f and the head") failed: \(error)") }
            state[u] = .resident
        }
        // prefetch the next block of this pass while this one runs
        if l >= 0 && l < n {
            let next = pass == .forward ? l + 1 : l - 1
            if next >= 0 && next < n { request(next + 1) }
        }
    }

    public func release(block l: Int) {
        let u = l + 1
        guard l >= 0 && l < layout.blocks.count, case .resident = state[u] else { return }
        view.discard(units[u])
        state[u] = .absent
    }

    /// After the weights changed (an optimizer step, a resume): nothing gathered stays. Waits for the
    /// communication thread first (the main thread may make MPI calls afterwards).
    public func dropAll() throws {
        try thread.drain()
        view.discardAll()
        for u in state.indices { state[u] = .absent }
    }

    /// Every unit gathered into one new full buffer on every rank (evaluation, export); collective.
    public func materialize() throws -> FloatBuffer {
        try thread.drain()
        let out = FloatBuffer(count: layout.count)
        (out.pointer + shard.lowerBound).update(from: master.pointer, count: shard.count)
        try comm.allgather(out.pointer, shards: shards)
        return out
    }
}
