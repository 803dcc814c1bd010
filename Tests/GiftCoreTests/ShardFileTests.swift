import CZstd
import Foundation
import XCTest
@testable import GiftCore

final class ShardFileTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try temporaryDirectory(self) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Floats with awkward bit patterns mixed in: NaNs with payloads, ±Inf, denormals, ±0, extremes.
    func specialFloats(_ n: Int, seed: UInt64) -> [Float] {
        var f = randomFloats(n, seed: seed, scale: 0.02)
        let bits: [UInt32] = [0x7FC0_0000, 0x7FC0_0001, 0xFFFF_FFFF, 0x7F80_0001, 0x7F80_0000, 0xFF80_0000,
                              0x0000_0001, 0x807F_FFFF, 0x8000_0000, 0x0000_0000, 0x7F7F_FFFF, 0x0080_0000]
        for (k, b) in bits.enumerated() where k * 37 % max(n, 1) < n && n > 0 {
            f[(k * 7919) % n] = Float(bitPattern: b)
        }
        return f
    }

    func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        XCTAssertTrue(a.map(\.bitPattern) == b.map(\.bitPattern), "\(what): bits differ", file: file, line: line)
    }

    /// Writes `arrays` as float sections (named f0, f1, ...) plus two byte sections.
    @discardableResult
    func writeShard(_ p: String, _ arrays: [[Float]], bytes: [(String, Data)], options: ShardFile.Options) throws -> ShardWriteResult {
        var holders = arrays.map { FloatBuffer($0) }
        defer { holders.removeAll() }
        let floats = holders.enumerated().map { (name: "f\($0.offset)", pointer: UnsafePointer($0.element.pointer), count: $0.element.count) }
        return try ShardFile.writeDetailed(path: p, floats: floats, bytes: bytes.map { (name: $0.0, data: $0.1) }, options: options)
    }

    /// A small valid shard (~20 KB) and its expected contents.
    func smallShard(_ p: String) throws -> (ShardWriteResult, [[Float]], Data) {
        let a = randomFloats(4000, seed: 3, scale: 0.02), b = specialFloats(1000, seed: 4)
        let json = Data(#"{"step": 12, "lr": 0.001, "note": "small"}"#.utf8)
        let r = try writeShard(p, [a, b], bytes: [("meta", json)], options: .init())
        return (r, [a, b], json)
    }

    func assertGiftError(_ p: String, _ what: String, contains: [String] = [], kind: GiftError.Kind? = nil,
                         file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(what): no error", file: file, line: line)
        } catch let e as GiftError {
            XCTAssertTrue(e.message.contains(p), "\(what): message does not name the file: \(e.message)", file: file, line: line)
            for c in contains {
                XCTAssertTrue(e.message.contains(c), "\(what): message lacks '\(c)': \(e.message)", file: file, line: line)
            }
            if let k = kind { XCTAssertEqual(e.kind, k, "\(what): \(e.message)", file: file, line: line) }
        } catch {
            XCTFail("\(what): not a GiftError: \(error)", file: file, line: line)
        }
    }

    func writeBytes(_ bytes: [UInt8], _ p: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: p)) }

    // MARK: hashing

    func testXXH64KnownValuesAndZstdChecksum() throws {
        XCTAssertEqual(XXH64.hash([UInt8]()), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXH64.hash(Array("a".utf8)), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXH64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        // A zstd frame's content checksum is the low 32 bits of XXH64(content): compare every tail path.
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        for n in Array(0..<70) + [127, 128, 129, 255, 300] {
            let src = Array(data[0..<n])
            let cap = ZSTD_compressBound(n)
            var dst = [UInt8](repeating: 0, count: cap)
            let cctx = ZSTD_createCCtx()!
            defer { ZSTD_freeCCtx(cctx) }
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
            let c = src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { ZSTD_compress2(cctx, $0.baseAddress, cap, s.baseAddress, n) } }
            XCTAssertEqual(ZSTD_isError(c), 0)
            let stored = UInt32(dst[c - 4]) | UInt32(dst[c - 3]) << 8 | UInt32(dst[c - 2]) << 16 | UInt32(dst[c - 1]) << 24
            XCTAssertEqual(UInt32(truncatingIfNeeded: XXH64.hash(src)), stored, "n=\(n)")
            // Streaming in odd pieces gives the one-shot value.
            var h = XXH64()
            var i = 0, step = 1
            while i < n { let m = min(step, n - i); h.add(Array(src[i..<(i + m)])); i += m; step = step % 13 + 5 }
            XCTAssertEqual(h.digest, XXH64.hash(src), "n=\(n)")
        }
    }

    // MARK: round trips

    func testRoundTripBitIdentical() throws {
        let json = Data(#"{"step": 7, "config": {"lr": 3e-4}}"#.utf8)
        let blob = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        for level in [1, 3, 19] {
            let sizes = level == 19 ? [0, 1, 7, 3000] : [0, 1, 7, 100_003]
            let arrays = sizes.enumerated().map { specialFloats($0.element, seed: UInt64($0.offset + 10 * level)) }
            for shuffle in [true, false] {
                for workers in [0, 2] {
                    let what = "level \(level) shuffle \(shuffle) workers \(workers)"
                    let p = path("rt-\(level)-\(shuffle)-\(workers).shard")
                    let w = try writeShard(p, arrays, bytes: [("meta.json", json), ("empty", Data()), ("blob", blob)],
                                           options: .init(level: level, workers: workers, shuffle: shuffle))
                    let size = try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int
                    XCTAssertEqual(w.fileBytes, size, what)
                    XCTAssertEqual(w.checksum, try ShardFile.fileChecksum(path: p), what)
                    XCTAssertEqual(w.rawBytes, 4 * sizes.reduce(0, +) + json.count + blob.count, what)
                    let c = try ShardFile.read(path: p, expectedSize: w.fileBytes, expectedChecksum: w.checksum)
                    XCTAssertEqual(c.sections, w.sections, what)
                    XCTAssertEqual(c.sections.map(\.name), ["f0", "f1", "f2", "f3", "meta.json", "empty", "blob"])
                    for (k, a) in arrays.enumerated() {
                        assertBitIdentical(try c.floats("f\(k)"), a, "\(what) f\(k)")
                        XCTAssertEqual(c.section("f\(k)")?.shuffled, shuffle && !a.isEmpty)
                        let buf = FloatBuffer(count: a.count)
                        try c.copyFloats("f\(k)", into: buf.pointer, count: a.count)
                        assertBitIdentical(buf.array, a, "\(what) copy f\(k)")
                    }
                    XCTAssertEqual(try c.bytes("meta.json"), json, what)
                    XCTAssertEqual(try c.bytes("empty"), Data(), what)
                    XCTAssertEqual(try c.bytes("blob"), blob, what)
                }
            }
        }
    }

    func testEmptyShardZerosAndAccessErrors() throws {
        let p = path("empty.shard")
        let w = try ShardFile.write(path: p, floats: [], bytes: [], options: .init())
        XCTAssertEqual(w.fileBytes, 28)
        XCTAssertEqual(try ShardFile.read(path: p, expectedChecksum: w.checksum).sections, [])

        // All-zero moments (step 0) compress enormously and must still be accepted.
        let z = FloatBuffer(count: 1 << 22)
        let pz = path("zeros.shard")
        let wz = try ShardFile.writeDetailed(path: pz, floats: [(name: "m", pointer: UnsafePointer(z.pointer), count: z.count)],
                                     options: .init(level: 3))
        XCTAssertGreaterThan(wz.sections[0].compressionRatio, 1000)
        let cz = try ShardFile.read(path: pz)
        XCTAssertEqual(try cz.floats("m").count, z.count)
        XCTAssertTrue(try cz.floats("m").allSatisfy { $0.bitPattern == 0 })

        let pa = path("a.shard")
        try writeShard(pa, [[1, 2, 3]], bytes: [("meta", Data([1]))], options: .init())
        let c = try ShardFile.read(path: pa)
        assertGiftError(pa, "missing", contains: ["'nope'", "'f0'"]) { _ = try c.floats("nope") }
        assertGiftError(pa, "kind floats") { _ = try c.bytes("f0") }
        assertGiftError(pa, "kind bytes") { _ = try c.floats("meta") }
        let buf = FloatBuffer(count: 4)
        assertGiftError(pa, "count", contains: ["3 floats", "expected 4"]) { try c.copyFloats("f0", into: buf.pointer, count: 4) }
        XCTAssertTrue(ShardFile.ratioSummary(c.sections).hasPrefix("f0 "))
    }

    /// The way a checkpoint writer calls it: unlabeled tuples, the plain (fileBytes, rawBytes, checksum) result.
    func testCheckpointStyleCall() throws {
        let p = path("rank.shard")
        let n = 1000
        let snap = FloatBuffer(randomFloats(3 * n, seed: 5, scale: 0.02))
        let rankState = try JSONSerialization.data(withJSONObject: ["rank": 0, "world_size": 2, "range": [0, n]])
        var opts = ShardFile.Options(); opts.level = 5; opts.workers = 0
        let r: Result<(fileBytes: Int, rawBytes: Int, checksum: UInt64), Error> = Result {
            try ShardFile.write(path: p, floats: [("params", UnsafePointer(snap.pointer), n), ("m", UnsafePointer(snap.pointer + n), n),
                                                  ("v", UnsafePointer(snap.pointer + 2 * n), n)],
                                bytes: [("rank_state", rankState)], options: opts)
        }
        let w = try r.get()
        XCTAssertEqual(w.rawBytes, 12 * n + rankState.count)
        let c = try ShardFile.read(path: p, expectedSize: w.fileBytes, expectedChecksum: w.checksum)
        let out = FloatBuffer(count: 3 * n)
        try c.copyFloats("params", into: out.pointer, count: n)
        try c.copyFloats("m", into: out.pointer + n, count: n)
        try c.copyFloats("v", into: out.pointer + 2 * n, count: n)
        XCTAssertEqual(out.array.map(\.bitPattern), snap.array.map(\.bitPattern))
        XCTAssertEqual(try c.bytes("rank_state"), rankState)
        XCTAssertEqual(c.checksum, w.checksum)
        XCTAssertEqual(c.fileBytes, w.fileBytes)
        let summary = ShardFile.ratioSummary(c.sections)
        XCTAssertTrue(summary.hasPrefix("params ") && summary.contains(", m ") && summary.contains(", v "), summary)
    }

    func testWriteRejectsBadArguments() throws {
        let p = path("bad.shard")
        let x: [Float] = [1, 2]
        x.withUnsafeBufferPointer { b in
            let f = (name: "a", pointer: b.baseAddress!, count: 2)
            assertGiftError(p, "dup", contains: ["'a'"]) { try ShardFile.write(path: p, floats: [f], bytes: [(name: "a", data: Data())]) }
            assertGiftError(p, "empty name") { try ShardFile.write(path: p, floats: [(name: "", pointer: b.baseAddress!, count: 2)]) }
            assertGiftError(p, "negative") { try ShardFile.write(path: p, floats: [(name: "n", pointer: b.baseAddress!, count: -1)]) }
            assertGiftError(p, "level") { try ShardFile.write(path: p, floats: [f], options: .init(level: 99)) }
            assertGiftError(p, "workers") { try ShardFile.write(path: p, floats: [f], options: .init(workers: -1)) }
            let missing = path("no/such/dir/x.shard")
            assertGiftError(missing, "no dir", kind: .io) { try ShardFile.write(path: missing, floats: [f]) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
    }

    // MARK: compression

    func testShuffleCompressesBetter() throws {
        let n = 1 << 20
        let values = randomFloats(n, seed: 42, scale: 0.02)
        let buf = FloatBuffer(values)
        var ratios: [Bool: Double] = [:]
        for shuffle in [true, false] {
            let p = path("ratio-\(shuffle).shard")
            let w = try ShardFile.writeDetailed(path: p, floats: [(name: "params", pointer: UnsafePointer(buf.pointer), count: n)],
                                        options: .init(level: 3, shuffle: shuffle))
            ratios[shuffle] = w.sections[0].compressionRatio
        }
        print("ShardFile: 1M normal(0, 0.02) floats at level 3: shuffled \(String(format: "%.3f", ratios[true]!))x, "
              + "plain \(String(format: "%.3f", ratios[false]!))x")
        XCTAssertGreaterThan(ratios[true]!, ratios[false]!)
        XCTAssertGreaterThan(ratios[true]!, 1.1)
    }

    /// Throughput on 16M floats; only with GIFT_SHARD_BENCH=1 (it takes a few seconds).
    func testBenchmark16M() throws {
        guard ProcessInfo.processInfo.environment["GIFT_SHARD_BENCH"] == "1" else { throw XCTSkip("set GIFT_SHARD_BENCH=1") }
        let n = 16 << 20
        let r = CounterRNG(9, 77)
        let buf = FloatBuffer(count: n)
        for i in 0..<n { buf[i] = Float(0.02 * r.normal(UInt64(i))) }
        let mb = Double(4 * n) / 1e6
        for (workers, shuffle) in [(0, true), (2, true), (0, false), (2, false)] {
            let p = path("bench-\(workers)-\(shuffle).shard")
            let t0 = Date()
            let w = try ShardFile.writeDetailed(path: p, floats: [(name: "params", pointer: UnsafePointer(buf.pointer), count: n)],
                                        options: .init(level: 3, workers: workers, shuffle: shuffle))
            let t1 = Date()
            let c = try ShardFile.read(path: p, expectedSize: w.fileBytes, expectedChecksum: w.checksum)
            let t2 = Date()
            let out = FloatBuffer(count: n)
            try c.copyFloats("params", into: out.pointer, count: n)
            XCTAssertEqual(FNV1a.of(out.pointer, count: n), FNV1a.of(buf.pointer, count: n))
            let wt = t1.timeIntervalSince(t0), rt = t2.timeIntervalSince(t1)
            print(String(format: "ShardFile bench 16M floats level 3 workers %d shuffle %@: ratio %.3fx, write %.0f MB/s (%.2fs), read %.0f MB/s (%.2fs)",
                         workers, "\(shuffle)", w.sections[0].compressionRatio, mb / wt, wt, mb / rt, rt))
            try FileManager.default.removeItem(atPath: p)
        }
        let big = FloatBuffer(count: 64 << 20)
        let t0 = Date()
        let h = XXH64.hash(UnsafeRawBufferPointer(start: big.pointer, count: 4 * big.count))
        print(String(format: "XXH64: %.0f MB/s (%llx)", Double(4 * big.count) / 1e6 / Date().timeIntervalSince(t0), h))
    }

    // MARK: corruption

    func testCorruptionCases() throws {
        let p = path("good.shard")
        let (w, _, _) = try smallShard(p)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        let headerLength = Int(ShardFile.readLE(good, 12, as: UInt32.self))
        let dataStart = 16 + headerLength
        let q = path("bad.shard")
        func check(_ bytes: [UInt8], _ what: String, contains: [String] = [], kind: GiftError.Kind? = .format,
                   expectedSize: Int? = nil, expectedChecksum: UInt64? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
            try writeBytes(bytes, q)
            assertGiftError(q, what, contains: contains, kind: kind, file: file, line: line) {
                _ = try ShardFile.read(path: q, expectedSize: expectedSize, expectedChecksum: expectedChecksum)
            }
        }
        func flipped(_ at: Int, _ mask: UInt8 = 0x40) -> [UInt8] { var b = good; b[at] ^= mask; return b }

        // Truncation anywhere.
        for cut in [0, 5, 15, 16, 27, 40, dataStart - 1, dataStart, dataStart + 10, good.count - 1] {
            try check(Array(good[0..<cut]), "truncated at \(cut)")
        }
        try check(Array(good[0..<(good.count - 1)]), "truncated vs manifest", contains: ["manifest says"], kind: .mismatch,
                  expectedSize: good.count)
        // Trailing garbage.
        try check(good + [0], "one trailing byte", contains: ["trailing garbage"])
        try check(good + Array(repeating: 0xAB, count: 1000), "trailing garbage", contains: ["trailing garbage"])
        // Flips: magic, version, header length, header fields, header hash, compressed data (first, middle, last byte).
        try check(flipped(0), "magic", contains: ["magic"])
        try check(flipped(8, 0x01), "version 0", contains: ["version 0"])
        try check(flipped(8, 0x02), "version 3", contains: ["newer gift", "version 3", "version 1"])
        try check(flipped(12, 0x01), "header length")
        try check(flipped(14, 0x01), "header length huge", contains: ["header length"])
        for at in [16, 18, 21, 25, 30, dataStart - 9, dataStart - 1] {
            try check(flipped(at), "header byte \(at)", contains: ["header"])
        }
        for at in [dataStart, dataStart + 4, dataStart + 100, (dataStart + good.count) / 2, good.count - 5, good.count - 1] {
            try check(flipped(at), "data byte \(at)", contains: ["corrupted"])
        }
        // The same file but not the one the manifest describes.
        try check(good, "checksum", contains: ["checksum", "expected"], kind: .mismatch, expectedChecksum: w.checksum ^ 1)
        try check(good, "size", contains: ["manifest says"], kind: .mismatch, expectedSize: good.count + 1)
        XCTAssertNoThrow(try ShardFile.read(path: p, expectedSize: good.count, expectedChecksum: w.checksum))

        // A newer version with an otherwise consistent header names both versions.
        let frame = zstdFrame(Array(repeating: 7, count: 100))
        let entry = ShardFile.Entry(name: "x", kind: 1, flags: 0, count: 100, rawBytes: 100, compressedBytes: 0, frameHash: 0)
        try check(ShardFile.assemble([entry], frames: [frame], version: 2), "newer", contains: ["newer gift", "version 2", "version 1"])
        XCTAssertEqual(try { try writeBytes(ShardFile.assemble([entry], frames: [frame]), q); return try ShardFile.read(path: q).bytes("x") }(),
                       Data(repeating: 7, count: 100))

        // Headers that hash correctly but lie.
        func e(name: String = "x", kind: UInt8 = 1, flags: UInt8 = 0, count: UInt64 = 100, raw: UInt64 = 100) -> ShardFile.Entry {
            ShardFile.Entry(name: name, kind: kind, flags: flags, count: count, rawBytes: raw, compressedBytes: 0, frameHash: 0)
        }
        try check(ShardFile.assemble([e(), e()], frames: [frame, frame]), "duplicate", contains: ["two sections are named 'x'"])
        try check(ShardFile.assemble([e(kind: 9)], frames: [frame]), "kind", contains: ["unknown kind"])
        try check(ShardFile.assemble([e(flags: 1)], frames: [frame]), "shuffled bytes", contains: ["flags"])
        try check(ShardFile.assemble([e(count: UInt64.max, raw: UInt64.max)], frames: [frame]), "negative count", contains: ["count"])
        try check(ShardFile.assemble([e(kind: 0, count: 1 << 62, raw: 1 << 62)], frames: [frame]), "huge count", contains: ["count"])
        try check(ShardFile.assemble([e(count: 100, raw: 101)], frames: [frame]), "raw vs count", contains: ["raw length 101"])
        try check(ShardFile.assemble([e(count: 101, raw: 101)], frames: [frame]), "raw vs frame", contains: ["holds 100 bytes", "101"])
        try check(ShardFile.assemble([e(count: 1 << 38, raw: 1 << 38)], frames: [frame]), "ratio", contains: ["impossible"])
        // Consistent crafted headers are fine, including a shuffled empty float section.
        try writeBytes(ShardFile.assemble([e(kind: 0, count: 25, raw: 100), e(name: "z", kind: 0, flags: 1, count: 0, raw: 0)],
                                          frames: [frame, zstdFrame([])]), q)
        let crafted = try ShardFile.read(path: q)
        XCTAssertEqual(try crafted.floats("x").map(\.bitPattern), Array(repeating: 0x0707_0707, count: 25))
        XCTAssertEqual(try crafted.floats("z"), [])
        var beyond = e(); beyond.compressedBytes = UInt64(frame.count + 10); beyond.frameHash = XXH64.hash(frame)
        try check(ShardFile.assemble([beyond], frames: [frame], fixLengths: false), "beyond end", contains: ["past the end"])
        var short = e(); short.compressedBytes = UInt64(frame.count - 4); short.frameHash = XXH64.hash(Array(frame[0..<(frame.count - 4)]))
        try check(ShardFile.assemble([short], frames: [frame], fixLengths: false), "lengths do not sum", contains: ["trailing garbage"])
        var huge = e(); huge.compressedBytes = UInt64.max
        try check(ShardFile.assemble([huge], frames: [frame], fixLengths: false), "huge compressed length", contains: ["past the end"])
        // Frames that hash correctly but are not what the header says.
        try check(ShardFile.assemble([e()], frames: [zstdFrame(Array(repeating: 7, count: 100), contentSize: false)]),
                  "no content size", contains: ["content size"])
        try check(ShardFile.assemble([e()], frames: [zstdFrame(Array(repeating: 7, count: 100), checksum: false)]),
                  "no checksum", contains: ["no content checksum"])
        try check(ShardFile.assemble([e()], frames: [frame + frame]), "two frames", contains: ["section is"])
        try check(ShardFile.assemble([e()], frames: [Array(frame[0..<(frame.count - 2)])]), "cut frame")
        try check(ShardFile.assemble([e()], frames: [Array(repeating: 0x55, count: 40)]), "not zstd", contains: ["not a valid zstd frame"])
        // A data flip under an updated frame hash: zstd's content checksum still catches it.
        let text = Array((0..<2000).map { UInt8(truncatingIfNeeded: ($0 * 7919) % 251) })
        var f2 = zstdFrame(text)
        f2[f2.count / 2] ^= 0x10
        try check(ShardFile.assemble([e(count: 2000, raw: 2000)], frames: [f2]), "zstd checksum")
        // Not a file.
        assertGiftError(dir.path, "directory", kind: .io) { _ = try ShardFile.read(path: dir.path) }
        let missing = path("missing.shard")
        assertGiftError(missing, "missing", kind: .io) { _ = try ShardFile.read(path: missing) }
    }

    /// One zstd frame of `data` with the given frame options.
    func zstdFrame(_ data: [UInt8], contentSize: Bool = true, checksum: Bool = true) -> [UInt8] {
        let cctx = ZSTD_createCCtx()!
        defer { ZSTD_freeCCtx(cctx) }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, contentSize ? 1 : 0)
        var out: [UInt8]
        if contentSize {
            let cap = ZSTD_compressBound(data.count)
            out = [UInt8](repeating: 0, count: cap)
            let n = data.withUnsafeBytes { s in out.withUnsafeMutableBytes { ZSTD_compress2(cctx, $0.baseAddress, cap, s.baseAddress, data.count) } }
            precondition(ZSTD_isError(n) == 0)
            out.removeLast(cap - n)
        } else {
            // One-shot compression always knows the size; streaming without a pledge does not record it.
            out = [UInt8](repeating: 0, count: ZSTD_compressBound(data.count) + 64)
            let cap = out.count
            let n: Int = data.withUnsafeBytes { s in
                out.withUnsafeMutableBytes { o in
                    var inb = ZSTD_inBuffer(src: s.baseAddress, size: data.count, pos: 0)
                    var outb = ZSTD_outBuffer(dst: o.baseAddress, size: cap, pos: 0)
                    while ZSTD_compressStream2(cctx, &outb, &inb, ZSTD_e_end) != 0 {}
                    return outb.pos
                }
            }
            out.removeLast(cap - n)
        }
        return out
    }

    // MARK: fuzz

    enum Mutation: CustomStringConvertible {
        case flip(Int, UInt8), truncate(Int), append([UInt8])
        var description: String {
            switch self {
            case .flip(let at, let m): return "flip byte \(at) ^ \(m)"
            case .truncate(let n): return "truncate to \(n)"
            case .append(let b): return "append \(b.count) bytes"
            }
        }
    }

    func mutation(_ r: CounterRNG, _ i: Int, size: Int, flipsOnly: Bool = false, range: Range<Int>? = nil) -> Mutation {
        let k = UInt64(i) * 8
        let choice = flipsOnly ? 0 : Int(r.bits(k) % 10)
        switch choice {
        case 0..<7:
            let range = range ?? 0..<size
            let at = range.lowerBound + Int(r.bits(k + 1) % UInt64(range.count))
            return .flip(at, UInt8(1 + r.bits(k + 2) % 255))
        case 7, 8: return .truncate(Int(r.bits(k + 3) % UInt64(size)))
        default: return .append((0..<Int(1 + r.bits(k + 4) % 64)).map { UInt8(truncatingIfNeeded: r.bits(k + 5 + UInt64($0))) })
        }
    }

    func apply(_ m: Mutation, _ b: [UInt8]) -> [UInt8] {
        switch m {
        case .flip(let at, let mask): var c = b; c[at] ^= mask; return c
        case .truncate(let n): return Array(b[0..<n])
        case .append(let x): return b + x
        }
    }

    func testFuzzCorruptionAlwaysDetected() throws {
        let p = path("fuzz-good.shard")
        let (w, arrays, json) = try smallShard(p)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        XCTAssertGreaterThan(good.count, 15_000)
        XCTAssertLessThan(good.count, 25_000)
        let q = path("fuzz.shard")
        let r = CounterRNG(2024, 5)
        var kinds: [String: Int] = [:]
        for i in 0..<300 {
            let m = mutation(r, i, size: good.count)
            try writeBytes(apply(m, good), q)
            for expected in [true, false] {
                do {
                    let c = try ShardFile.read(path: q, expectedChecksum: expected ? w.checksum : nil)
                    // Without the manifest checksum, anything accepted must be exactly the original.
                    XCTAssertFalse(expected, "\(m): accepted despite the expected checksum")
                    assertBitIdentical(try c.floats("f0"), arrays[0], "\(m)")
                    assertBitIdentical(try c.floats("f1"), arrays[1], "\(m)")
                    XCTAssertEqual(try c.bytes("meta"), json)
                    XCTFail("\(m): corruption not detected without the expected checksum")
                } catch let e as GiftError {
                    XCTAssertTrue(e.message.contains(q), "\(m): \(e.message)")
                    if !expected { kinds[String(e.message.dropFirst(q.count + 2).prefix(24)), default: 0] += 1 }
                }
            }
        }
        print("ShardFile fuzz: errors seen (first words): \(kinds.sorted { $0.value > $1.value }.prefix(8))")
    }

    /// Flips inside the compressed data with the frame hash and header hash recomputed, so only zstd (content
    /// checksum, frame checks) and the decompression checks stand between the flip and the caller.
    func testFuzzZstdLayerCatchesDataFlips() throws {
        let a = randomFloats(3000, seed: 8, scale: 0.02)
        let text = Data((0..<6000).map { UInt8(truncatingIfNeeded: ($0 * 31) % 97 + 32) })
        let frames: [[UInt8]] = [
            try encodedFrame(a),
            zstdFrame([UInt8](text)),
        ]
        let entries = [
            ShardFile.Entry(name: "w", kind: 0, flags: 1, count: 3000, rawBytes: 12000, compressedBytes: 0, frameHash: 0),
            ShardFile.Entry(name: "t", kind: 1, flags: 0, count: 6000, rawBytes: 6000, compressedBytes: 0, frameHash: 0),
        ]
        let q = path("zfuzz.shard")
        try writeBytes(ShardFile.assemble(entries, frames: frames), q)
        let c0 = try ShardFile.read(path: q)
        assertBitIdentical(try c0.floats("w"), a, "clean")
        let r = CounterRNG(77, 1)
        var caught = 0, identical = 0
        for i in 0..<300 {
            let which = i % 2
            var f = frames
            f[which] = apply(mutation(r, i, size: f[which].count, flipsOnly: true), f[which])
            try writeBytes(ShardFile.assemble(entries, frames: f), q)
            do {
                let c = try ShardFile.read(path: q)
                assertBitIdentical(try c.floats("w"), a, "iteration \(i)")
                XCTAssertEqual(try c.bytes("t"), text, "iteration \(i)")
                identical += 1
            } catch let e as GiftError {
                XCTAssertTrue(e.message.contains(q), e.message)
                caught += 1
            }
        }
        print("ShardFile zstd-layer fuzz: \(caught) caught, \(identical) harmless")
        XCTAssertGreaterThan(caught, 250)
    }

    /// The frame ShardFile writes for shuffled floats `a`.
    func encodedFrame(_ a: [Float]) throws -> [UInt8] {
        let p = path("frame-src.shard")
        let w = try writeShard(p, [a], bytes: [], options: .init())
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        return Array(b[(b.count - w.sections[0].compressedBytes)...])
    }
}

extension ShardFile {
    /// A complete shard file from entries and their frames (frame lengths and hashes are filled in).
    /// For the tests that need files with particular (also invalid) contents.
    static func assemble(_ entries: [Entry], frames: [[UInt8]], version: UInt32 = formatVersion,
                         fixLengths: Bool = true) -> [UInt8] {
        var entries = entries
        if fixLengths {
            for i in entries.indices {
                entries[i].compressedBytes = UInt64(frames[i].count)
                entries[i].frameHash = XXH64.hash(frames[i])
            }
        }
        var file = encodePrefixAndHeader(entries, version: version)
        for f in frames { file += f }
        return file
    }
}
