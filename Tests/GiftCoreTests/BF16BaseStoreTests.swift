import Foundation
import XCTest
@testable import GiftCore

/// `--base-dtype bf16`: a LoRA run's frozen base kept as bf16 bits with one block decoded at a time gives
/// the same bits as an fp32 base holding the same (bf16) values, holds half the blocks' memory, and never
/// has more than one block's weights resident.
final class BF16BaseStoreTests: XCTestCase {
    /// Records the resident bytes of the store's fp32 view whenever a block has just been acquired.
    final class Spy: BlockWeightSource {
        let store: BF16BaseStore
        var worst = 0, acquired = 0
        init(_ s: BF16BaseStore) { store = s }
        func acquire(block: Int) {
            store.acquire(block: block)
            if block >= 0 && block < store.layout.blocks.count { acquired += 1 }   // (-1, n: the tensors outside the blocks)
            worst = max(worst, store.residentViewBytes)
        }
        func release(block: Int) { store.release(block: block) }
    }

    func testOneBlockResidentAndTheSameBits() throws {
        let c = ModelConfig(dModel: 256, nHeads: 4, nLayers: 6, mlpHiddenSize: 704, vocabSize: 128, maskTokenId: 127)
        let layout = ParameterLayout(c)
        let fp = layout.initialize(seed: 4, std: 0.1)
        BFloat16.roundInPlace(fp.pointer, count: fp.count)   // an fp32 base of bf16 values
        let store = try BF16BaseStore(config: c, from: fp.pointer)
        XCTAssertEqual(store.fingerprint(), LoRAIdentity.fingerprint(fp.pointer, count: fp.count))
        XCTAssertEqual(store.materialize().array, fp.array)
        let blockFloats = store.blocks.count / c.nLayers, globals = layout.count - store.blocks.count
        XCTAssertEqual(store.bytes, 2 * store.blocks.count + 4 * globals)
        var l = LoRAConfig(); l.r = 4; l.dropout = 0.1; l.targets = LoRATarget.allCases
        let ll = try LoRALayout(c, l)
        let adapters = ll.initialize(seed: 1)
        for j in 0..<adapters.count where j % 5 == 0 { adapters[j] = 0.02 }
        func run(_ base: UnsafePointer<Float>, source: BlockWeightSource?) -> (Double, [Float]) {
            let model = Transformer(config: c, maxSeqLen: 32)
            model.weightSource = source
            let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .gift), capacityTokens: 64, maxSeqLen: 32)
            runner.attachLoRA(ll, weights: adapters.pointer)
            let seqs = Bench.batch(config: c, batch: 2, seqLen: 32, seed: 3)
            let g = FloatBuffer(count: ll.count)
            let (st, _) = runner.run(base, grads: g.pointer, seqs, seed: 1, step: 0, normalizer: .of(seqs))
            return (st.loss, g.array)
        }
        let spy = Spy(store)
        let (l32, g32) = run(fp.pointer, source: nil)
        let (l16, g16) = run(store.view, source: spy)
        XCTAssertEqual(l32, l16)
        XCTAssertEqual(zip(g32, g16).filter { $0.0.bitPattern != $0.1.bitPattern }.count, 0, "gradients differ")
        // pass 1, pass 2 and backward each ask for every block
        XCTAssertEqual(spy.acquired, 3 * c.nLayers)
        // at most one block resident beside the fp32 tensors outside the blocks (each of the three ranges
        // may touch a partial page at either end: + 6 pages)
        XCTAssertLessThanOrEqual(spy.worst, 4 * (globals + blockFloats) + 6 * 4096)
        XCTAssertGreaterThan(spy.worst, 4 * blockFloats / 2, "the acquired block is resident")
        XCTAssertLessThanOrEqual(store.residentViewBytes, 4 * globals + 2 * 4096 * c.nLayers, "released blocks give their pages back")
    }

    func testTrainingWithABF16BaseMatchesFP32AndNeedsLoRA() throws {
        let dir = try temporaryDirectory(self)
        let base = dir.appendingPathComponent("b16").path
        XCTAssertEqual(try runGift(["init", "--preset", "mini", "--seed", "3", "--dtype", "bf16", "--out", base]).status, 0)
        let a = ["train", "--model", base, "--data", "countdown", "--task-examples", "400", "--max-steps", "6", "--lr", "1e-2",
                 "--max-length", "48", "--micro-batch", "8", "--lora-r", "4", "--lora-dropout", "0.1", "--lora-targets", "q_proj,v_proj,ff_out"]
        let r32 = dir.appendingPathComponent("r32"), r16 = dir.appendingPathComponent("r16")
        let p32 = try runGift(a + ["--out", r32.path]), p16 = try runGift(a + ["--out", r16.path, "--base-dtype", "bf16"])
        XCTAssertEqual(p32.status, 0, p32.stderr); XCTAssertEqual(p16.status, 0, p16.stderr)
        XCTAssertEqual(try stepLosses(r32), try stepLosses(r16))
        XCTAssertEqual(try Data(contentsOf: r32.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)")),
                       try Data(contentsOf: r16.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)")))
        XCTAssertTrue(p16.stderr.contains("frozen base (bf16)"), p16.stderr)
        let full = try runGift(["train", "--model", base, "--data", "countdown", "--max-steps", "1", "--base-dtype", "bf16",
                                "--out", dir.appendingPathComponent("x").path])
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.stderr.contains("base_dtype bf16 stores a frozen base: it needs LoRA"), full.stderr)
    }
}
