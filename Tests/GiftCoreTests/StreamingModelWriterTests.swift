import Foundation
import XCTest
@testable import GiftCore

/// `StreamingModelWriter`: a model folder written tensor by tensor (or range by range) is the folder
/// `ModelFolder.save` writes, reads back through both loaders, and reads in the reference safetensors
/// package as the source values rounded to bf16 by torch.
final class StreamingModelWriterTests: XCTestCase {
    let config = try! ModelConfig.preset("mini")

    func source() -> FloatBuffer { FloatBuffer(randomFloats(ParameterLayout(config).count, seed: 5)) }

    func files(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    /// Writes `p` tensor by tensor.
    func writeByTensor(_ dir: URL, _ p: FloatBuffer, dtype: SafetensorsDType, maxShardBytes: Int) throws {
        let w = try StreamingModelWriter(dir: dir.path, config: config, dtype: dtype, maxShardBytes: maxShardBytes)
        for t in ParameterLayout(config).tensors {
            try w.write(name: t.name, shape: t.shape, values: p.pointer + t.offset, count: t.count)
        }
        try w.finish()
    }

    func assertSameFolder(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(files(a), files(b), file: file, line: line)
        for name in files(a) {
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(name)),
                           try Data(contentsOf: b.appendingPathComponent(name)), name, file: file, line: line)
        }
    }

    func testShardedBF16EqualsModelFolderSave() throws {
        let root = try temporaryDirectory(self), p = source()
        let streamed = root.appendingPathComponent("streamed"), saved = root.appendingPathComponent("saved")
        try writeByTensor(streamed, p, dtype: .BF16, maxShardBytes: 300_000)
        try ModelFolder.save(saved.path, config: config, parameters: p, dtype: .BF16, maxShardBytes: 300_000)
        XCTAssertGreaterThanOrEqual(files(streamed).filter { $0.hasPrefix("model-") }.count, 3)
        XCTAssertTrue(files(streamed).contains(ModelFolder.indexFile))
        try assertSameFolder(streamed, saved)
        XCTAssertEqual(files(root), ["saved", "streamed"], "no staging folder left behind")

        let (c, loaded) = try ModelFolder.load(streamed.path)
        XCTAssertEqual(c, config)
        for i in 0..<p.count where loaded[i].bitPattern != BFloat16.round(p[i]).bitPattern {
            XCTFail("element \(i): \(loaded[i]) is not \(p[i]) rounded to bf16"); break
        }
        let r = 100_001..<500_003
        let (_, slice) = try ModelFolder.loadRange(streamed.path, range: r)
        XCTAssertEqual(memcmp(slice.pointer, loaded.pointer + r.lowerBound, r.count * 4), 0)
    }

    func testSingleF32FileEqualsModelFolderSave() throws {
        let root = try temporaryDirectory(self), p = source()
        let streamed = root.appendingPathComponent("streamed"), saved = root.appendingPathComponent("saved")
        try writeByTensor(streamed, p, dtype: .F32, maxShardBytes: 1 << 30)
        try ModelFolder.save(saved.path, config: config, parameters: p, dtype: .F32)
        XCTAssertEqual(files(streamed), [ModelFolder.configFile, ModelFolder.weightsFile])
        try assertSameFolder(streamed, saved)
        let (_, loaded) = try ModelFolder.load(streamed.path)
        XCTAssertEqual(memcmp(loaded.pointer, p.pointer, p.count * 4), 0)
    }

    /// A ZeRO-3 export appends each rank's range in turn; ranges and odd chunks cross tensors and shards.
    func testAppendedRangesEqualTensorWrites() throws {
        let root = try temporaryDirectory(self), p = source()
        let byTensor = root.appendingPathComponent("tensors")
        try writeByTensor(byTensor, p, dtype: .BF16, maxShardBytes: 300_000)
        for (k, pieces) in [shardRanges(count: p.count, parts: 3), stride(from: 0, to: p.count, by: 77_777).map {
            $0..<min($0 + 77_777, p.count)
        }].enumerated() {
            let dir = root.appendingPathComponent("ranges-\(k)")
            let w = try StreamingModelWriter(dir: dir.path, config: config, dtype: .BF16, maxShardBytes: 300_000)
            for r in pieces { try w.append(p.pointer + r.lowerBound, count: r.count) }
            try w.finish()
            try assertSameFolder(dir, byTensor)
        }
    }

    /// Writing into an existing model folder replaces its weights, whatever their form, and keeps other files.
    func testReplacesAnExistingFolder() throws {
        let root = try temporaryDirectory(self), p = source()
        let dir = root.appendingPathComponent("m"), expect = root.appendingPathComponent("expect")
        try ModelFolder.save(dir.path, config: config, parameters: FloatBuffer(count: p.count), dtype: .BF16, maxShardBytes: 100_000)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        try writeByTensor(dir, p, dtype: .BF16, maxShardBytes: 300_000)
        try ModelFolder.save(expect.path, config: config, parameters: p, dtype: .BF16, maxShardBytes: 300_000)
        XCTAssertEqual(files(dir), (files(expect) + ["tokenizer.json"]).sorted(), "old shards removed")
        try writeByTensor(dir, p, dtype: .F32, maxShardBytes: 1 << 30)
        XCTAssertEqual(files(dir), [ModelFolder.configFile, ModelFolder.weightsFile, "tokenizer.json"])
        let (_, loaded) = try ModelFolder.load(dir.path)
        XCTAssertEqual(memcmp(loaded.pointer, p.pointer, p.count * 4), 0)
        XCTAssertEqual(files(root), ["expect", "m"])
    }

    /// A writer dropped before finish() leaves no folder; wrong order, shape or total are refused.
    func testUnfinishedAndMisuse() throws {
        let root = try temporaryDirectory(self), p = source()
        let dir = root.appendingPathComponent("m")
        let layout = ParameterLayout(config)
        do {
            let w = try StreamingModelWriter(dir: dir.path, config: config, dtype: .BF16, maxShardBytes: 300_000)
            try w.append(p.pointer, count: p.count / 2)
            XCTAssertThrowsError(try w.finish()) { XCTAssertTrue("\($0)".contains("finish() after \(p.count / 2) of \(p.count)"), "\($0)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path), "nothing in place before finish")
        }
        XCTAssertEqual(files(root), [], "the staging folder of an abandoned writer is removed")

        let w = try StreamingModelWriter(dir: dir.path, config: config, dtype: .BF16, maxShardBytes: 300_000)
        let t1 = layout.tensors[1]
        XCTAssertThrowsError(try w.write(name: t1.name, shape: t1.shape, values: p.pointer, count: t1.count)) {
            XCTAssertTrue("\($0)".contains("next tensor is 'model.transformer.wte.weight'"), "\($0)")
        }
        let t0 = layout.tensors[0]
        XCTAssertThrowsError(try w.write(name: t0.name, shape: [t0.count], values: p.pointer, count: t0.count)) {
            XCTAssertTrue("\($0)".contains("the config needs shape \(t0.shape)"), "\($0)")
        }
        XCTAssertThrowsError(try w.append(p.pointer, count: p.count + 1))
        try w.append(p.pointer, count: p.count)
        try w.finish()
        XCTAssertThrowsError(try w.append(p.pointer, count: 1))
        XCTAssertThrowsError(try StreamingModelWriter(dir: dir.path, config: config, dtype: .F16, maxShardBytes: 1))
    }

    /// `gift init` streams its folder through the writer: the bytes `ModelFolder.save` gives the full init.
    func testGiftInitEqualsSaveOfTheFullInit() throws {
        let root = try temporaryDirectory(self)
        let full = ParameterLayout(config).initialize(seed: 3)
        for (dtype, flag, shardArgs) in [(SafetensorsDType.BF16, "bf16", ["--max-shard-bytes", "300000"]),
                                         (.F32, "f32", [])] {
            let made = root.appendingPathComponent("init-\(flag)"), saved = root.appendingPathComponent("save-\(flag)")
            let r = try runGift(["init", "--preset", "mini", "--seed", "3", "--dtype", flag, "--out", made.path] + shardArgs)
            XCTAssertEqual(r.status, 0, r.stderr)
            try ModelFolder.save(saved.path, config: config, parameters: full, dtype: dtype,
                                 maxShardBytes: shardArgs.isEmpty ? nil : 300_000)
            try assertSameFolder(made, saved)
        }
        XCTAssertGreaterThan(files(root.appendingPathComponent("init-bf16")).count, 3)
    }

    /// The reference reader: every tensor through the index, equal to torch's bf16 rounding of the source.
    func testReferenceSafetensorsReadsEveryTensor() throws {
        let dir = try temporaryDirectory(self), p = source()
        let model = dir.appendingPathComponent("model")
        try writeByTensor(model, p, dtype: .BF16, maxShardBytes: 300_000)
        let raw = dir.appendingPathComponent("source.f32")
        try Data(bytes: p.pointer, count: p.count * 4).write(to: raw)
        let layout = ParameterLayout(config)
        let spec = layout.tensors.map { "[\"\($0.name)\", \($0.offset), \($0.shape)]" }.joined(separator: ",")
        let py = """
        import json, os, sys, numpy as np, torch
        from safetensors import safe_open
        d, src = sys.argv[1], np.fromfile(sys.argv[2], dtype="<f4")
        index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
        bad, seen, size = [], 0, 0
        for name, off, shape in json.loads(sys.argv[3]):
            with safe_open(os.path.join(d, index["weight_map"][name]), framework="pt") as f:
                t = f.get_tensor(name)
            n = int(np.prod(shape))
            want = torch.from_numpy(src[off:off + n].reshape(shape)).to(torch.bfloat16)
            if t.dtype != torch.bfloat16 or list(t.shape) != shape or not torch.equal(t.view(torch.int16), want.view(torch.int16)):
                bad.append(name)
            seen += 1; size += 2 * n
        print(json.dumps({"bad": bad, "seen": seen, "size_ok": size == index["metadata"]["total_size"],
                          "mapped": len(index["weight_map"])}))
        """
        let r = try runPython(py, [model.path, raw.path, "[" + spec + "]"])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python safetensors/torch missing: \(r.stderr.suffix(200))")
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(o["bad"] as? [String], [])
        XCTAssertEqual(o["seen"] as? Int, layout.tensors.count)
        XCTAssertEqual(o["mapped"] as? Int, layout.tensors.count)
        XCTAssertEqual(o["size_ok"] as? Bool, true)
    }
}
