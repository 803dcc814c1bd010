import Foundation

/// Where the model finds a block's weights when they are not simply resident in the flat buffer: called
/// with the block index before the block's forward or backward reads `params + offset`, and after.
/// Block −1 is the embedding, block `nLayers` is ln_f with the output head (the tensors outside the
/// blocks); `begin` says which way the blocks will come next (a source may fetch ahead).
public protocol BlockWeightSource: AnyObject {
    func acquire(block: Int)
    func release(block: Int)
    func begin(_ pass: WeightPass)
    /// Whether acquiring is collective (ZeRO-3's gathers): then every rank must run the same passes, and a
    /// pass with nothing to compute walks the blocks anyway (`Transformer.skipForward`).
    var isCollective: Bool { get }
}

public enum WeightPass: Sendable { case forward, backward }

extension BlockWeightSource {
    public func begin(_ pass: WeightPass) {}
    public var isCollective: Bool { false }
}

/// A frozen base (LoRA's `--base-dtype bf16`) kept as bf16 bits: half the memory of fp32 for the blocks.
/// The model still addresses one flat fp32 buffer (`view`), but that buffer is reserved address space
/// (an anonymous mapping, no memory until written): the embedding, ln_f and the head are decoded into it
/// once and stay; a block's weights are decoded into their place just before the block runs and their
/// pages given back (MADV_DONTNEED) right after, so one block is resident at a time. Decoding is exact:
/// the same bits as an fp32 base holding the bf16 values, so the same losses.
public final class BF16BaseStore: BlockWeightSource, @unchecked Sendable {
    public let layout: ParameterLayout
    /// The fp32 address range the model reads (`layout.count` floats).
    public let view: UnsafeMutablePointer<Float>
    private let viewBytes: Int
    /// bf16 bits of every block's tensors (flat offsets `blocks.lowerBound..<blocks.upperBound`).
    public let bits: UnsafeMutablePointer<UInt16>
    public let blocks: Range<Int>
    private var resident = Set<Int>()
    private let lock = NSLock()

    /// Rounds `params` (fp32, `layout.count` floats) to bf16 (round to nearest even); the caller may
    /// free `params` afterwards.
    public convenience init(config: ModelConfig, from params: UnsafePointer<Float>) throws {
        try self.init(config: config) { r, dst in dst.update(from: params + r.lowerBound, count: r.count) }
    }

    /// A store filled by `read(range, into)`, which writes the fp32 values of the flat parameter range
    /// into `into`: once for each tensor range outside the blocks (straight into the view) and then the
    /// blocks in pieces of at most `chunk` floats (into one reused buffer, then rounded to bf16), so
    /// besides the store nothing but that buffer is held in fp32 (`BF16BaseLoad.swift`: folders, presets).
    /// Rounding is per element, so the bits do not depend on the pieces.
    public init(config: ModelConfig, chunk: Int = loadChunk, read: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        precondition(chunk > 0)
        layout = ParameterLayout(config)
        let n = layout.count
        blocks = layout.blocks.first!.attnNorm..<layout.lnF
        viewBytes = (n * 4 + 4095) / 4096 * 4096
        guard let m = mmap(nil, viewBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              m != MAP_FAILED else {
            throw GiftError(.io, "cannot reserve \(viewBytes) bytes of address space for the bf16 base (errno \(errno))")
        }
        view = m.bindMemory(to: Float.self, capacity: n)
        bits = .allocate(capacity: blocks.count)
        // the tensors outside the blocks stay fp32 (the embedding table is gathered row by row, the head
        // is the largest single GEMM operand)
        for r in [0..<blocks.lowerBound, blocks.upperBound..<n] where !r.isEmpty { try read(r, view + r.lowerBound) }
        let tmp = FloatBuffer(count: min(blocks.count, chunk))
        for start in stride(from: blocks.lowerBound, to: blocks.upperBound, by: chunk) {
            let r = start..<min(start + chunk, blocks.upperBound)
            try read(r, tmp.pointer)
            let src = tmp.pointer, dst = bits + (r.lowerBound - blocks.lowerBound)
            Parallel.chunks(r.count, minChunk: 1 << 16) { s, e in BFloat16.encode(src + s, into: dst + s, count: e - s) }
        }
    }

    /// Floats of the fp32 buffer the blocks are read through at load: 4 Mi (16 MiB), whatever the model.
    public static let loadChunk = 1 << 22

    deinit {
        munmap(UnsafeMutableRawPointer(view), viewBytes)
        bits.deallocate()
    }

    func range(_ l: Int) -> Range<Int> {
        let b = layout.blocks[l]
        let end = l + 1 < layout.blocks.count ? layout.blocks[l + 1].attnNorm : layout.lnF
        return b.attnNorm..<end
    }

    public func acquire(block l: Int) {
        guard l >= 0 && l < layout.blocks.count else { return }   // the embedding, ln_f and head stay fp32
        lock.lock(); defer { lock.unlock() }
        guard resident.insert(l).inserted else { return }
        let r = range(l), dst = view + r.lowerBound, src = bits + (r.lowerBound - blocks.lowerBound)
        Parallel.chunks(r.count, minChunk: 1 << 16) { s, e in BFloat16.decode(src + s, into: dst + s, count: e - s) }
    }

    public func release(block l: Int) {
        guard l >= 0 && l < layout.blocks.count else { return }
        lock.lock(); defer { lock.unlock() }
        guard resident.remove(l) != nil else { return }
        // whole pages inside the block only (the pages at its ends may hold a neighbour's floats)
        let r = range(l)
        let lo = (r.lowerBound * 4 + 4095) / 4096 * 4096, hi = r.upperBound * 4 / 4096 * 4096
        if hi > lo { madvise(UnsafeMutableRawPointer(view) + lo, hi - lo, MADV_DONTNEED) }
    }

    /// Bytes held: the bf16 blocks plus the fp32 tensors outside them (and, while one runs, a block).
    public var bytes: Int { blocks.count * 2 + (layout.count - blocks.count) * 4 }

    /// `bytes` of a store for this model, without making one.
    public static func storedBytes(_ c: ModelConfig) throws -> Int {
        let l = ParameterLayout(c), b = l.lnF - l.blocks[0].attnNorm
        return b * 2 + (l.count - b) * 4
    }

    /// The whole base in fp32 (evaluation, merging): every block decoded into a new buffer.
    public func materialize() -> FloatBuffer {
        let out = FloatBuffer(count: layout.count)
        for r in [0..<blocks.lowerBound, blocks.upperBound..<layout.count] {
            (out.pointer + r.lowerBound).update(from: view + r.lowerBound, count: r.count)
        }
        BFloat16.decode(bits, into: out.pointer + blocks.lowerBound, count: blocks.count)
        return out
    }

    /// XXH64 of the fp32 image in layout order, streamed block by block: equal to
    /// `LoRAIdentity.fingerprint` of `materialize()`.
    public func fingerprint() -> UInt64 {
        var h = XXH64()
        h.add(UnsafeRawBufferPointer(start: view, count: blocks.lowerBound * 4))
        var tmp = [Float](repeating: 0, count: 1 << 16)
        var off = 0
        while off < blocks.count {
            let n = min(tmp.count, blocks.count - off)
            tmp.withUnsafeMutableBufferPointer { t in
                BFloat16.decode(bits + off, into: t.baseAddress!, count: n)
                h.add(UnsafeRawBufferPointer(start: t.baseAddress!, count: n * 4))
            }
            off += n
        }
        h.add(UnsafeRawBufferPointer(start: view + blocks.upperBound, count: (layout.count - blocks.upperBound) * 4))
        return h.digest
    }

    /// Rank 0's base to every rank (bits and the fp32 tensors outside the blocks).
    public func broadcast(_ comm: Communicator) throws {
        try comm.broadcast(UnsafeMutableRawPointer(bits), bytes: blocks.count * 2, root: 0)
        try comm.broadcast(UnsafeMutableRawPointer(view), bytes: blocks.lowerBound * 4, root: 0)
        try comm.broadcast(UnsafeMutableRawPointer(view + blocks.upperBound), bytes: (layout.count - blocks.upperBound) * 4, root: 0)
    }

    /// Pages of `view` resident now (mincore), for tests and memory reports.
    public var residentViewBytes: Int {
        let pages = viewBytes / 4096
        var vec = [UInt8](repeating: 0, count: pages)
        guard mincore(UnsafeMutableRawPointer(view), viewBytes, &vec) == 0 else { return -1 }
        return vec.reduce(0) { $0 + Int($1 & 1) } * 4096
    }
}
