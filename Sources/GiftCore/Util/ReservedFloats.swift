import Foundation

/// A flat fp32 address range that costs memory only where it has been written: an anonymous mapping
/// reserved without backing (MAP_NORESERVE). ZeRO-2/3 address the whole model's gradients and gathered
/// weights at their flat offsets (the model code is unchanged) while only a shard, a block and the
/// buckets in flight are resident. `discard` gives pages back; a discarded range reads as zeros again,
/// so discarding a gradient bucket is also zeroing it for the next micro-batch.
public final class ReservedFloats: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    private let bytes: Int

    public init(count: Int, what: String) throws {
        self.count = count
        bytes = max(4096, (count * 4 + 4095) / 4096 * 4096)
        guard let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              m != MAP_FAILED else {
            throw GiftError(.io, "cannot reserve \(bytes) bytes of address space for \(what) (errno \(errno))")
        }
        pointer = m.bindMemory(to: Float.self, capacity: max(1, count))
        // 2 MiB pages where the kernel allows (THP "madvise"): backward writes whole blocks of gradients
        // and gathers whole blocks of weights into pages given back every step; with 4 KiB pages each
        // page costs a zero-page read fault, a copy-on-write fault and a TLB shootdown every step
        if count * 4 >= 1 << 21 { madvise(m, bytes, 14 /* MADV_HUGEPAGE */) }
    }

    deinit { munmap(UnsafeMutableRawPointer(pointer), bytes) }

    /// Floats `r` read as zero afterwards: the whole pages inside `r` are returned to the system, the
    /// floats of `r` on the pages at its ends (shared with neighbours, which may be in use) are zeroed.
    public func discard(_ r: Range<Int>) {
        guard !r.isEmpty else { return }
        let lo = (r.lowerBound * 4 + 4095) / 4096 * 4096, hi = r.upperBound * 4 / 4096 * 4096
        if hi > lo {
            madvise(UnsafeMutableRawPointer(pointer) + lo, hi - lo, MADV_DONTNEED)
            (pointer + r.lowerBound).update(repeating: 0, count: lo / 4 - r.lowerBound)
            (pointer + hi / 4).update(repeating: 0, count: r.upperBound - hi / 4)
        } else {
            (pointer + r.lowerBound).update(repeating: 0, count: r.count)
        }
    }

    public func discardAll() { discard(0..<count) }

    /// Bytes resident now (mincore), for tests and memory reports.
    public var residentBytes: Int {
        let pages = bytes / 4096
        var vec = [UInt8](repeating: 0, count: pages)
        guard mincore(UnsafeMutableRawPointer(pointer), bytes, &vec) == 0 else { return -1 }
        return vec.reduce(0) { $0 + Int($1 & 1) } * 4096
    }
}
