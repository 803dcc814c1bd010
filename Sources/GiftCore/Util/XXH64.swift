/// XXH64 (https://github.com/Cyan4973/xxHash, the 64-bit variant), streaming. Fast (several GB/s) and a
/// far better 64-bit checksum than FNV-1a for large files; its value for a file matches `xxhsum -H1`
/// (seed 0), and the low 32 bits of XXH64(content, seed 0) are what a zstd frame's content checksum holds.
/// Not cryptographic.
public struct XXH64: Sendable {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private let seed: UInt64
    private var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
    private var total: UInt64 = 0
    /// Up to 31 bytes not yet consumed as a 32-byte stripe.
    private var mem: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var memSize = 0

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ XXH64.p1 &+ XXH64.p2
        v2 = seed &+ XXH64.p2
        v3 = seed
        v4 = seed &- XXH64.p1
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    /// Consumes whole 32-byte stripes from `p` (count a multiple of 32).
    @inline(__always) private mutating func stripes(_ p: UnsafeRawPointer, _ count: Int) {
        var a = v1, b = v2, c = v3, d = v4
        var i = 0
        while i < count {
            a = XXH64.round(a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            b = XXH64.round(b, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
            c = XXH64.round(c, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
            d = XXH64.round(d, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
            i += 32
        }
        v1 = a; v2 = b; v3 = c; v4 = d
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var p = base
        var n = bytes.count
        total &+= UInt64(n)
        if memSize > 0 {
            let take = min(32 - memSize, n)
            withUnsafeMutableBytes(of: &mem) { m in
                m.baseAddress!.advanced(by: memSize).copyMemory(from: p, byteCount: take)
            }
            memSize += take; p += take; n -= take
            if memSize < 32 { return }
            let stripe = mem
            withUnsafeBytes(of: stripe) { stripes($0.baseAddress!, 32) }
            memSize = 0
        }
        let whole = n & ~31
        if whole > 0 { stripes(p, whole); p += whole; n -= whole }
        if n > 0 {
            withUnsafeMutableBytes(of: &mem) { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            memSize = n
        }
    }

    public mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }

    /// The hash of everything added so far (the state is left unchanged).
    public var digest: UInt64 {
        var h: UInt64
        if total >= 32 {
            h = XXH64.rotl(v1, 1) &+ XXH64.rotl(v2, 7) &+ XXH64.rotl(v3, 12) &+ XXH64.rotl(v4, 18)
            h = XXH64.merge(h, v1); h = XXH64.merge(h, v2); h = XXH64.merge(h, v3); h = XXH64.merge(h, v4)
        } else {
            h = seed &+ XXH64.p5
        }
        h &+= total
        let tail = mem, n = memSize
        withUnsafeBytes(of: tail) { t in
            var i = 0
            while i + 8 <= n {
                let k = XXH64.round(0, UInt64(littleEndian: t.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h = XXH64.rotl(h ^ k, 27) &* XXH64.p1 &+ XXH64.p4
                i += 8
            }
            if i + 4 <= n {
                h ^= UInt64(UInt32(littleEndian: t.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* XXH64.p1
                h = XXH64.rotl(h, 23) &* XXH64.p2 &+ XXH64.p3
                i += 4
            }
            while i < n {
                h ^= UInt64(t[i]) &* XXH64.p5
                h = XXH64.rotl(h, 11) &* XXH64.p1
                i += 1
            }
        }
        h ^= h >> 33; h &*= XXH64.p2
        h ^= h >> 29; h &*= XXH64.p3
        h ^= h >> 32
        return h
    }

    /// One-shot hash of a byte range.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = XXH64(seed: seed); h.add(bytes); return h.digest
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }
}
