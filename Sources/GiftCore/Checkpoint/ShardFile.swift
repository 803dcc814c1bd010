import CZstd
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if _endian(big)
#error("ShardFile stores floats little-endian and assumes a little-endian host")
#endif

// One compressed checkpoint shard file ("gift shard", format version 1). All integers little-endian.
//
//   offset  size  field
//   0       8     magic "GIFTSHD1"
//   8       4     format version, UInt32 (= ShardFile.formatVersion; a reader refuses any other)
//   12      4     H: header length in bytes, UInt32 (12 ≤ H ≤ ShardFile.maxHeaderBytes)
//   16      H     header:
//                   UInt32  S, number of sections
//                   S × entry:
//                     UInt16  name length L (1...1024), then L bytes of UTF-8 name (unique in the file)
//                     UInt8   kind: 0 = floats (Float32, little-endian), 1 = bytes
//                     UInt8   flags: bit 0 = byte-plane shuffled (floats only); other bits must be 0
//                     UInt64  count: elements (floats or bytes)
//                     UInt64  raw length in bytes (4 × count for floats, count for bytes)
//                     UInt64  compressed length C in bytes (the section's zstd frame)
//                     UInt64  XXH64 (seed 0) of the section's C compressed bytes
//                   UInt64  XXH64 (seed 0) of file bytes [0, 16 + H − 8): magic, version, H and the header
//   16+H    ΣC    the sections' zstd frames, back to back in header order; the file ends right after the last.
//
// Each section is exactly one zstd frame with the content size recorded and the content checksum on.
// A shuffled float section of n floats is compressed as its byte planes: byte 0 (least significant) of every
// float, then byte 1 of every float, then bytes 2, then bytes 3. The sign/exponent-carrying high planes of
// trained weights and moments compress well; the mantissa planes barely do, but no longer spoil the rest.
//
// Integrity: any single changed byte is detected without outside help: the prefix and header by the header
// hash (and magic/version checks), a section's bytes by its XXH64 in the header, and below that by zstd's own
// content checksum. `write` also returns the XXH64 of the whole file as written (what `xxhsum -H1` prints),
// which a manifest can record and `read(expectedChecksum:)` compares.

/// One section of a shard as listed by its header.
public struct ShardSection: Equatable, Sendable {
    public enum Kind: UInt8, Sendable { case floats = 0, bytes = 1 }
    public let name: String
    public let kind: Kind
    /// Elements: floats for `.floats`, bytes for `.bytes`.
    public let count: Int
    /// Whether the floats were byte-plane shuffled before compression.
    public let shuffled: Bool
    /// Uncompressed size in bytes.
    public let rawBytes: Int
    /// Size of the section's zstd frame in the file.
    public let compressedBytes: Int

    /// raw / compressed (1 for an empty section).
    public var compressionRatio: Double {
        rawBytes == 0 || compressedBytes == 0 ? 1 : Double(rawBytes) / Double(compressedBytes)
    }
}

/// What `ShardFile.write` did.
public struct ShardWriteResult: Equatable, Sendable {
    /// Size of the file written.
    public let fileBytes: Int
    /// Sum of the sections' uncompressed sizes.
    public let rawBytes: Int
    /// XXH64 (seed 0) of the whole file as written: pass it to `ShardFile.read(expectedChecksum:)`.
    public let checksum: UInt64
    /// Per-section sizes, in file order (float sections first, then byte sections, each in the order given).
    public let sections: [ShardSection]
    /// rawBytes / fileBytes.
    public var compressionRatio: Double { fileBytes == 0 ? 1 : Double(rawBytes) / Double(fileBytes) }
}

/// A shard read and fully verified by `ShardFile.read`: every section decompressed, every check passed.
public struct ShardContents: Sendable {
    enum Payload: Sendable { case floats([Float]), bytes(Data) }

    public let path: String
    /// Sections in file order.
    public let sections: [ShardSection]
    /// Size of the file.
    public let fileBytes: Int
    /// XXH64 (seed 0) of the whole file.
    public let checksum: UInt64
    let payloads: [String: Payload]

    public func section(_ name: String) -> ShardSection? { sections.first { $0.name == name } }

    private func payload(_ name: String) throws -> Payload {
        guard let p = payloads[name] else {
            let have = sections.map { "'\($0.name)'" }.joined(separator: ", ")
            throw GiftError(.mismatch, "\(path): shard has no section '\(name)' (it has \(have.isEmpty ? "none" : have))")
        }
        return p
    }

    /// The floats of section `name` (an error if it is missing or a byte section).
    public func floats(_ name: String) throws -> [Float] {
        switch try payload(name) {
        case .floats(let f): return f
        case .bytes: throw GiftError(.mismatch, "\(path): section '\(name)' holds bytes, not floats")
        }
    }

    /// Copies the floats of section `name` to `into`, which must hold exactly `count` floats.
    public func copyFloats(_ name: String, into: UnsafeMutablePointer<Float>, count: Int) throws {
        let f = try floats(name)
        guard f.count == count else {
            throw GiftError(.mismatch, "\(path): section '\(name)' holds \(f.count) floats, expected \(count)")
        }
        f.withUnsafeBufferPointer { if count > 0 { into.update(from: $0.baseAddress!, count: count) } }
    }

    /// Floats `range` of section `name`, which must hold `expected` floats, into `into`.
    public func copyFloats(_ name: String, into: UnsafeMutablePointer<Float>, range: Range<Int>, of expected: Int) throws {
        let f = try floats(name)
        guard f.count == expected else {
            throw GiftError(.mismatch, "\(path): section '\(name)' holds \(f.count) floats, expected \(expected)")
        }
        f.withUnsafeBufferPointer { if !range.isEmpty { into.update(from: $0.baseAddress! + range.lowerBound, count: range.count) } }
    }

    /// The bytes of section `name` (an error if it is missing or a float section).
    public func bytes(_ name: String) throws -> Data {
        switch try payload(name) {
        case .bytes(let d): return d
        case .floats: throw GiftError(.mismatch, "\(path): section '\(name)' holds floats, not bytes")
        }
    }
}

/// Writes and reads compressed checkpoint shards (format at the top of this file).
public enum ShardFile {
    public static let magic: [UInt8] = Array("GIFTSHD1".utf8)
    public static let formatVersion: UInt32 = 1
    /// Bytes before the header: magic, version, header length.
    static let prefixBytes = 16
    /// Headers larger than this are refused before anything is allocated for them.
    public static let maxHeaderBytes = 16 << 20
    public static let maxNameBytes = 1024
    public static let maxSections = 100_000
    /// No section may claim more raw bytes than this (1 TiB), whatever else the file says.
    public static let maxSectionBytes = 1 << 40
    /// zstd cannot compress better than this: every block of ≤ 128 KiB costs at least 4 bytes (an RLE block).
    static let maxZstdRatio = 32768
    /// Bytes of one header entry besides its name.
    static let entryFixedBytes = 2 + 1 + 1 + 8 * 4
    /// Plane chunk fed to zstd when shuffling on the fly.
    static let shuffleChunk = 1 << 20

    public struct Options: Sendable {
        /// zstd compression level (ZSTD_c_compressionLevel); 1...19 are sensible, 3 is zstd's default.
        public var level: Int = 3
        /// zstd worker threads (ZSTD_c_nbWorkers); 0 = compress on the calling thread.
        public var workers: Int = 0
        /// Byte-plane shuffle float sections before compressing them.
        public var shuffle = true
        public init(level: Int = 3, workers: Int = 0, shuffle: Bool = true) {
            self.level = level; self.workers = workers; self.shuffle = shuffle
        }
    }

    /// One header entry: a section plus where its frame is and its frame hash.
    struct Entry: Equatable {
        var name: String
        var kind: UInt8
        var flags: UInt8
        var count: UInt64
        var rawBytes: UInt64
        var compressedBytes: UInt64
        var frameHash: UInt64
    }

    // MARK: writing

    /// Writes `floats` then `bytes` as sections of a new shard at `path` (created, or truncated if present;
    /// temporary names, renames and syncing the folder are the caller's business) and fsyncs it. Float
    /// sections are streamed through fixed-size buffers (≈ 1 MiB plus zstd's own state): memory does not
    /// grow with the section size. Byte sections are compressed from `data` directly. On failure the partial
    /// file is removed. Errors: `.usage` for bad names/counts/options, `.io` for the file system.
    /// Returns the file size, the sum of the raw section sizes, and the XXH64 of the whole file as written
    /// (for `read(expectedChecksum:)`). `writeDetailed` does the same and also returns per-section sizes.
    @discardableResult
    public static func write(path: String,
                             floats: [(name: String, pointer: UnsafePointer<Float>, count: Int)],
                             bytes: [(name: String, data: Data)] = [],
                             options: Options = Options()) throws -> (fileBytes: Int, rawBytes: Int, checksum: UInt64) {
        let r = try writeDetailed(path: path, floats: floats, bytes: bytes, options: options)
        return (r.fileBytes, r.rawBytes, r.checksum)
    }

    /// `write`, returning per-section raw and compressed sizes too (for "params 1.17x, m 1.40x, v 2.10x"
    /// logs: `ShardFile.ratioSummary(result.sections)`).
    @discardableResult
    public static func writeDetailed(path: String,
                                     floats: [(name: String, pointer: UnsafePointer<Float>, count: Int)],
                                     bytes: [(name: String, data: Data)] = [],
                                     options: Options = Options()) throws -> ShardWriteResult {
        func usage(_ why: String) -> GiftError { GiftError(.usage, "\(path): cannot write shard: \(why)") }
        // Validate everything before touching the file.
        var names = Set<String>()
        func checkName(_ name: String) throws {
            let n = name.utf8.count
            guard n >= 1, n <= maxNameBytes else {
                throw usage("section name '\(name.prefix(64))' must be 1...\(maxNameBytes) UTF-8 bytes (is \(n))")
            }
            guard names.insert(name).inserted else { throw usage("two sections are named '\(name)'") }
        }
        for f in floats {
            try checkName(f.name)
            guard f.count >= 0, f.count <= maxSectionBytes / 4 else {
                throw usage("section '\(f.name)': float count \(f.count) out of range 0...\(maxSectionBytes / 4)")
            }
        }
        for b in bytes { try checkName(b.name) }
        guard floats.count + bytes.count <= maxSections else {
            throw usage("\(floats.count + bytes.count) sections; at most \(maxSections)")
        }
        let minLevel = Int(ZSTD_minCLevel()), maxLevel = Int(ZSTD_maxCLevel())
        guard options.level >= minLevel, options.level <= maxLevel else {
            throw usage("compression level \(options.level) outside zstd's \(minLevel)...\(maxLevel)")
        }
        guard options.workers >= 0, options.workers <= 256 else {
            throw usage("\(options.workers) compression workers; expected 0...256")
        }
        let headerBytes = 4 + names.reduce(0) { $0 + entryFixedBytes + $1.utf8.count } + 8
        guard headerBytes <= maxHeaderBytes else { throw usage("header would be \(headerBytes) bytes") }

        guard let cctx = ZSTD_createCCtx() else { throw GiftError(.io, "\(path): cannot create a zstd context") }
        defer { ZSTD_freeCCtx(cctx) }
        func setParam(_ p: ZSTD_cParameter, _ v: Int, _ what: String) throws {
            let r = ZSTD_CCtx_setParameter(cctx, p, Int32(v))
            if ZSTD_isError(r) != 0 {
                throw usage("zstd refuses \(what) = \(v) (\(String(cString: ZSTD_getErrorName(r))))")
            }
        }
        try setParam(ZSTD_c_compressionLevel, options.level, "compression level")
        try setParam(ZSTD_c_checksumFlag, 1, "content checksum flag")
        try setParam(ZSTD_c_contentSizeFlag, 1, "content size flag")
        try setParam(ZSTD_c_nbWorkers, options.workers, "worker count (is this zstd built with threads?)")

        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot create (\(errnoText()))") }
        var ok = false
        defer {
            if !ok { close(fd); unlink(path) }
        }
        let writer = FrameWriter(fd: fd, path: path, offset: prefixBytes + headerBytes)
        var entries: [Entry] = []
        var sections: [ShardSection] = []
        for f in floats {
            let shuffle = options.shuffle && f.count > 0
            let raw = UnsafeRawBufferPointer(start: f.count > 0 ? UnsafeRawPointer(f.pointer) : nil, count: 4 * f.count)
            let (c, h) = try writer.frame(cctx, raw, shuffledFloats: shuffle ? f.pointer : nil, name: f.name)
            entries.append(Entry(name: f.name, kind: ShardSection.Kind.floats.rawValue, flags: shuffle ? 1 : 0,
                                 count: UInt64(f.count), rawBytes: UInt64(4 * f.count), compressedBytes: UInt64(c),
                                 frameHash: h))
            sections.append(ShardSection(name: f.name, kind: .floats, count: f.count, shuffled: shuffle,
                                         rawBytes: 4 * f.count, compressedBytes: c))
        }
        for b in bytes {
            let (c, h) = try b.data.withUnsafeBytes { try writer.frame(cctx, $0, shuffledFloats: nil, name: b.name) }
            entries.append(Entry(name: b.name, kind: ShardSection.Kind.bytes.rawValue, flags: 0,
                                 count: UInt64(b.data.count), rawBytes: UInt64(b.data.count),
                                 compressedBytes: UInt64(c), frameHash: h))
            sections.append(ShardSection(name: b.name, kind: .bytes, count: b.data.count, shuffled: false,
                                         rawBytes: b.data.count, compressedBytes: c))
        }
        let head = encodePrefixAndHeader(entries)
        precondition(head.count == prefixBytes + headerBytes)
        try head.withUnsafeBytes { try pwriteAll(fd, $0, offset: 0, path: path) }
        guard fsync(fd) == 0 else { throw GiftError(.io, "\(path): fsync failed (\(errnoText()))") }
        let fileBytes = writer.offset
        // The whole-file hash needs the header first, which is known last: hash the file back (page cache).
        let checksum = try hashFile(fd: fd, size: fileBytes, path: path)
        guard close(fd) == 0 else { ok = true; unlink(path); throw GiftError(.io, "\(path): close failed (\(errnoText()))") }
        ok = true
        return ShardWriteResult(fileBytes: fileBytes, rawBytes: sections.reduce(0) { $0 + $1.rawBytes },
                                checksum: checksum, sections: sections)
    }

    /// Writes zstd frames sequentially from a start offset, hashing each.
    final class FrameWriter {
        let fd: Int32
        let path: String
        var offset: Int
        let outCapacity = max(ZSTD_CStreamOutSize(), 1 << 20)
        let out: UnsafeMutableRawPointer
        let plane: UnsafeMutablePointer<UInt8>

        init(fd: Int32, path: String, offset: Int) {
            self.fd = fd; self.path = path; self.offset = offset
            out = UnsafeMutableRawPointer.allocate(byteCount: outCapacity, alignment: 64)
            plane = UnsafeMutablePointer<UInt8>.allocate(capacity: ShardFile.shuffleChunk)
        }

        deinit { out.deallocate(); plane.deallocate() }

        /// Compresses `raw` (or, when `shuffledFloats` is given, the byte planes of those raw.count / 4 floats)
        /// as one frame appended to the file. Returns the frame's length and XXH64.
        func frame(_ cctx: OpaquePointer, _ raw: UnsafeRawBufferPointer, shuffledFloats: UnsafePointer<Float>?,
                   name: String) throws -> (Int, UInt64) {
            func zfail(_ r: Int) -> GiftError {
                GiftError(.io, "\(path): section '\(name)': zstd compression failed (\(String(cString: ZSTD_getErrorName(r))))")
            }
            var r = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)
            if ZSTD_isError(r) != 0 { throw zfail(r) }
            r = ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(raw.count))
            if ZSTD_isError(r) != 0 { throw zfail(r) }
            let start = offset
            var hash = XXH64()
            // Feeds `input`; with `end`, finishes the frame.
            func feed(_ input: UnsafeRawBufferPointer, end: Bool) throws {
                var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
                while true {
                    var outb = ZSTD_outBuffer(dst: out, size: outCapacity, pos: 0)
                    let left = ZSTD_compressStream2(cctx, &outb, &inb, end ? ZSTD_e_end : ZSTD_e_continue)
                    if ZSTD_isError(left) != 0 { throw zfail(left) }
                    if outb.pos > 0 {
                        let chunk = UnsafeRawBufferPointer(start: out, count: outb.pos)
                        hash.add(chunk)
                        try pwriteAll(fd, chunk, offset: offset, path: path)
                        offset += outb.pos
                    }
                    if end ? left == 0 : inb.pos == inb.size { return }
                }
            }
            if let floats = shuffledFloats {
                let n = raw.count / 4
                for p in 0..<4 {
                    let shift = UInt32(8 * p)
                    var i = 0
                    while i < n {
                        let m = min(ShardFile.shuffleChunk, n - i)
                        let src = floats + i, dst = plane
                        for j in 0..<m { dst[j] = UInt8(truncatingIfNeeded: src[j].bitPattern >> shift) }
                        i += m
                        try feed(UnsafeRawBufferPointer(start: plane, count: m), end: p == 3 && i == n)
                    }
                }
            } else {
                try feed(raw, end: true)
            }
            return (offset - start, hash.digest)
        }
    }

    /// The 16-byte prefix and the header (with its trailing hash) for `entries`.
    static func encodePrefixAndHeader(_ entries: [Entry], version: UInt32 = formatVersion) -> [UInt8] {
        var h: [UInt8] = []
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { h += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { h += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { h += $0 } }
        h += magic
        u32(version)
        u32(0)  // header length, patched below
        u32(UInt32(entries.count))
        for e in entries {
            let name = Array(e.name.utf8)
            u16(UInt16(truncatingIfNeeded: name.count)); h += name
            h.append(e.kind); h.append(e.flags)
            u64(e.count); u64(e.rawBytes); u64(e.compressedBytes); u64(e.frameHash)
        }
        let headerLength = UInt32(h.count - prefixBytes + 8)
        withUnsafeBytes(of: headerLength.littleEndian) { for k in 0..<4 { h[12 + k] = $0[k] } }
        u64(XXH64.hash(h))
        return h
    }

    // MARK: reading

    /// Reads the shard at `path`, checks everything (module comment above) and decompresses every section.
    /// With `expectedSize`/`expectedChecksum` (from a manifest) the file must also have exactly that size and
    /// whole-file XXH64. Never trusts a length from the file before checking it against the file size; never
    /// allocates more than the file size plus the raw sizes its (hash-verified, bounded) header declares.
    /// Errors: `.io` when the file cannot be read, `.format` for anything malformed or corrupted, `.mismatch`
    /// when the size or checksum differs from the expected one; each message names the file.
    public static func read(path: String, expectedSize: Int? = nil, expectedChecksum: UInt64? = nil) throws -> ShardContents {
        func bad(_ why: String) -> GiftError { GiftError(.format, "\(path): \(why)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw GiftError(.io, "\(path): cannot open checkpoint shard (\(errnoText()))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GiftError(.io, "\(path): cannot stat (\(errnoText()))") }
        guard (st.st_mode & mode_t(S_IFMT)) == mode_t(S_IFREG) else {
            throw GiftError(.io, "\(path): not a regular file, expected a checkpoint shard")
        }
        let size = Int(st.st_size)
        if let e = expectedSize, e != size {
            throw GiftError(.mismatch, "\(path): shard is \(size) bytes but the manifest says \(e) "
                                + "(\(size < e ? "truncated" : "not the file the manifest describes"))")
        }
        guard size >= prefixBytes + 12 else {
            throw bad("only \(size) bytes: too short to be a gift checkpoint shard (truncated?)")
        }
        var prefix = [UInt8](repeating: 0, count: prefixBytes)
        try prefix.withUnsafeMutableBytes { try preadAll(fd, $0, offset: 0, path: path) }
        guard Array(prefix[0..<8]) == magic else {
            throw bad("not a gift checkpoint shard (bad magic \(hexString(prefix[0..<8])), expected \"GIFTSHD1\")")
        }
        let version = readLE(prefix, 8, as: UInt32.self)
        guard version == formatVersion else {
            if version > formatVersion {
                throw bad("shard format version \(version) was written by a newer gift; this gift reads version \(formatVersion)")
            }
            throw bad("unknown shard format version \(version) (this gift reads version \(formatVersion))")
        }
        let headerLength = Int(readLE(prefix, 12, as: UInt32.self))
        guard headerLength >= 12, headerLength <= maxHeaderBytes, headerLength <= size - prefixBytes else {
            throw bad("header length \(headerLength) is impossible for a \(size)-byte file (truncated or corrupted)")
        }
        var head = prefix + [UInt8](repeating: 0, count: headerLength)
        try head.withUnsafeMutableBytes {
            try preadAll(fd, UnsafeMutableRawBufferPointer(rebasing: $0[prefixBytes...]), offset: prefixBytes, path: path)
        }
        let stored = readLE(head, head.count - 8, as: UInt64.self)
        let actual = head.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<(head.count - 8)])) }
        guard stored == actual else { throw bad("header checksum mismatch: the header is corrupted") }
        let entries = try parseHeader(head, path: path)

        // Validate every entry against the file before allocating anything for it.
        var offset = prefixBytes + headerLength
        var seen = Set<String>()
        var totalRaw = 0, maxFrame = 0, maxScratch = 0
        var sections: [ShardSection] = []
        for e in entries {
            func badSection(_ why: String) -> GiftError { bad("section '\(e.name)': \(why)") }
            guard seen.insert(e.name).inserted else { throw bad("two sections are named '\(e.name)'") }
            guard let kind = ShardSection.Kind(rawValue: e.kind) else { throw badSection("unknown kind \(e.kind)") }
            guard e.flags & ~1 == 0, kind == .floats || e.flags == 0 else {
                throw badSection("unknown flags \(e.flags)")
            }
            let elementBytes: UInt64 = kind == .floats ? 4 : 1
            guard e.count <= UInt64(maxSectionBytes) / elementBytes else {
                throw badSection("implausible element count \(e.count)")
            }
            guard e.rawBytes == e.count * elementBytes else {
                throw badSection("raw length \(e.rawBytes) does not match \(e.count) \(kind == .floats ? "floats" : "bytes")")
            }
            guard e.compressedBytes <= UInt64(size - offset) else {
                throw badSection("compressed length \(e.compressedBytes) at offset \(offset) runs past the end of the "
                                 + "\(size)-byte file (truncated?)")
            }
            let (rawLimit, overflow) = e.compressedBytes.multipliedReportingOverflow(by: UInt64(maxZstdRatio))
            guard e.compressedBytes > 0, overflow || e.rawBytes <= rawLimit else {
                throw badSection("raw length \(e.rawBytes) is impossible for \(e.compressedBytes) compressed bytes")
            }
            let raw = Int(e.rawBytes), compressed = Int(e.compressedBytes)
            offset += compressed
            totalRaw += raw
            maxFrame = max(maxFrame, compressed)
            if e.flags & 1 != 0 { maxScratch = max(maxScratch, raw) }
            sections.append(ShardSection(name: e.name, kind: kind, count: Int(e.count), shuffled: e.flags & 1 != 0,
                                         rawBytes: raw, compressedBytes: compressed))
        }
        guard offset == size else {
            throw bad("\(size - offset) bytes of trailing garbage after the last section")
        }
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard totalRaw <= memory else {
            throw bad("sections claim \(totalRaw) raw bytes, more than this machine's \(memory) bytes of memory")
        }

        // Read, verify and decompress each frame.
        guard let dctx = ZSTD_createDCtx() else { throw GiftError(.io, "\(path): cannot create a zstd context") }
        defer { ZSTD_freeDCtx(dctx) }
        var fileHash = XXH64()
        fileHash.add(head)
        let frame = UnsafeMutableRawPointer.allocate(byteCount: max(maxFrame, 1), alignment: 64)
        defer { frame.deallocate() }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(maxScratch, 1), alignment: 64)
        defer { scratch.deallocate() }
        var payloads: [String: ShardContents.Payload] = [:]
        offset = prefixBytes + headerLength
        for (e, s) in zip(entries, sections) {
            let src = UnsafeMutableRawBufferPointer(start: frame, count: s.compressedBytes)
            try preadAll(fd, src, offset: offset, path: path)
            offset += s.compressedBytes
            fileHash.add(UnsafeRawBufferPointer(src))
            guard XXH64.hash(UnsafeRawBufferPointer(src)) == e.frameHash else {
                throw bad("section '\(s.name)': compressed data corrupted (checksum mismatch)")
            }
            let source = UnsafeRawBufferPointer(src)
            switch s.kind {
            case .bytes:
                var d = Data(count: s.rawBytes)
                try d.withUnsafeMutableBytes { try decompress(dctx, source, into: $0, section: s.name, path: path) }
                payloads[s.name] = .bytes(d)
            case .floats:
                let n = s.count
                let values = try [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                    if s.shuffled {
                        let planes = UnsafeMutableRawBufferPointer(start: scratch, count: s.rawBytes)
                        try decompress(dctx, source, into: planes, section: s.name, path: path)
                        if n > 0 { unshuffle(scratch.assumingMemoryBound(to: UInt8.self), into: buf.baseAddress!, count: n) }
                    } else {
                        try decompress(dctx, source, into: UnsafeMutableRawBufferPointer(buf), section: s.name, path: path)
                    }
                    initialized = n
                }
                payloads[s.name] = .floats(values)
            }
        }
        let checksum = fileHash.digest
        if let e = expectedChecksum, e != checksum {
            throw GiftError(.mismatch, "\(path): checksum \(hex64(checksum)) differs from the expected \(hex64(e)) "
                                + "(the file is corrupted or not the one the manifest describes)")
        }
        return ShardContents(path: path, sections: sections, fileBytes: size, checksum: checksum, payloads: payloads)
    }

    /// Parses a hash-verified header (`head` = prefix + header) into entries, bounds-checking every field.
    static func parseHeader(_ head: [UInt8], path: String) throws -> [Entry] {
        func bad(_ why: String) -> GiftError { GiftError(.format, "\(path): header: \(why)") }
        let end = head.count - 8
        var pos = prefixBytes
        func need(_ n: Int, _ what: String) throws {
            guard n <= end - pos else { throw bad("\(what) runs past the end of the header") }
        }
        func u64(_ what: String) throws -> UInt64 {
            try need(8, what); defer { pos += 8 }; return readLE(head, pos, as: UInt64.self)
        }
        try need(4, "section count")
        let count = Int(readLE(head, pos, as: UInt32.self)); pos += 4
        guard count <= maxSections, count <= (end - pos) / (entryFixedBytes + 1) else {
            throw bad("section count \(count) is impossible for a \(end - prefixBytes)-byte header")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            try need(2, "section \(i) name length")
            let nameLength = Int(readLE(head, pos, as: UInt16.self)); pos += 2
            guard nameLength >= 1, nameLength <= maxNameBytes else {
                throw bad("section \(i): name length \(nameLength) outside 1...\(maxNameBytes)")
            }
            try need(nameLength, "section \(i) name")
            guard let name = String(validating: head[pos..<(pos + nameLength)], as: UTF8.self) else {
                throw bad("section \(i): name is not valid UTF-8")
            }
            pos += nameLength
            try need(2, "section '\(name)' kind")
            let kind = head[pos], flags = head[pos + 1]; pos += 2
            let n = try u64("section '\(name)' count")
            let raw = try u64("section '\(name)' raw length")
            let compressed = try u64("section '\(name)' compressed length")
            let hash = try u64("section '\(name)' checksum")
            entries.append(Entry(name: name, kind: kind, flags: flags, count: n, rawBytes: raw,
                                 compressedBytes: compressed, frameHash: hash))
        }
        guard pos == end else { throw bad("\(end - pos) unexpected bytes after the last section entry") }
        return entries
    }

    /// Decompresses one complete zstd frame `src` into exactly `dst.count` bytes, checking that the frame
    /// records that content size and a content checksum, and that it ends exactly at the end of `src`.
    static func decompress(_ dctx: OpaquePointer, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer,
                           section: String, path: String) throws {
        func bad(_ why: String) -> GiftError { GiftError(.format, "\(path): section '\(section)': \(why)") }
        func zname(_ r: Int) -> String { String(cString: ZSTD_getErrorName(r)) }
        let contentSize = ZSTD_getFrameContentSize(src.baseAddress, src.count)
        if contentSize == UInt64.max - 1 { throw bad("compressed data is not a valid zstd frame") }
        if contentSize == UInt64.max { throw bad("zstd frame does not record its content size") }
        guard contentSize == UInt64(dst.count) else {
            throw bad("zstd frame holds \(contentSize) bytes but the header says \(dst.count)")
        }
        let frameSize = ZSTD_findFrameCompressedSize(src.baseAddress, src.count)
        if ZSTD_isError(frameSize) != 0 { throw bad("zstd frame is damaged or truncated (\(zname(frameSize)))") }
        guard frameSize == src.count else {
            throw bad("zstd frame is \(frameSize) bytes but the section is \(src.count) bytes")
        }
        var fh = ZSTD_frameHeader()
        let hr = ZSTD_getFrameHeader(&fh, src.baseAddress, src.count)
        guard hr == 0 else { throw bad("zstd frame header is damaged") }
        guard fh.checksumFlag == 1 else { throw bad("zstd frame carries no content checksum") }
        var one: UInt8 = 0
        let r = withUnsafeMutableBytes(of: &one) { dummy in
            ZSTD_decompressDCtx(dctx, dst.baseAddress ?? dummy.baseAddress!, dst.count, src.baseAddress, src.count)
        }
        if ZSTD_isError(r) != 0 { throw bad("decompression failed (\(zname(r)))") }
        guard r == dst.count else { throw bad("decompressed to \(r) bytes, expected \(dst.count)") }
    }

    // MARK: helpers

    /// Interleaves 4 byte planes of `count` floats (plane p = byte p of every float) back into floats.
    static func unshuffle(_ planes: UnsafePointer<UInt8>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        let b0 = planes, b1 = planes + n, b2 = planes + 2 * n, b3 = planes + 3 * n
        for i in 0..<n {
            let bits = UInt32(b0[i]) | UInt32(b1[i]) << 8 | UInt32(b2[i]) << 16 | UInt32(b3[i]) << 24
            dst[i] = Float(bitPattern: bits)
        }
    }

    /// XXH64 (seed 0) of the whole file at `path` (what `write` returns as `checksum`).
    public static func fileChecksum(path: String) throws -> UInt64 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot open (\(errnoText()))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GiftError(.io, "\(path): cannot stat (\(errnoText()))") }
        return try hashFile(fd: fd, size: Int(st.st_size), path: path)
    }

    static func hashFile(fd: Int32, size: Int, path: String) throws -> UInt64 {
        let chunk = 4 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buf.deallocate() }
        var h = XXH64()
        var off = 0
        while off < size {
            let m = min(chunk, size - off)
            let b = UnsafeMutableRawBufferPointer(start: buf, count: m)
            try preadAll(fd, b, offset: off, path: path)
            h.add(UnsafeRawBufferPointer(b))
            off += m
        }
        return h.digest
    }

    /// "params 1.25x, m 1.40x, v 2.10x": raw/compressed per section, for logs.
    public static func ratioSummary(_ sections: [ShardSection]) -> String {
        sections.map { "\($0.name) \(String(format: "%.2f", $0.compressionRatio))x" }.joined(separator: ", ")
    }

    static func readLE<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, as: T.Type) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
    }

    static func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func hex64(_ v: UInt64) -> String { "0x" + String(format: "%016llx", v) }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// `PositionalIO` on a buffer: all of `buf` written at / read from `offset` (an empty one: nothing).
    static func pwriteAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer, offset: Int, path: String) throws {
        guard let base = buf.baseAddress else { return }
        try PositionalIO.write(fd, from: base, count: buf.count, at: offset, path: path)
    }

    static func preadAll(_ fd: Int32, _ buf: UnsafeMutableRawBufferPointer, offset: Int, path: String) throws {
        guard let base = buf.baseAddress else { return }
        try PositionalIO.read(fd, into: base, count: buf.count, at: offset, path: path)
    }
}
