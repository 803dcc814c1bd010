import Foundation
import XCTest
@testable import GiftCore

/// `--base-dtype bf16` loads: a folder (fp32 or bf16 shards, LLaDA or Dream) read, or a preset initialised,
/// straight into the bf16 store a range at a time holds the same bits as the old way (the whole model
/// in fp32, then rounded to nearest even), so training on it is bit-identical to training on an fp32
/// base of those rounded values, on several ranks, through a resume.
final class BF16BaseLoadTests: XCTestCase {
    /// Small shapes of both families (Dream: grouped-query heads, q/k/v biases in the blocks).
    static let configs: [ModelConfig] = {
        var dream = ModelConfig(dModel: 64, nHeads: 4, nKVHeads: 2, nLayers: 3, mlpHiddenSize: 96, vocabSize: 96, maskTokenId: 95)
        dream.family = .dream
        return [ModelConfig(dModel: 64, nHeads: 4, nLayers: 3, mlpHiddenSize: 176, vocabSize: 80, maskTokenId: 79), dream]
    }()

    /// The store the old path made: the whole fp32 model, rounded.
    func roundedWhole(_ c: ModelConfig, _ fp: FloatBuffer) throws -> BF16BaseStore {
        try withExtendedLifetime(fp) { try BF16BaseStore(config: c, from: fp.pointer) }
    }

    func assertSameStore(_ a: BF16BaseStore, _ b: BF16BaseStore, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.blocks, b.blocks, what, file: file, line: line)
        XCTAssertEqual(memcmp(a.bits, b.bits, 2 * a.blocks.count), 0, "\(what): block bits differ", file: file, line: line)
        let n = a.layout.count
        for r in [0..<a.blocks.lowerBound, a.blocks.upperBound..<n] {
            XCTAssertEqual(memcmp(a.view + r.lowerBound, b.view + r.lowerBound, 4 * r.count), 0,
                           "\(what): fp32 tensors \(r) differ", file: file, line: line)
        }
        XCTAssertEqual(a.fingerprint(), b.fingerprint(), what, file: file, line: line)
    }

    func testFolderReadByRangesIsTheRoundedFP32Model() throws {
        let dir = try temporaryDirectory(self)
        for c in Self.configs {
            let layout = ParameterLayout(c)
            let fp = layout.initialize(seed: 5, std: 0.1)
            for p in 0..<layout.count where p % 7 == 0 { fp[p] = Float(bitPattern: fp[p].bitPattern | 0x8000) }   // ties and carries
            for dtype in [SafetensorsDType.F32, .BF16] {
                let what = "\(c.family) \(dtype)"
                let folder = dir.appendingPathComponent("\(c.family)-\(dtype)").path
                let w = try StreamingModelWriter(dir: folder, config: c, dtype: dtype, maxShardBytes: 60_000)   // several shards
                try w.append(fp.pointer, count: fp.count)
                try w.finish()
                let old = try roundedWhole(c, try ModelFolder.load(folder).1)
                let (config, new) = try BF16BaseStore.load(folder)
                XCTAssertEqual(config, c)
                assertSameStore(new, old, what)
                // pieces that cut tensors anywhere (1009 floats: a prime) give the same bits
                let reader = try ModelFolder.RangeReader(folder)
                assertSameStore(try BF16BaseStore(config: c, chunk: 1009) { r, d in try reader.read(r, into: d) }, old, what + ", 1009-float pieces")
                if dtype == .F32 {   // the fp32 folder's values are not all bf16: the rounding is exercised
                    XCTAssertNotEqual(new.materialize().array, try ModelFolder.load(folder).1.array, what)
                }
            }
        }
    }

    func testPresetInitialisedByRangesIsTheRoundedInitialisation() throws {
        for name in ["tiny", "dream-tiny"] {
            let c = try ModelConfig.preset(name)
            let old = try roundedWhole(c, ParameterLayout(c).initialize(seed: 7))
            let (config, new) = try BF16BaseStore.open(model: name, seed: 7)
            XCTAssertEqual(config, c)
            assertSameStore(new, old, name)
            let layout = ParameterLayout(c)
            assertSameStore(try BF16BaseStore(config: c, chunk: 777) { r, d in layout.initialize(seed: 7, range: r, into: d) }, old, name + ", 777-float pieces")
        }
    }

    /// The old path end to end: an fp32 folder of the values the old path stored (the blocks rounded to
    /// nearest even) trains with an fp32 base exactly as the bf16 base loaded by ranges from the unrounded
    /// source trains (the store decodes exactly). Against a gift built before the change, the preset run's
    /// losses were equal too (cluster/experiments/bit-identity.sh's np1-lora-bf16base, tiny and dream-tiny).
    /// LLaDA from a preset on one rank; Dream from a sharded fp32 folder on 2 ranks at ZeRO-2, the bf16 run
    /// stopped after 2 steps and resumed: the same losses, bit for bit, and the same adapter bytes.
    func testTrainingOnTheRangedBF16LoadIsBitIdentical() throws {
        let dir = try temporaryDirectory(self)
        /// `source`'s values (a folder, or a preset's initialisation) as the store holds them, as an fp32
        /// folder: the blocks rounded to bf16, the embedding, ln_f and head as they are.
        func roundedFolder(_ source: String, seed: UInt64) throws -> String {
            let (c, fp): (ModelConfig, FloatBuffer) = ModelConfig.isPreset(source)
                ? (try ModelConfig.preset(source), ParameterLayout(try ModelConfig.preset(source)).initialize(seed: seed))
                : try ModelFolder.load(source)
            let before = fp.array, l = ParameterLayout(c), blocks = l.blocks[0].attnNorm..<l.lnF
            BFloat16.roundInPlace(fp.pointer + blocks.lowerBound, count: blocks.count)
            XCTAssertNotEqual(fp.array, before, "\(source): the rounding changes values")
            let out = dir.appendingPathComponent("rounded-\((source as NSString).lastPathComponent)").path
            let w = try StreamingModelWriter(dir: out, config: c, dtype: .F32, maxShardBytes: 1 << 30)
            try w.append(fp.pointer, count: fp.count)
            try w.finish()
            return out
        }
        let common = ["--data", "countdown", "--task-examples", "96", "--max-steps", "4", "--micro-batch", "4", "--max-length", "32",
                      "--seed", "3", "--lr", "1e-2", "--init-seed", "7", "--lora-r", "4", "--lora-dropout", "0.1",
                      "--compression-workers", "0", "--checkpoint-every", "2"]
        let lladaTargets = ["--lora-targets", "q_proj,v_proj,ff_out"], dreamTargets = ["--lora-targets", "q_proj,v_proj,down_proj"]
        func train(_ ranks: Int, _ args: [String]) throws -> RunResult {
            ranks == 1 ? try runGift(["train"] + common + args)
                : try runProcess(mpirunURL, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path, "train"] + common + args,
                                 env: mpiTestEnvironment)
        }
        func assertSameRun(_ a: URL, _ b: URL, _ what: String) throws {
            XCTAssertEqual(try stepLosses(a).count, 4, what)
            XCTAssertEqual(try stepLosses(a).map(\.bitPattern), try stepLosses(b).map(\.bitPattern), what)
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)")),
                           try Data(contentsOf: b.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)")), what)
        }
        // LLaDA: the preset initialised by ranges into the store
        let p16 = dir.appendingPathComponent("preset16"), p32 = dir.appendingPathComponent("preset32")
        let r16 = try train(1, lladaTargets + ["--model", "tiny", "--base-dtype", "bf16", "--out", p16.path])
        XCTAssertEqual(r16.status, 0, r16.stderr)
        XCTAssertTrue(r16.stderr.contains("frozen base (bf16)"), r16.stderr)
        let r32 = try train(1, lladaTargets + ["--model", try roundedFolder("tiny", seed: 7), "--out", p32.path])
        XCTAssertEqual(r32.status, 0, r32.stderr)
        try assertSameRun(p16, p32, "tiny preset")
        // Dream: a sharded fp32 folder, 2 ranks, ZeRO-2, resumed
        try skipUnlessMPI()
        let dream = dir.appendingPathComponent("dream").path
        let made = try runGift(["init", "--preset", "dream-tiny", "--seed", "4", "--max-shard-bytes", "300000", "--out", dream])
        XCTAssertEqual(made.status, 0, made.stderr)
        let d16 = dir.appendingPathComponent("dream16"), d32 = dir.appendingPathComponent("dream32")
        let zero = ["--zero", "2"] + dreamTargets
        let stop = try train(2, zero + ["--model", dream, "--base-dtype", "bf16", "--out", d16.path, "--stop-at-step", "2"])
        XCTAssertEqual(stop.status, 0, stop.stderr)
        let resumed = try train(2, zero + ["--model", dream, "--base-dtype", "bf16", "--out", d16.path, "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let straight = try train(2, zero + ["--model", try roundedFolder(dream, seed: 0), "--out", d32.path])
        XCTAssertEqual(straight.status, 0, straight.stderr)
        try assertSameRun(d16, d32, "dream folder, 2 ranks, ZeRO-2, resumed")
    }

    /// LoRA has no ZeRO-3: refused from the settings, before any model is read (the folder does not exist).
    func testLoRAAtZeroThreeIsRefusedBeforeLoading() throws {
        let r = try runGift(["train", "--model", "/nonexistent/model", "--data", "countdown", "--lora-r", "4", "--base-dtype", "bf16",
                             "--zero", "3", "--out", try temporaryDirectory(self).appendingPathComponent("x").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--zero 3 shards trained parameters; under LoRA"), r.stderr)
    }
}

/// The peak resident memory of a LoRA rank's `--base-dtype bf16` load, measured in `gift load-check
/// --base-dtype bf16` child processes (VmHWM reset just before the load) on a 54.8 M-parameter model
/// (219 MB in fp32) as fp32 shards, as bf16 shards, and as a preset initialised in the process.
final class BF16LoadMemoryTests: XCTestCase {
    func loadCheck(_ model: String, full: Bool = false) throws -> [String: Any] {
        let r = try runGift(["load-check", model, "--base-dtype", "bf16", "--seed", "3"] + (full ? ["--full"] : []))
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.stdout)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        XCTAssertEqual(o["peak_reset"] as? Bool, true, "VmHWM could not be reset: the peak is the process's")
        return o
    }

    func testPeakIsTheBF16StorePlusOneBuffer() throws {
        let dir = try temporaryDirectory(self)
        let c = try makeLargeModelFolder(dir.appendingPathComponent("f32"), dtype: .F32)
        _ = try makeLargeModelFolder(dir.appendingPathComponent("bf16"), dtype: .BF16)
        let layout = ParameterLayout(c), n = layout.count, blockFloats = layout.lnF - layout.blocks[0].attnNorm
        // What the load holds: the store (the blocks' bf16 bits, 2 bytes a parameter, and the embedding,
        // ln_f and head in fp32 in the view), the 16 MiB piece buffer the blocks are read through and the
        // reader's 4 MiB conversion scratch (2 MiB of it touched by bf16 shards, none by fp32 ones): `gift
        // plan`'s load peak without the runtime. Allowance: 4 MiB for the parsed headers (as dictionaries)
        // and malloc's arenas, and the store's partial pages; the process's own start is before `rss_before`.
        var s = Plan.Settings(); s.lora = LoRAConfig(); s.lora?.r = 4; s.baseBF16 = true
        let planned = try Plan(config: c, s).loadPeakBytes
        let store = 2 * blockFloats + 4 * (n - blockFloats), allowance = 4 << 20
        XCTAssertEqual(planned, store + 4 * min(blockFloats, BF16BaseStore.loadChunk) + (4 << 20))
        XCTAssertLessThan(planned + allowance, 4 * n, "the bound itself is below the fp32 model")
        for model in [dir.appendingPathComponent("f32").path, dir.appendingPathComponent("bf16").path] {
            let o = try loadCheck(model)
            XCTAssertEqual(o["bytes"] as? Int, store, "\(o)")
            XCTAssertEqual(o["fp32_bytes"] as? Int, 4 * n)
            let peak = try XCTUnwrap(o["peak_increase"] as? Int)
            print(String(format: "bf16 load of %@: peak %.1f MiB (store %.1f MiB, bound %.1f MiB, fp32 model %.1f MiB)",
                         (model as NSString).lastPathComponent, Double(peak) / 1048576, Double(store) / 1048576,
                         Double(planned + allowance) / 1048576, Double(4 * n) / 1048576))
            XCTAssertLessThanOrEqual(peak, planned + allowance, "\(model): \(o)")
            XCTAssertGreaterThanOrEqual(peak, store, "the store itself is resident: \(o)")
        }
        // a preset initialised by ranges: the same bound (no reader scratch is touched)
        let small = try ModelConfig.preset("small"), ls = ParameterLayout(small), bs = ls.lnF - ls.blocks[0].attnNorm
        let ps = try loadCheck("small")
        XCTAssertLessThanOrEqual(try XCTUnwrap(ps["peak_increase"] as? Int),
                                 try Plan(config: small, s).loadPeakBytes + allowance, "\(ps)")
        XCTAssertEqual(ps["bytes"] as? Int, 2 * bs + 4 * (ls.count - bs))
        // The measurement sees an fp32 model: the old way (load it whole, then round) peaks above it.
        let whole = try loadCheck(dir.appendingPathComponent("f32").path, full: true)
        XCTAssertGreaterThan(try XCTUnwrap(whole["peak_increase"] as? Int), 4 * n, "\(whole)")
    }
}
