import Foundation

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, little-endian UInt64
//   [N bytes]  UTF-8 JSON object, possibly padded with trailing spaces:
//              {"<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//               "__metadata__": {"<key>": "<string>", ...}}          (optional)
//   [rest]     the data section; data_offsets are byte offsets relative to its start (8 + N),
//              element values little-endian, row-major.

/// Element types a safetensors header may name. Every one is accepted when reading (with its element
/// size), but only F32, BF16 and F16 decode to floats, and only F32 and BF16 can be written.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }
}

/// One tensor entry of a validated header. `begin`/`end` are byte offsets into the data section.
public struct SafetensorsTensor: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let begin: Int
    public let end: Int
    /// Number of elements (product of `shape`; 1 for a scalar). Validated not to overflow.
    public let elementCount: Int
    public var byteCount: Int { end - begin }
}

/// A safetensors file read into memory (mapped where the platform allows) with a fully validated header:
/// every tensor's byte range lies inside the file, matches its shape and dtype, and overlaps no other.
public struct SafetensorsFile: Sendable {
    public let path: String
    public let tensors: [String: SafetensorsTensor]
    public let metadata: [String: String]
    /// The whole file.
    let data: Data
    /// Byte offset of the data section in `data` (8 + header length).
    let dataStart: Int

    /// Headers larger than this are refused before any allocation (the Rust reference also caps at 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Tensor names in file order (by data offset, then name).
    public var names: [String] {
        tensors.values.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }.map(\.name)
    }

    /// Reads and validates the file at `path`. Errors: `.io` when the file cannot be read, `.format`
    /// (naming the path and, where there is one, the tensor) for anything malformed.
    public static func read(path: String) throws -> SafetensorsFile {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw GiftError(.io, "\(path): no such file")
        }
        if isDir.boolValue { throw GiftError(.io, "\(path): is a directory, expected a safetensors file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw GiftError(.io, "\(path): cannot read (\(error.localizedDescription))")
        }
        return try parse(data, path: path)
    }

    /// Validates `data` as the bytes of a safetensors file; `path` is used in messages only.
    public static func parse(_ data: Data, path: String) throws -> SafetensorsFile {
        let h = try parseHeader(fileSize: data.count, path: path) { r in data.withUnsafeBytes { Array($0[r]) } }
        return SafetensorsFile(path: path, tensors: h.tensors, metadata: h.metadata, data: data, dataStart: h.dataStart)
    }

    /// Validates the header of a safetensors file of `fileSize` bytes against that size; `bytes(r)` returns
    /// the file's bytes in `r` (only the length prefix and the header are asked for). Shared by `parse`
    /// (a file in memory) and `SafetensorsHeader.read` (a file read by ranges).
    static func parseHeader(fileSize: Int, path: String, bytes: (Range<Int>) throws -> [UInt8]) throws
        -> (tensors: [String: SafetensorsTensor], metadata: [String: String], dataStart: Int) {
        func bad(_ why: String) -> GiftError { GiftError(.format, "\(path): \(why)") }
        func badTensor(_ name: String, _ why: String) -> GiftError {
            GiftError(.format, "\(path): tensor '\(name)': \(why)")
        }
        guard fileSize >= 8 else {
            throw bad("file is \(fileSize) bytes, shorter than the 8-byte safetensors header length")
        }
        let headerLength64 = try bytes(0..<8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength64 <= UInt64(maxHeaderBytes) else {
            throw bad("header length \(headerLength64) is absurd (more than \(maxHeaderBytes) bytes)")
        }
        guard headerLength64 <= UInt64(fileSize - 8) else {
            throw bad("header length \(headerLength64) exceeds the \(fileSize - 8) bytes that follow it in the file")
        }
        let headerLength = Int(headerLength64)
        let dataStart = 8 + headerLength
        let headerBytes = try bytes(8..<dataStart)

        // UTF-8 check: decoding repairs invalid sequences, so a lossless round trip means the bytes were valid.
        let decoded = String(decoding: headerBytes, as: UTF8.self)
        guard decoded.utf8.elementsEqual(headerBytes) else { throw bad("header is not valid UTF-8") }
        let root: StrictJSON
        do { root = try StrictJSON.parse(headerBytes) } catch let e as StrictJSON.ParseError {
            throw bad("header is not valid JSON (\(e.message) at byte \(e.offset) of the header)")
        }
        guard case .object(let entries) = root else { throw bad("header is not a JSON object") }

        var metadata: [String: String] = [:]
        var tensors: [String: SafetensorsTensor] = [:]
        let dataSize = fileSize - dataStart
        // Sorted so that, of several problems, the same one is always reported.
        for name in entries.keys.sorted() {
            guard let entry = entries[name] else { continue }
            if name == "__metadata__" {
                guard case .object(let m) = entry else { throw bad("__metadata__ is not an object of strings") }
                for (k, v) in m {
                    guard case .string(let s) = v else {
                        throw bad("__metadata__ value for key '\(k)' is not a string (metadata must be an object of strings)")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard case .object(let fields) = entry else { throw badTensor(name, "entry is not an object") }

            guard let dtypeValue = fields["dtype"] else { throw badTensor(name, "missing field 'dtype'") }
            guard case .string(let dtypeName) = dtypeValue else { throw badTensor(name, "field 'dtype' is not a string") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw badTensor(name, "unknown dtype '\(dtypeName)' (known: "
                                + SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }

            guard let shapeValue = fields["shape"] else { throw badTensor(name, "missing field 'shape'") }
            guard case .array(let dims) = shapeValue else { throw badTensor(name, "field 'shape' is not an array") }
            var shape: [Int] = []
            var count = 1
            for d in dims {
                guard let n = d.intValue else {
                    throw badTensor(name, "shape dimension \(d.brief) is not an integer")
                }
                guard n >= 0 else { throw badTensor(name, "shape dimension \(n) is negative") }
                let (product, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow else { throw badTensor(name, "element count of shape \(dims.map(\.brief)) overflows") }
                count = product
                shape.append(n)
            }
            let (needed, bytesOverflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !bytesOverflow else { throw badTensor(name, "byte size of shape \(shape) of \(dtypeName) overflows") }

            guard let offsetsValue = fields["data_offsets"] else { throw badTensor(name, "missing field 'data_offsets'") }
            guard case .array(let offsets) = offsetsValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue else {
                throw badTensor(name, "field 'data_offsets' is not an array of two integers")
            }
            guard begin >= 0, end >= 0 else { throw badTensor(name, "data_offsets [\(begin), \(end)] are negative") }
            guard begin <= end else { throw badTensor(name, "data_offsets [\(begin), \(end)] begin after they end") }
            guard end - begin == needed else {
                throw badTensor(name, "data_offsets [\(begin), \(end)] span \(end - begin) bytes but shape \(shape) of "
                                + "\(dtypeName) needs \(needed) bytes")
            }
            guard end <= dataSize else {
                throw badTensor(name, "data_offsets [\(begin), \(end)] extend past the end of the file "
                                + "(data section is \(dataSize) bytes)")
            }
            tensors[name] = SafetensorsTensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end,
                                              elementCount: count)
        }

        // Overlap: after sorting by start, each non-empty range must start at or after the furthest end so far.
        let ranges = tensors.values.filter { $0.end > $0.begin }.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }
        if var furthest = ranges.first {
            for t in ranges.dropFirst() {
                if t.begin < furthest.end {
                    throw bad("tensors '\(furthest.name)' [\(furthest.begin), \(furthest.end)] and '\(t.name)' "
                              + "[\(t.begin), \(t.end)] overlap")
                }
                if t.end > furthest.end { furthest = t }
            }
        }
        return (tensors, metadata, dataStart)
    }

    /// The entry for `name`, or an error naming the file and the tensor.
    public func tensor(_ name: String) throws -> SafetensorsTensor {
        guard let t = tensors[name] else { throw GiftError(.format, "\(path): no tensor '\(name)'") }
        return t
    }

    /// The raw little-endian bytes of a tensor.
    public func bytes(_ name: String) throws -> Data {
        let t = try tensor(name)
        let lo = data.startIndex + dataStart + t.begin
        return data.subdata(in: lo..<(lo + t.byteCount))
    }

    /// A tensor's values as floats: F32 as is, BF16 and F16 widened exactly. Other dtypes are an error
    /// naming the dtype.
    public func floats(_ name: String) throws -> [Float] {
        let t = try tensor(name)
        try checkFloatDType(t)
        var out = [Float](repeating: 0, count: t.elementCount)
        try out.withUnsafeMutableBufferPointer { buf in
            // An empty array may have no base address; there is nothing to copy then.
            if let p = buf.baseAddress { try copyFloats(name, into: p, count: t.elementCount) }
        }
        return out
    }

    private func checkFloatDType(_ t: SafetensorsTensor) throws {
        guard t.dtype == .F32 || t.dtype == .BF16 || t.dtype == .F16 else {
            throw GiftError(.format, "\(path): tensor '\(t.name)' has dtype \(t.dtype.rawValue); "
                            + "only F32, BF16 and F16 can be read as floats")
        }
    }

    /// Writes a tensor's `count` values as floats to `dst` (see `floats`). `count` must equal the tensor's
    /// element count.
    public func copyFloats(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try tensor(name)
        guard count == t.elementCount else {
            throw GiftError(.mismatch, "\(path): tensor '\(name)' has \(t.elementCount) elements, expected \(count)")
        }
        try checkFloatDType(t)
        if count == 0 { return }
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            // Non-nil: the file holds at least 8 bytes. The range was validated against the file size.
            guard let base = raw.baseAddress else { return }
            let src = base + dataStart + t.begin
            switch t.dtype {
            case .F32:
                #if _endian(little)
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: t.byteCount)
                #else
                for i in 0..<count {
                    dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
                #endif
            case .BF16: BFloat16.decode(littleEndianBytes: src, into: dst, count: count)
            case .F16: Float16Bits.decode(littleEndianBytes: src, into: dst, count: count)
            default: break
            }
        }
    }
}

// MARK: writing

/// One tensor to write: a name, a shape, the on-disk dtype (.F32 or .BF16) and the source floats.
/// The pointer form does not copy; the pointer must stay valid until `SafetensorsFile.write` returns.
public struct SafetensorsWriteEntry {
    enum Source { case pointer(UnsafePointer<Float>), array([Float]) }
    public let name: String
    public let shape: [Int]
    public let dtype: SafetensorsDType
    public let count: Int
    let source: Source

    public init(name: String, shape: [Int], dtype: SafetensorsDType = .F32, pointer: UnsafePointer<Float>, count: Int) {
        self.name = name; self.shape = shape; self.dtype = dtype; self.count = count; source = .pointer(pointer)
    }

    public init(name: String, shape: [Int], dtype: SafetensorsDType = .F32, values: [Float]) {
        self.name = name; self.shape = shape; self.dtype = dtype; count = values.count; source = .array(values)
    }

    /// Bytes this tensor takes in the data section.
    public var byteCount: Int { count * dtype.size }
}

extension SafetensorsFile {
    /// Writes a standard safetensors file: tensors' data in the given order and contiguous, the header's
    /// keys sorted, the header padded with spaces so the data section starts at a multiple of 8. The file
    /// is written to a temporary file in the same folder, synced, then renamed over `path`, so readers
    /// see either the old file or the complete new one.
    public static func write(path: String, tensors: [SafetensorsWriteEntry], metadata: [String: String] = [:]) throws {
        let headerBytes = try encodeHeader(path: path, tensors: tensors.map { ($0.name, $0.shape, $0.dtype, $0.count) },
                                           metadata: metadata)

        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
            throw GiftError(.io, "\(path): cannot create temporary file \(tmp)")
        }
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: tmp) } }
        do {
            guard let h = FileHandle(forWritingAtPath: tmp) else { throw GiftError(.io, "\(tmp): cannot open for writing") }
            defer { try? h.close() }
            var prefix = Data(count: 8)
            prefix.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(headerBytes.count).littleEndian, as: UInt64.self) }
            prefix.append(contentsOf: headerBytes)
            try h.write(contentsOf: prefix)
            // Convert and write in chunks so a large model never needs a second full copy in memory.
            let chunk = 1 << 20
            var buffer = Data(count: chunk * 4)
            for e in tensors {
                func emit(_ src: UnsafePointer<Float>) throws {
                    var i = 0
                    while i < e.count {
                        let n = min(chunk, e.count - i)
                        let bytes = n * e.dtype.size
                        buffer.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
                            guard let dst = raw.baseAddress else { return }
                            if e.dtype == .BF16 {
                                BFloat16.encode(src + i, intoLittleEndianBytes: dst, count: n)
                            } else {
                                for j in 0..<n { dst.storeBytes(of: src[i + j].bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self) }
                            }
                        }
                        try h.write(contentsOf: buffer.prefix(bytes))
                        i += n
                    }
                }
                switch e.source {
                case .pointer(let p): try emit(p)
                case .array(let a): try a.withUnsafeBufferPointer { if let p = $0.baseAddress { try emit(p) } }
                }
            }
            try h.synchronize()
        } catch let e as GiftError { throw e } catch {
            throw GiftError(.io, "\(tmp): write failed (\(error.localizedDescription))")
        }
        guard rename(tmp, path) == 0 else {
            throw GiftError(.io, "\(path): cannot move \(tmp) into place (\(String(cString: strerror(errno))))")
        }
        done = true
    }

    /// The JSON header `write` puts after the 8-byte length for tensors laid out contiguously in the given
    /// order: keys sorted, padded with spaces to a multiple of 8 bytes. Shared with `StreamingModelWriter`,
    /// which writes each shard's header before its data arrives.
    static func encodeHeader(path: String, tensors: [(name: String, shape: [Int], dtype: SafetensorsDType, count: Int)],
                             metadata: [String: String]) throws -> [UInt8] {
        // Validate the entries and lay out the data section.
        var seen = Set<String>()
        var header: [(key: String, json: String)] = []
        var offset = 0
        for e in tensors {
            guard !e.name.isEmpty, e.name != "__metadata__" else {
                throw GiftError(.usage, "\(path): invalid tensor name '\(e.name)'")
            }
            guard seen.insert(e.name).inserted else { throw GiftError(.usage, "\(path): tensor '\(e.name)' given twice") }
            guard e.dtype == .F32 || e.dtype == .BF16 else {
                throw GiftError(.usage, "\(path): tensor '\(e.name)': can only write F32 or BF16, not \(e.dtype.rawValue)")
            }
            let product = e.shape.reduce(into: Optional(1)) { acc, d in
                guard let a = acc, d >= 0 else { acc = nil; return }
                let (m, overflow) = a.multipliedReportingOverflow(by: d)
                acc = overflow ? nil : m
            }
            guard product == e.count else {
                throw GiftError(.mismatch, "\(path): tensor '\(e.name)': shape \(e.shape) does not hold \(e.count) values")
            }
            let end = offset + e.count * e.dtype.size
            header.append((e.name, "{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],"
                           + "\"data_offsets\":[\(offset),\(end)]}"))
            offset = end
        }
        if !metadata.isEmpty {
            let fields = metadata.sorted { Array($0.key.utf8).lexicographicallyPrecedes($1.key.utf8) }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            header.append(("__metadata__", "{" + fields.joined(separator: ",") + "}"))
        }
        // Byte (= code point) order, like Python's json.dumps(sort_keys=True).
        header.sort { Array($0.key.utf8).lexicographicallyPrecedes($1.key.utf8) }
        var headerBytes = Array(("{" + header.map { "\(jsonString($0.key)):\($0.json)" }.joined(separator: ",") + "}").utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        return headerBytes
    }

    static func jsonString(_ s: String) -> String { StrictJSON.quote(s) }
}

// MARK: strict JSON reader

