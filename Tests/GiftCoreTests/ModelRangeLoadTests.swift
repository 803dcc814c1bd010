import Foundation
import XCTest
@testable import GiftCore

/// `ModelFolder.loadRange`: a rank's slice of the flat buffer, read from only the bytes it needs, equal bit
/// for bit to the same slice of the full `ModelFolder.load`, with the full loader's checks and errors.
final class ModelRangeLoadTests: XCTestCase {
    /// The mini preset (~0.8 M parameters, 38 tensors) with random values, saved as `dtype`, sharded when
    /// `maxShardBytes` is given.
    func makeFolder(_ dir: URL, dtype: SafetensorsDType, maxShardBytes: Int?) throws -> (ModelConfig, FloatBuffer) {
        let c = try ModelConfig.preset("mini")
        let p = FloatBuffer(randomFloats(ParameterLayout(c).count, seed: 11))
        try ModelFolder.save(dir.path, config: c, parameters: p, dtype: dtype, maxShardBytes: maxShardBytes)
        return (c, p)
    }

    func weightFiles(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
    }

    /// `slice` equals `full[range]` bit for bit.
    func assertSlice(_ slice: FloatBuffer, _ full: FloatBuffer, _ range: Range<Int>, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(slice.count, range.count, what, file: file, line: line)
        guard slice.count == range.count, !range.isEmpty else { return }
        XCTAssertEqual(memcmp(slice.pointer, full.pointer + range.lowerBound, range.count * 4), 0, what, file: file, line: line)
    }

    /// Every rank split for 1 to 4 ranks, concatenated, is the full load; so are ranges that start and
    /// end inside tensors, single elements and empty ranges.
    func checkRanges(_ dir: URL) throws {
        let (config, full) = try ModelFolder.load(dir.path)
        let n = full.count
        for parts in 1...4 {
            let joined = FloatBuffer(count: n)
            for r in shardRanges(count: n, parts: parts) {
                let (c, slice) = try ModelFolder.loadRange(dir.path, range: r)
                XCTAssertEqual(c, config)
                XCTAssertEqual(slice.count, r.count)
                joined.pointer.advanced(by: r.lowerBound).update(from: slice.pointer, count: r.count)
            }
            XCTAssertEqual(memcmp(joined.pointer, full.pointer, n * 4), 0, "\(parts) ranks concatenated")
        }
        let layout = ParameterLayout(config)
        let q = layout.blocks[1].q, mid = layout.tensors[7]
        var ranges: [Range<Int>] = [0..<0, n..<n, 0..<1, (n - 1)..<n, (q + 5)..<(q + 6),
                                    (mid.offset + 3)..<(mid.offset + mid.count - 3),       // inside one tensor
                                    (q - 17)..<(layout.blocks[2].q + 31)]                  // across many
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<12 {
            let a = Int.random(in: 0...n, using: &rng), b = Int.random(in: 0...n, using: &rng)
            ranges.append(min(a, b)..<max(a, b))
        }
        for r in ranges {
            let (_, slice) = try ModelFolder.loadRange(dir.path, range: r)
            assertSlice(slice, full, r, "range \(r)")
        }
    }

    func testBF16ShardedRangesEqualFullLoad() throws {
        let dir = try temporaryDirectory(self)
        let (_, source) = try makeFolder(dir, dtype: .BF16, maxShardBytes: 300_000)
        XCTAssertGreaterThanOrEqual(weightFiles(dir).count, 4, "sharded into several files")
        try checkRanges(dir)
        // Independent of the full loader: the bf16 rounding of the source.
        let (_, slice) = try ModelFolder.loadRange(dir.path, range: 1000..<300_000)
        for i in stride(from: 0, to: slice.count, by: 37) { XCTAssertEqual(slice[i], BFloat16.round(source[1000 + i])) }
    }

    func testF32SingleFileRangesEqualFullLoad() throws {
        let dir = try temporaryDirectory(self)
        let (_, source) = try makeFolder(dir, dtype: .F32, maxShardBytes: nil)
        XCTAssertEqual(weightFiles(dir), ["model.safetensors"])
        try checkRanges(dir)
        let r = 12_345..<600_001
        let (_, slice) = try ModelFolder.loadRange(dir.path, range: r)
        assertSlice(slice, source, r, "f32 is stored exactly")
    }

    /// F16 shards (written by the reference safetensors package) read through the same path.
    func testF16ShardsFromPython() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeFolder(dir, dtype: .F32, maxShardBytes: 1_000_000)
        let py = """
        import sys, glob
        from safetensors.numpy import load_file, save_file
        for p in glob.glob(sys.argv[1] + "/model-*.safetensors"):
            save_file({k: v.astype("float16") for k, v in load_file(p).items()}, p, metadata={"format": "pt"})
        """
        let r = try runPython(py, [dir.path])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python safetensors missing: launch/test.sh installs it")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try SafetensorsFile.read(path: dir.appendingPathComponent(weightFiles(dir)[0]).path)
                        .tensors.values.first?.dtype, .F16)
        try checkRanges(dir)
    }

    /// A shard cut short is refused before anything is read, naming the file and the tensor past its
    /// end, by every rank (also one whose range lies in another shard), with the full loader's message.
    func testTruncatedShardIsNamed() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeFolder(dir, dtype: .BF16, maxShardBytes: 300_000)
        let shard = dir.appendingPathComponent(weightFiles(dir)[1]).path
        let size = try FileManager.default.attributesOfItem(atPath: shard)[.size] as! Int
        XCTAssertEqual(truncate(shard, off_t(size - 100)), 0)
        let n = ParameterLayout(try ModelConfig.preset("mini")).count
        let fullError = try XCTUnwrap(loadError { _ = try ModelFolder.load(dir.path) })
        for r in [0..<10, (n - 10)..<n, 0..<n] {
            let e = try XCTUnwrap(loadError { _ = try ModelFolder.loadRange(dir.path, range: r) }, "range \(r)")
            XCTAssertTrue(e.message.contains(shard), e.message)
            XCTAssertTrue(e.message.contains("extend past the end of the file"), e.message)
            XCTAssertEqual(e, fullError)
        }
    }

    /// Folder problems give the full loader's errors: wrong config for the weights, an extra tensor, a
    /// missing shard, an index naming a shard without the tensor, a range outside the model.
    func testErrorsMatchFullLoad() throws {
        let root = try temporaryDirectory(self)
        func fresh(_ name: String) throws -> URL {
            let d = root.appendingPathComponent(name)
            _ = try makeFolder(d, dtype: .BF16, maxShardBytes: 300_000)
            return d
        }
        func same(_ d: URL, _ expect: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let full = try XCTUnwrap(loadError { _ = try ModelFolder.load(d.path) }, file: file, line: line)
            let ranged = try XCTUnwrap(loadError { _ = try ModelFolder.loadRange(d.path, range: 0..<5) }, file: file, line: line)
            XCTAssertEqual(ranged, full, file: file, line: line)
            XCTAssertTrue(ranged.message.contains(expect), ranged.message, file: file, line: line)
        }
        let wrongConfig = try fresh("config")
        var c = try ModelConfig.preset("mini"); c.mlpHiddenSize = 320
        try c.jsonData().write(to: wrongConfig.appendingPathComponent("config.json"))
        try same(wrongConfig, "needs [320, 128]")

        let extra = try fresh("extra")
        let last = extra.appendingPathComponent(weightFiles(extra).filter { $0.hasPrefix("model-") }.last!).path
        let f = try SafetensorsFile.read(path: last)
        try SafetensorsFile.write(path: last, tensors: try f.names.map {
            SafetensorsWriteEntry(name: $0, shape: try f.tensor($0).shape, dtype: .BF16, values: try f.floats($0))
        } + [SafetensorsWriteEntry(name: "lm_head.bias", shape: [2], values: [1, 2])])
        try same(extra, "unexpected tensors not in the LLaDA layout")

        let missing = try fresh("missing")
        try FileManager.default.removeItem(at: missing.appendingPathComponent(weightFiles(missing)[2]))
        try same(missing, "no such file")

        let remapped = try fresh("remapped")
        let indexURL = remapped.appendingPathComponent(ModelFolder.indexFile)
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as! [String: Any]
        var map = index["weight_map"] as! [String: String]
        map["model.transformer.wte.weight"] = weightFiles(remapped).filter { $0.hasPrefix("model-") }.last!
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        try same(remapped, "has no tensor 'model.transformer.wte.weight'")

        let n = ParameterLayout(try ModelConfig.preset("mini")).count
        let e = try XCTUnwrap(loadError { _ = try ModelFolder.loadRange(remapped.path, range: 0..<(n + 1)) })
        XCTAssertEqual(e.kind, .format, "the folder is checked first")
        let good = try fresh("good")
        let outside = try XCTUnwrap(loadError { _ = try ModelFolder.loadRange(good.path, range: (n - 1)..<(n + 1)) })
        XCTAssertEqual(outside.kind, .usage)
        XCTAssertTrue(outside.message.contains("outside the model's \(n) parameters"), outside.message)
    }

    func loadError(_ body: () throws -> Void) -> GiftError? {
        do { try body(); return nil } catch let e as GiftError { return e } catch {
            XCTFail("not a GiftError: \(error)"); return nil
        }
    }
}

/// 54.8 M parameters (219 MB as fp32), written as shards of `dtype` (6 for bf16, like LLaDA-8B's folder) by
/// the streaming writer from the ranged initialisation, 8 ranges at a time: the writer never holds it all.
func makeLargeModelFolder(_ dir: URL, dtype: SafetensorsDType) throws -> ModelConfig {
    let c = ModelConfig(dModel: 512, nHeads: 8, nLayers: 16, mlpHiddenSize: 1376, vocabSize: 4096, maskTokenId: 4095)
    let layout = ParameterLayout(c)
    let w = try StreamingModelWriter(dir: dir.path, config: c, dtype: dtype, maxShardBytes: 20_000_000 * dtype.size / 2)
    for r in shardRanges(count: layout.count, parts: 8) {
        let part = layout.initialize(seed: 9, range: r)
        try w.append(part.pointer, count: part.count)
    }
    try w.finish()
    return c
}

/// The acceptance point "loading a sharded bf16 folder: peak RSS during load at most 1.2x the final
/// sharded state", measured in `gift load-check` child processes (one per rank, as on a cluster).
final class RangeLoadMemoryTests: XCTestCase {
    func makeLargeFolder(_ dir: URL) throws -> ModelConfig { try makeLargeModelFolder(dir, dtype: .BF16) }

    func loadCheck(_ dir: URL, rank: Int, ranks: Int, full: Bool = false) throws -> [String: Any] {
        let r = try runGift(["load-check", dir.path, "--rank", "\(rank)", "--ranks", "\(ranks)"] + (full ? ["--full"] : []))
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.stdout)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
    }

    func testPeakDuringRangedLoadIsTheShard() throws {
        let dir = try temporaryDirectory(self).appendingPathComponent("model")
        let c = try makeLargeFolder(dir)
        let n = ParameterLayout(c).count
        let shards = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("model-") }
        XCTAssertEqual(shards.count, 6)
        // Allowance over 1.2x: the 2 MiB bf16 conversion buffer plus 2 MiB for the parsed headers (6 of
        // ~16 KB of JSON, as dictionaries) and malloc's arenas; the process's own start is before `rss_before`.
        let allowance = 4 << 20
        var metadataBytes = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            metadataBytes += name.hasSuffix(".safetensors")
                ? 8 + Int(data.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) : data.count
        }
        for ranks in [2, 4] {
            for rank in 0..<ranks {
                let o = try loadCheck(dir, rank: rank, ranks: ranks)
                let range = shardRanges(count: n, parts: ranks)[rank]
                XCTAssertEqual(o["floats"] as? Int, range.count)
                let bytes = try XCTUnwrap(o["bytes"] as? Int), peak = try XCTUnwrap(o["peak_increase"] as? Int)
                XCTAssertEqual(o["peak_reset"] as? Bool, true, "VmHWM could not be reset: the peak is the process's")
                XCTAssertLessThanOrEqual(Double(peak), 1.2 * Double(bytes) + Double(allowance),
                                         "rank \(rank) of \(ranks): \(o)")
                XCTAssertGreaterThanOrEqual(peak, bytes, "the slice itself is resident: \(o)")
                // Only the range's bytes are read: the read calls' total is the weight bytes it needs
                // (2 per float) plus the headers, config and index, plus 64 KiB for reading /proc files.
                let needed = try XCTUnwrap(o["file_bytes_read"] as? Int), read = try XCTUnwrap(o["read_call_bytes"] as? Int)
                XCTAssertEqual(needed, 2 * range.count)
                XCTAssertGreaterThanOrEqual(read, needed, "\(o)")
                XCTAssertLessThanOrEqual(read, needed + metadataBytes + (64 << 10), "\(o)")
            }
        }
        // The measurement sees a whole-model load: the full loader's peak exceeds the fp32 model.
        let whole = try loadCheck(dir, rank: 0, ranks: 4, full: true)
        XCTAssertGreaterThan(try XCTUnwrap(whole["peak_increase"] as? Int), n * 4, "\(whole)")
    }
}
