import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Loading one slice of a model folder's flat parameter buffer (a ZeRO-3 rank's shard) by reading only
// the bytes of the tensors that overlap it. The headers of every weight file are read and validated
// exactly as `ModelFolder.load` does (same names, shapes, dtypes and messages), so every rank refuses a
// bad folder the same way; the data is read with pread into a small conversion buffer, so the process
// never holds more than its slice plus that buffer (no mapping, no whole-file read).

/// A safetensors file's validated header, read with pread: where each tensor's bytes are, not the bytes.
/// Every range is checked against the file's size when the header is read.
final class SafetensorsHeader: TensorFileListing {
    let path: String
    let fileSize: Int
    let tensors: [String: SafetensorsTensor]
    /// Byte offset of the data section (8 + header length).
    let dataStart: Int
    private let fd: Int32

    init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw GiftError(.io, "\(path): no such file")
        }
        if isDir.boolValue { throw GiftError(.io, "\(path): is a directory, expected a safetensors file") }
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot open (\(String(cString: strerror(errno))))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw GiftError(.io, "\(path): cannot stat (\(why))")
        }
        self.path = path
        fileSize = Int(st.st_size)
        do {
            let fd = self.fd, size = fileSize
            let h = try SafetensorsFile.parseHeader(fileSize: size, path: path) { r in
                var out = [UInt8](repeating: 0, count: r.count)
                try out.withUnsafeMutableBytes { try PositionalIO.read(fd, into: $0.baseAddress!, count: r.count, at: r.lowerBound, path: path) }
                return out
            }
            tensors = h.tensors; dataStart = h.dataStart
        } catch {
            close(fd)
            throw error
        }
        #if os(Linux)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))  // larger read-ahead
        #endif
    }

    deinit { close(fd) }

    /// The entry for `name`, or an error naming the file and the tensor (as `SafetensorsFile.tensor`).
    func tensor(_ name: String) throws -> SafetensorsTensor {
        guard let t = tensors[name] else { throw GiftError(.format, "\(path): no tensor '\(name)'") }
        return t
    }

    /// Elements `elements` of tensor `t` (F32, BF16 or F16) widened to floats at `dst`, read through
    /// `scratch` (at least `SafetensorsHeader.chunkElements * 2` bytes) for 16-bit dtypes.
    func readFloats(_ t: SafetensorsTensor, elements: Range<Int>, into dst: UnsafeMutablePointer<Float>,
                    scratch: UnsafeMutableRawPointer) throws {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= t.elementCount)
        let start = dataStart + t.begin + elements.lowerBound * t.dtype.size
        var done = 0
        while done < elements.count {
            let n = min(Self.chunkElements, elements.count - done)
            let at = start + done * t.dtype.size
            switch t.dtype {
            case .F32:
                #if _endian(little)
                try PositionalIO.read(fd, into: dst + done, count: n * 4, at: at, path: path)
                #else
                try PositionalIO.read(fd, into: scratch, count: n * 4, at: at, path: path)
                for i in 0..<n { dst[done + i] = Float(bitPattern: UInt32(littleEndian: scratch.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                #endif
            case .BF16:
                try PositionalIO.read(fd, into: scratch, count: n * 2, at: at, path: path)
                BFloat16.decode(littleEndianBytes: scratch, into: dst + done, count: n)
            case .F16:
                try PositionalIO.read(fd, into: scratch, count: n * 2, at: at, path: path)
                Float16Bits.decode(littleEndianBytes: scratch, into: dst + done, count: n)
            default:
                throw GiftError(.format, "\(path): tensor '\(t.name)' has dtype \(t.dtype.rawValue); "
                                + "only F32, BF16 and F16 can be read as floats")
            }
            done += n
        }
    }

    /// `count` raw bytes of the file at byte `offset` (a header, or a sample `FolderIdentity` hashes).
    func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        precondition(offset >= 0 && count >= 0 && offset + count <= fileSize)
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { try out.withUnsafeMutableBytes { try PositionalIO.read(fd, into: $0.baseAddress!, count: count, at: offset, path: path) } }
        return out
    }

    /// Elements converted per read: 1 Mi (a 2 MiB scratch buffer for 16-bit weights).
    static let chunkElements = 1 << 20
    /// The scratch `readFloats` is given (4 bytes an element: room for a big-endian host's F32 too).
    static let scratchBytes = chunkElements * 4
}

extension ModelFolder {
    /// The slice `range` of the flat buffer `load(dir)` returns, reading only the bytes of the tensors
    /// that overlap it: `range.count` floats equal, bit for bit, to `load(dir).1[range]`. The folder is
    /// validated as `load` validates it (every tensor of the layout present once with its shape and a
    /// float dtype, nothing extra), from the headers alone, with the same errors.
    public static func loadRange(_ dir: String, range: Range<Int>) throws -> (ModelConfig, FloatBuffer) {
        let reader = try RangeReader(dir)
        guard range.lowerBound >= 0, range.upperBound <= reader.layout.count else {
            throw GiftError(.usage, "\(dir): range \(range.lowerBound)..<\(range.upperBound) is outside the model's "
                            + "\(reader.layout.count) parameters")
        }
        let buffer = FloatBuffer(count: range.count)
        try reader.read(range, into: buffer.pointer)
        return (reader.config, buffer)
    }

    /// A model folder validated once (as `loadRange` validates it), then read range by range into the
    /// caller's memory: many ranges (a bf16 base store filled a piece at a time) cost one header parse.
    public final class RangeReader {
        public let config: ModelConfig
        public let layout: ParameterLayout
        private let entries: [(SafetensorsHeader, SafetensorsTensor)]
        /// The 16-bit dtypes' conversion buffer (`SafetensorsHeader.scratchBytes`).
        private let scratch: UnsafeMutableRawPointer

        public init(_ dir: String) throws {
            let w = try WeightHeaders(dir)
            config = w.config
            layout = ParameterLayout(w.config)
            entries = try w.check(layout)
            scratch = .allocate(byteCount: SafetensorsHeader.scratchBytes, alignment: 64)
        }

        deinit { scratch.deallocate() }

        /// The floats of the flat range `range` (inside the layout) written to `dst`.
        public func read(_ range: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
            precondition(range.lowerBound >= 0 && range.upperBound <= layout.count, "range \(range) outside the layout")
            for (t, (file, entry)) in zip(layout.tensors, entries) {
                let lo = max(range.lowerBound, t.offset), hi = min(range.upperBound, t.offset + t.count)
                guard lo < hi else { continue }
                try file.readFloats(entry, elements: (lo - t.offset)..<(hi - t.offset),
                                    into: dst + (lo - range.lowerBound), scratch: scratch)
            }
        }
    }

    /// Bytes of weight data `loadRange(dir, range:)` reads (the overlapping parts of the tensors).
    public static func rangeReadBytes(_ dir: String, range: Range<Int>) throws -> Int {
        let w = try WeightHeaders(dir)
        let layout = ParameterLayout(w.config)
        return try zip(layout.tensors, w.check(layout)).reduce(0) { sum, te in
            let (t, (_, entry)) = te
            return sum + max(0, min(range.upperBound, t.offset + t.count) - max(range.lowerBound, t.offset)) * entry.dtype.size
        }
    }

    /// A model folder's config and the validated headers of its weight files (`WeightFolder`'s checks
    /// and messages, shared with `load`).
    typealias WeightHeaders = WeightFolder<SafetensorsHeader>
}

extension ModelFolder.WeightFolder where F == SafetensorsHeader {
    init(_ dir: String) throws { try self.init(dir, open: { try SafetensorsHeader(path: $0) }) }
}
