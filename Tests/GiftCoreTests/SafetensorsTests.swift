import Foundation
import XCTest
@testable import GiftCore

final class SafetensorsTests: XCTestCase {
    var tmp: String = ""

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("gift-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    // MARK: helpers

    /// The bytes of a safetensors file: 8-byte little-endian header length, the header text, the data.
    func raw(_ header: String, _ data: [UInt8] = [], headerLength: UInt64? = nil) -> Data {
        let h = Array(header.utf8)
        var out = Data()
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: data)
        return out
    }

    @discardableResult
    func write(_ data: Data, _ name: String = "bad.safetensors") -> String {
        let path = tmp + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: data), path)
        return path
    }

    /// Asserts `body` throws a GiftError whose message contains every one of `needles`.
    func assertGiftError(_ needles: [String], kind: GiftError.Kind? = nil, file: StaticString = #filePath,
                         line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error containing \(needles)", file: file, line: line)
        } catch let e as GiftError {
            for n in needles where !e.message.contains(n) {
                XCTFail("message \"\(e.message)\" lacks \"\(n)\"", file: file, line: line)
            }
            if let k = kind { XCTAssertEqual(e.kind, k, e.message, file: file, line: line) }
        } catch {
            XCTFail("expected a GiftError, got \(error)", file: file, line: line)
        }
    }

    /// Writes `header` + `data` as bad.safetensors and asserts reading it fails as .format naming the
    /// file and `needles`.
    func assertBad(_ header: String, _ data: [UInt8] = [], _ needles: String..., file: StaticString = #filePath,
                   line: UInt = #line) {
        let path = write(raw(header, data))
        assertGiftError(["bad.safetensors"] + needles, kind: .format, file: file, line: line) {
            _ = try SafetensorsFile.read(path: path)
        }
    }

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func tiny() throws -> (ModelConfig, FloatBuffer) {
        let c = try ModelConfig.preset("tiny")
        return (c, ParameterLayout(c).initialize(seed: 1234))
    }

    /// A model folder holding the tiny preset, saved as F32.
    func tinyFolder(_ name: String = "model") throws -> (String, ModelConfig, FloatBuffer) {
        let (c, p) = try tiny()
        let dir = tmp + "/" + name
        try ModelFolder.save(dir, config: c, parameters: p)
        return (dir, c, p)
    }

    /// Rewrites `dir/model.safetensors` with the tiny layout's tensors, edited by `edit`.
    func rewriteWeights(_ dir: String, _ c: ModelConfig, _ p: FloatBuffer,
                        edit: (inout [SafetensorsWriteEntry]) -> Void) throws {
        let layout = ParameterLayout(c)
        var entries = layout.tensors.map {
            SafetensorsWriteEntry(name: $0.name, shape: $0.shape, values: Array(UnsafeBufferPointer(start: p.pointer + $0.offset, count: $0.count)))
        }
        edit(&entries)
        try SafetensorsFile.write(path: dir + "/model.safetensors", tensors: entries)
    }

    // MARK: bf16 / f16 conversion

    func testBFloat16RoundToNearestEven() {
        func bf(_ b: UInt32) -> UInt16 { BFloat16.fromFloat(Float(bitPattern: b)) }
        XCTAssertEqual(BFloat16.fromFloat(1.0), 0x3F80)
        XCTAssertEqual(BFloat16.fromFloat(-2.0), 0xC000)
        XCTAssertEqual(BFloat16.fromFloat(-0.0), 0x8000)
        XCTAssertEqual(bf(0x3F80_8000), 0x3F80, "tie, lower neighbour even: round down")
        XCTAssertEqual(bf(0x3F81_8000), 0x3F82, "tie, lower neighbour odd: round up to even")
        XCTAssertEqual(bf(0x3F80_8001), 0x3F81, "just above half: up")
        XCTAssertEqual(bf(0x3F80_7FFF), 0x3F80, "just below half: down")
        XCTAssertEqual(bf(0xBF81_8000), 0xBF82, "negative tie to even")
        XCTAssertEqual(bf(0x3FFF_8000), 0x4000, "carry into the exponent")
        XCTAssertEqual(BFloat16.fromFloat(.infinity), 0x7F80)
        XCTAssertEqual(BFloat16.fromFloat(-.infinity), 0xFF80)
        XCTAssertEqual(BFloat16.fromFloat(.greatestFiniteMagnitude), 0x7F80, "beyond bf16's range: infinity")
        XCTAssertEqual(bf(0x0000_0001), 0x0000, "tiny subnormal rounds to zero")
        XCTAssertEqual(BFloat16.fromFloat(.nan), 0x7FC0)
        XCTAssertTrue(BFloat16.toFloat(bf(0x7F80_0001)).isNaN, "signalling NaN with low payload stays NaN")
        XCTAssertTrue(BFloat16.toFloat(bf(0xFF80_0001)).isNaN)
        XCTAssertEqual(bf(0xFFC0_0000), 0xFFC0, "sign of a NaN kept")
        XCTAssertEqual(BFloat16.toFloat(0x4049), 3.140625)
        XCTAssertEqual(BFloat16.round(3.14159265), 3.140625)
        // Every bf16 value is exact in float32 and comes back unchanged.
        for b in stride(from: 0, through: 0xFFFF, by: 1) where !BFloat16.toFloat(UInt16(b)).isNaN {
            XCTAssertEqual(BFloat16.fromFloat(BFloat16.toFloat(UInt16(b))), UInt16(b))
        }
        // Bulk helpers agree with the scalar ones.
        let xs: [Float] = [1, -2.5, 3.14159265, .infinity, Float(bitPattern: 0x0000_1234), 65504]
        var enc = [UInt16](repeating: 0, count: xs.count), dec = [Float](repeating: 0, count: xs.count)
        BFloat16.encode(xs, into: &enc, count: xs.count)
        BFloat16.decode(enc, into: &dec, count: xs.count)
        XCTAssertEqual(enc, xs.map(BFloat16.fromFloat))
        XCTAssertEqual(bits(dec), bits(xs.map(BFloat16.round)))
    }

    func testFloat16Decode() {
        XCTAssertEqual(Float16Bits.toFloat(0x3C00), 1)
        XCTAssertEqual(Float16Bits.toFloat(0xC000), -2)
        XCTAssertEqual(Float16Bits.toFloat(0x7BFF), 65504)
        XCTAssertEqual(Float16Bits.toFloat(0x0001), 0x1.0p-24)
        XCTAssertEqual(Float16Bits.toFloat(0x8000).bitPattern, (-Float(0)).bitPattern)
        XCTAssertEqual(Float16Bits.toFloat(0x3555), 0.333251953125)
        XCTAssertEqual(Float16Bits.toFloat(0x7C00), .infinity)
        XCTAssertEqual(Float16Bits.toFloat(0xFC00), -.infinity)
        XCTAssertTrue(Float16Bits.toFloat(0x7E00).isNaN)
    }

    // MARK: round trips

    func testF32RoundTripBitIdentical() throws {
        let (c, p) = try tiny()
        let dir = tmp + "/model"
        try ModelFolder.save(dir, config: c, parameters: p)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/model.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model.safetensors.index.json"))
        let (c2, p2) = try ModelFolder.load(dir)
        XCTAssertEqual(c2, c)
        XCTAssertEqual(p2.count, p.count)
        XCTAssertEqual(bits(p2.array), bits(p.array))
        let f = try SafetensorsFile.read(path: dir + "/model.safetensors")
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.names, ParameterLayout(c).tensors.map(\.name), "data in layout order")
    }

    func testShardedRoundTrip() throws {
        let (c, p) = try tiny()
        let dir = tmp + "/sharded"
        try ModelFolder.save(dir, config: c, parameters: p)  // a stale single file the sharded save must remove
        try ModelFolder.save(dir, config: c, parameters: p, maxShardBytes: 100_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        let shards = files.filter { $0.hasPrefix("model-") }.sorted()
        XCTAssertGreaterThan(shards.count, 1)
        XCTAssertEqual(shards.first, ModelFolder.shardName(1, of: shards.count))
        XCTAssertEqual(ModelFolder.shardName(2, of: 3), "model-00002-of-00003.safetensors")
        XCTAssertFalse(files.contains("model.safetensors"))
        let indexData = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: indexData) as? [String: Any])
        let total = (index["metadata"] as? [String: Any])?["total_size"] as? Int
        XCTAssertEqual(total, p.count * 4)
        XCTAssertEqual((index["weight_map"] as? [String: String])?.count, ParameterLayout(c).tensors.count)
        for s in shards {
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir + "/" + s)[.size] as? Int)
            let f = try SafetensorsFile.read(path: dir + "/" + s)
            XCTAssertTrue(f.tensors.count == 1 || size - 8 < 100_000 + 4096, "\(s) respects the shard size")
        }
        let (c2, p2) = try ModelFolder.load(dir)
        XCTAssertEqual(c2, c)
        XCTAssertEqual(bits(p2.array), bits(p.array))

        // Saving unsharded again removes the index and the shards.
        try ModelFolder.save(dir, config: c, parameters: p)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["config.json", "model.safetensors"])
    }

    func testBF16SaveLoad() throws {
        let (c, p) = try tiny()
        let dir = tmp + "/bf16"
        try ModelFolder.save(dir, config: c, parameters: p, dtype: .BF16)
        let f = try SafetensorsFile.read(path: dir + "/model.safetensors")
        XCTAssertTrue(f.tensors.values.allSatisfy { $0.dtype == .BF16 })
        let (c2, p2) = try ModelFolder.load(dir)
        XCTAssertEqual(c2, c)
        XCTAssertEqual(bits(p2.array), bits(p.array.map(BFloat16.round)))
        // The rounding actually happened (normal(0, 0.02) values are not bf16-exact).
        XCTAssertNotEqual(bits(p2.array), bits(p.array))
        // Sharded BF16 too.
        try ModelFolder.save(dir, config: c, parameters: p, dtype: .BF16, maxShardBytes: 50_000)
        XCTAssertEqual(bits(try ModelFolder.load(dir).1.array), bits(p2.array))
    }

    func testHandBuiltBF16AndF16File() throws {
        // 1.0, -2.0, +inf, 3.140625 as little-endian bf16; then 1.0, -2.0, 2^-24 as f16. The header is
        // 3 bytes short of a multiple of 4, so the data is not aligned in memory either.
        let header = #"{"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}"#
        let data: [UInt8] = [0x80, 0x3F, 0x00, 0xC0, 0x80, 0x7F, 0x49, 0x40, 0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00]
        let f = try SafetensorsFile.read(path: write(raw(header, data), "bf16.safetensors"))
        XCTAssertEqual(f.tensors["b"], SafetensorsTensor(name: "b", dtype: .BF16, shape: [2, 2], begin: 0, end: 8, elementCount: 4))
        XCTAssertEqual(try f.floats("b"), [1, -2, .infinity, 3.140625])
        XCTAssertEqual(try f.floats("h"), [1, -2, 0x1.0p-24])
        XCTAssertEqual(f.names, ["b", "h"])
        XCTAssertEqual(try f.bytes("h"), Data(data[8..<14]))
        var out = [Float](repeating: 0, count: 4)
        try f.copyFloats("b", into: &out, count: 4)
        XCTAssertEqual(out, [1, -2, .infinity, 3.140625])
        assertGiftError(["'b'", "4 elements", "expected 3"]) { try f.copyFloats("b", into: &out, count: 3) }
        assertGiftError(["bf16.safetensors", "no tensor 'zz'"]) { _ = try f.floats("zz") }
    }

    func testWriterFormat() throws {
        let path = tmp + "/w.safetensors"
        try SafetensorsFile.write(path: path, tensors: [
            SafetensorsWriteEntry(name: "z", shape: [3], values: [1, 2, 3]),
            SafetensorsWriteEntry(name: "a", shape: [], dtype: .BF16, values: [-1.5]),
            SafetensorsWriteEntry(name: "e", shape: [0, 4], values: []),
        ], metadata: ["format": "pt", "note": "quote \" and\nnewline"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + n) % 8, 0, "data section 8-aligned")
        XCTAssertEqual(bytes.count, 8 + n + 12 + 2)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces), #"{"__metadata__":{"format":"pt","note":"quote \" and\nnewline"},"#
            + #""a":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},"#
            + #""e":{"dtype":"F32","shape":[0,4],"data_offsets":[14,14]},"#
            + #""z":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#)
        let f = try SafetensorsFile.read(path: path)
        XCTAssertEqual(f.metadata["note"], "quote \" and\nnewline")
        XCTAssertEqual(try f.floats("z"), [1, 2, 3])
        XCTAssertEqual(try f.floats("a"), [-1.5])
        XCTAssertEqual(try f.floats("e"), [])
        XCTAssertEqual(f.tensors["a"]?.shape, [])
        // No temporary files left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["w.safetensors"])
        // Bad entries are refused.
        assertGiftError(["'x'", "shape [2]"]) {
            try SafetensorsFile.write(path: path, tensors: [SafetensorsWriteEntry(name: "x", shape: [2], values: [1])])
        }
        assertGiftError(["'x'", "I32"]) {
            try SafetensorsFile.write(path: path, tensors: [SafetensorsWriteEntry(name: "x", shape: [1], dtype: .I32, values: [1])])
        }
        assertGiftError(["'x'", "twice"]) {
            try SafetensorsFile.write(path: path, tensors: [SafetensorsWriteEntry(name: "x", shape: [1], values: [1]),
                                                            SafetensorsWriteEntry(name: "x", shape: [1], values: [1])])
        }
    }

    func testGoldenModelLoads() throws {
        let dir = goldenDir.appendingPathComponent("llada-tiny").path
        let (c, p) = try ModelFolder.load(dir)
        XCTAssertEqual(c.nLayers, 2)
        XCTAssertEqual(c.dModel, 32)
        XCTAssertEqual(c.nKVHeads, 2)
        XCTAssertEqual(p.count, ParameterLayout(c).count)
        let layout = ParameterLayout(c)
        let norm = try XCTUnwrap(layout.tensor(named: "model.transformer.ln_f.weight"))
        XCTAssertTrue((0..<p.count).allSatisfy { p[$0].isFinite })
        XCTAssertTrue((0..<norm.count).contains { p[norm.offset + $0] != 0 })
    }

    func testAllKnownDTypesAccepted() throws {
        let sizes: [String: Int] = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                                    "U8": 1, "BOOL": 1]
        var header: [String] = [], offset = 0
        for (name, size) in sizes.sorted(by: { $0.key < $1.key }) {
            header.append(#""t_\#(name)":{"dtype":"\#(name)","shape":[3],"data_offsets":[\#(offset),\#(offset + 3 * size)]}"#)
            offset += 3 * size
        }
        let f = try SafetensorsFile.read(path: write(raw("{" + header.joined(separator: ",") + "}", [UInt8](repeating: 0, count: offset)), "all.safetensors"))
        for (name, size) in sizes {
            XCTAssertEqual(f.tensors["t_" + name]?.dtype.size, size)
            XCTAssertEqual(f.tensors["t_" + name]?.byteCount, 3 * size)
        }
        assertGiftError(["all.safetensors", "'t_I32'", "dtype I32"]) { _ = try f.floats("t_I32") }
        assertGiftError(["'t_BOOL'", "dtype BOOL"]) { _ = try f.floats("t_BOOL") }
    }

    func testPaddedHeaderAndMetadataAccepted() throws {
        let header = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"# + "     "
        let f = try SafetensorsFile.read(path: write(raw(header, [0, 0, 0x80, 0x3F]), "ok.safetensors"))
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.floats("w"), [1])
    }

    // MARK: malformed safetensors files (one reason each)

    func testMissingFile() {
        assertGiftError([tmp + "/nope.safetensors", "no such file"], kind: .io) {
            _ = try SafetensorsFile.read(path: self.tmp + "/nope.safetensors")
        }
    }

    func testFileShorterThan8Bytes() {
        let path = write(Data([1, 0, 0]))
        assertGiftError(["bad.safetensors", "3 bytes", "shorter than"], kind: .format) { _ = try SafetensorsFile.read(path: path) }
    }

    func testHeaderLengthPastEndOfFile() {
        let path = write(raw("{}", headerLength: 1000))
        assertGiftError(["bad.safetensors", "header length 1000 exceeds"], kind: .format) { _ = try SafetensorsFile.read(path: path) }
        let path2 = write(raw("{}", headerLength: UInt64.max), "max.safetensors")
        assertGiftError(["max.safetensors", "absurd"], kind: .format) { _ = try SafetensorsFile.read(path: path2) }
    }

    func testHeaderLengthAbsurd() {
        let path = write(raw("{}", headerLength: 200_000_000))
        assertGiftError(["bad.safetensors", "200000000", "absurd"], kind: .format) { _ = try SafetensorsFile.read(path: path) }
    }

    func testHeaderNotUTF8() {
        var d = raw(#"{"w\#u{00E9}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#)
        d[10] = 0xFF  // breaks the two-byte é
        let path = write(d)
        assertGiftError(["bad.safetensors", "not valid UTF-8"], kind: .format) { _ = try SafetensorsFile.read(path: path) }
    }

    func testHeaderNotJSON() {
        assertBad(#"{"w": {"dtype": "F32",}"#, [], "not valid JSON")
        assertBad(#"{"w": 1} trailing"#, [], "not valid JSON")
        assertBad("", [], "not valid JSON")
        assertBad(String(repeating: "[", count: 10_000), [], "not valid JSON", "nested")
    }

    func testHeaderNotObject() {
        assertBad(#"[1, 2]"#, [], "not a JSON object")
    }

    func testDuplicateKey() {
        assertBad(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#,
                  [], "duplicate key 'w'")
    }

    func testEntryNotObject() {
        assertBad(#"{"w": [1, 2]}"#, [], "tensor 'w'", "not an object")
    }

    func testMissingDType() {
        assertBad(#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "missing field 'dtype'")
    }

    func testMissingShape() {
        assertBad(#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "missing field 'shape'")
    }

    func testMissingDataOffsets() {
        assertBad(#"{"w":{"dtype":"F32","shape":[1]}}"#, [0, 0, 0, 0], "tensor 'w'", "missing field 'data_offsets'")
    }

    func testWrongFieldTypes() {
        assertBad(#"{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "'dtype' is not a string")
        assertBad(#"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "'shape' is not an array")
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":{"a":0}}}"#, [0, 0, 0, 0], "tensor 'w'", "'data_offsets' is not an array of two integers")
    }

    func testUnknownDType() {
        assertBad(#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "unknown dtype 'Q4'")
    }

    func testNegativeDimension() {
        assertBad(#"{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "dimension -1 is negative")
    }

    func testNonIntegerDimension() {
        assertBad(#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "1.5 is not an integer")
        assertBad(#"{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "not an integer")
        assertBad(#"{"w":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "not an integer")
        assertBad(#"{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "not an integer")
        assertBad(#"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#, [0, 0, 0, 0],
                  "tensor 'w'", "not an integer")
    }

    func testElementCountOverflow() {
        assertBad(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "overflows")
        // Element count fits, byte count does not.
        assertBad(#"{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, [0, 0, 0, 0], "tensor 'w'", "overflows")
    }

    func testDataOffsetsNotTwoNonNegativeIntegers() {
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, [0, 0, 0, 0], "tensor 'w'", "two integers")
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, [0, 0, 0, 0], "tensor 'w'", "two integers")
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}"#, [0, 0, 0, 0], "tensor 'w'", "two integers")
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, [0, 0, 0, 0], "tensor 'w'", "negative")
    }

    func testDataOffsetsBeginAfterEnd() {
        assertBad(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, [0, 0, 0, 0], "tensor 'w'", "begin after they end")
    }

    func testByteSizeMismatch() {
        assertBad(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 16),
                  "tensor 'w'", "span 8 bytes", "needs 16 bytes")
    }

    func testRangePastEndOfFile() {
        assertBad(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 0, 0], "tensor 'w'", "past the end of the file")
        assertBad(#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}"#, [0],
                  "tensor 'w'", "past the end")
    }

    func testOverlappingTensors() {
        assertBad(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                  [UInt8](repeating: 0, count: 12), "'a'", "'b'", "overlap")
        // Contained entirely inside a longer earlier range.
        assertBad(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                  [UInt8](repeating: 0, count: 16), "overlap")
    }

    func testMetadataNotObjectOfStrings() {
        assertBad(#"{"__metadata__":[1]}"#, [], "__metadata__", "object of strings")
        assertBad(#"{"__metadata__":{"format":1}}"#, [], "__metadata__", "'format'", "not a string")
    }

    // MARK: malformed model folders

    func testMissingFolder() {
        assertGiftError([tmp + "/absent", "does not exist"], kind: .io) { _ = try ModelFolder.load(self.tmp + "/absent") }
    }

    func testMissingConfig() throws {
        let dir = tmp + "/noconfig"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        assertGiftError([dir + "/config.json", "not found"], kind: .io) { _ = try ModelFolder.load(dir) }
    }

    func testInvalidConfig() throws {
        let (dir, _, _) = try tinyFolder()
        try Data(#"{"d_model": 64}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        assertGiftError([dir + "/config.json", "n_heads"]) { _ = try ModelFolder.load(dir) }
    }

    func testMissingWeights() throws {
        let (dir, _, _) = try tinyFolder()
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        assertGiftError([dir, "no model.safetensors or model.safetensors.index.json"]) { _ = try ModelFolder.load(dir) }
    }

    func testMissingTensor() throws {
        let (dir, c, p) = try tinyFolder()
        try rewriteWeights(dir, c, p) { $0.removeAll { $0.name == "model.transformer.blocks.1.k_proj.weight" } }
        assertGiftError(["model.safetensors", "missing tensor 'model.transformer.blocks.1.k_proj.weight'", "[64, 64]"], kind: .mismatch) {
            _ = try ModelFolder.load(dir)
        }
    }

    func testWrongShape() throws {
        let (dir, c, p) = try tinyFolder()
        try rewriteWeights(dir, c, p) { entries in
            let i = entries.firstIndex { $0.name == "model.transformer.blocks.0.ff_proj.weight" }!
            let e = entries[i]
            entries[i] = SafetensorsWriteEntry(name: e.name, shape: [64, 176], values: [Float](repeating: 0, count: e.count))
        }
        assertGiftError(["model.safetensors", "'model.transformer.blocks.0.ff_proj.weight'", "[64, 176]", "[176, 64]", "config.json"],
                        kind: .mismatch) { _ = try ModelFolder.load(dir) }
    }

    func testUnexpectedTensor() throws {
        let (dir, c, p) = try tinyFolder()
        try rewriteWeights(dir, c, p) { $0.append(SafetensorsWriteEntry(name: "model.transformer.extra.bias", shape: [2], values: [1, 2])) }
        assertGiftError(["model.safetensors", "unexpected", "'model.transformer.extra.bias'"], kind: .mismatch) {
            _ = try ModelFolder.load(dir)
        }
    }

    func testNonFloatTensor() throws {
        let (dir, c, p) = try tinyFolder()
        let layout = ParameterLayout(c)
        // Rewrite by hand with ln_f stored as I32.
        var header: [String] = [], data: [UInt8] = []
        for t in layout.tensors {
            let dtype = t.name == "model.transformer.ln_f.weight" ? "I32" : "F32"
            header.append(#""\#(t.name)":{"dtype":"\#(dtype)","shape":[\#(t.shape.map(String.init).joined(separator: ","))],"data_offsets":[\#(data.count),\#(data.count + 4 * t.count)]}"#)
            for j in 0..<t.count { withUnsafeBytes(of: p[t.offset + j].bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        write(raw("{" + header.joined(separator: ",") + "}", data), "model/model.safetensors")
        assertGiftError(["model.safetensors", "'model.transformer.ln_f.weight'", "dtype I32"]) { _ = try ModelFolder.load(dir) }
    }

    func testBadShardName() throws {
        let (dir, _, _) = try tinyFolder()
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        try Data(#"{"metadata":{},"weight_map":{"model.transformer.wte.weight":"../evil.safetensors"}}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        assertGiftError(["model.safetensors.index.json", "'model.transformer.wte.weight'", "'../evil.safetensors'", "not a plain file name"],
                        kind: .format) { _ = try ModelFolder.load(dir) }
        try Data(#"{"metadata":{},"weight_map":{"w":"sub/x.safetensors"}}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        assertGiftError(["'sub/x.safetensors'", "not a plain file name"]) { _ = try ModelFolder.load(dir) }
    }

    func testBadIndex() throws {
        let (dir, _, _) = try tinyFolder()
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        let index = URL(fileURLWithPath: dir + "/model.safetensors.index.json")
        try Data(#"{"metadata":{}}"#.utf8).write(to: index)
        assertGiftError(["model.safetensors.index.json", "missing field 'weight_map'"]) { _ = try ModelFolder.load(dir) }
        try Data(#"{"weight_map":{"w":3}}"#.utf8).write(to: index)
        assertGiftError(["model.safetensors.index.json", "'w'", "not a string"]) { _ = try ModelFolder.load(dir) }
        try Data("not json".utf8).write(to: index)
        assertGiftError(["model.safetensors.index.json", "not valid JSON"]) { _ = try ModelFolder.load(dir) }
        try Data(#"{"weight_map":{"model.transformer.wte.weight":"model-00001-of-00002.safetensors"}}"#.utf8).write(to: index)
        assertGiftError([dir + "/model-00001-of-00002.safetensors", "no such file"], kind: .io) { _ = try ModelFolder.load(dir) }
    }

    func testShardMissingMappedTensor() throws {
        let (c, p) = try tiny()
        let dir = tmp + "/sh"
        try ModelFolder.save(dir, config: c, parameters: p, maxShardBytes: 100_000)
        // Point ln_f at a shard that does not hold it.
        let indexURL = URL(fileURLWithPath: dir + "/model.safetensors.index.json")
        var index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var map = try XCTUnwrap(index["weight_map"] as? [String: String])
        let owner = try XCTUnwrap(map["model.transformer.ln_f.weight"])
        let other = try XCTUnwrap(Set(map.values).subtracting([owner]).sorted().first)
        map["model.transformer.ln_f.weight"] = other
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        assertGiftError(["model.safetensors.index.json", "'model.transformer.ln_f.weight'", other]) { _ = try ModelFolder.load(dir) }
    }

    // MARK: robustness

    /// Random byte flips and truncations of a valid file: reading either succeeds or throws a GiftError.
    func testCorruptedFilesNeverCrash() throws {
        let path = tmp + "/fuzz.safetensors"
        try SafetensorsFile.write(path: path, tensors: [
            SafetensorsWriteEntry(name: "a", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
            SafetensorsWriteEntry(name: "b", shape: [4], dtype: .BF16, values: [0.5, -1, 2, 3]),
            SafetensorsWriteEntry(name: "c", shape: [], values: [7]),
        ], metadata: ["format": "pt"])
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        let rng = CounterRNG(2024, 7)
        var ok = 0, failed = 0
        for it in 0..<300 {
            var d = good
            let r = rng.bits(UInt64(it))
            if r & 3 == 0 {
                d = d.prefix(Int((r >> 8) % UInt64(good.count)))
            } else {
                let pos = Int((r >> 8) % UInt64(good.count))
                d[pos] ^= UInt8(truncatingIfNeeded: (r >> 40) | 1)
            }
            do {
                let f = try SafetensorsFile.parse(d, path: "fuzz-\(it)")
                for name in f.tensors.keys {
                    do { _ = try f.floats(name) } catch is GiftError {}
                }
                ok += 1
            } catch let e as GiftError {
                XCTAssertTrue(e.message.hasPrefix("fuzz-\(it): "), e.message)
                failed += 1
            }
        }
        XCTAssertGreaterThan(failed, 0)
        XCTAssertEqual(ok + failed, 300)
    }
}
