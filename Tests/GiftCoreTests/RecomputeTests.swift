import Foundation
import XCTest
@testable import GiftCore

/// `--recompute blocks`: backward recomputes each block from its kept input with the same operations in
/// the same order, so loss and every gradient are bit-identical to keeping all activations (full
/// fine-tuning and LoRA with dropout, SFT and GIFT), in less memory; a training run is step-for-step the same.
final class RecomputeTests: XCTestCase {
    func gradients(recompute: Bool, kind: ObjectiveKind, lora: LoRALayout?) -> (Double, [Float], Int) {
        let c = try! ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 64)
        let params = model.layout.initialize(seed: 5, std: 0.2)
        let seqs = ModelGradientTests.tinyBatch(c).map { s -> TrainSequence in
            var s = s; s.fixedMask = nil; s.fixedT = nil; return s   // drawn masks and times
        }
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: kind), capacityTokens: 64, maxSeqLen: 64,
                                     recompute: recompute)
        var adapters: FloatBuffer?
        if let lora {
            let a = lora.initialize(seed: 2)
            for j in 0..<a.count where j % 3 == 0 { a[j] += 0.05 }   // B ≠ 0
            adapters = a
            runner.attachLoRA(lora, weights: a.pointer)
        }
        let grads = FloatBuffer(count: lora?.count ?? model.layout.count)
        let (st, _) = withExtendedLifetime(adapters) {
            runner.run(params.pointer, grads: grads.pointer, seqs, seed: 3, step: 1, normalizer: .of(seqs))
        }
        return (st.loss, grads.array, runner.train.bytes)
    }

    func testSameBitsInLessMemory() throws {
        var l = LoRAConfig(); l.r = 4; l.dropout = 0.2; l.targets = LoRATarget.allCases
        let lora = try LoRALayout(try ModelConfig.preset("tiny"), l)
        for kind in [ObjectiveKind.sft, .gift] {
            for adapters in [nil, lora] {
                let (l0, g0, b0) = gradients(recompute: false, kind: kind, lora: adapters)
                let (l1, g1, b1) = gradients(recompute: true, kind: kind, lora: adapters)
                XCTAssertEqual(l0, l1, "\(kind) lora \(adapters != nil): loss")
                XCTAssertEqual(g0.count, g1.count)
                let differing = zip(g0, g1).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(kind) lora \(adapters != nil): \(differing) gradient entries differ")
                XCTAssertGreaterThan(g0.map(abs).max()!, 0)
                // tiny has 2 layers: the kept set is one block plus each block's input
                XCTAssertLessThan(b1, b0)
            }
        }
        // the activation bytes: every block's tensors vs one block's plus every block's input
        let c = try ModelConfig.preset("mini"), T = 256
        let all = Activations(config: c, capacityTokens: T, maxSeqLen: 64, training: true)
        let rc = Activations(config: c, capacityTokens: T, maxSeqLen: 64, training: true, recompute: true)
        let d = c.dModel, kv = c.kvDim, ff = c.mlpHiddenSize
        let perLayer = 5 * T * d + 2 * T + T * (d + 2 * kv) + T * c.nHeads + 3 * T * ff   // xin xn1 ao xmid xn2, rstds, qkv, lse, au h
        XCTAssertEqual(Double(all.bytes - rc.bytes), Double(4 * (c.nLayers - 1) * (perLayer - T * d) - 4 * T * d),
                       accuracy: Double(4 * 16 * 12 * c.nLayers), "arena rounding: ≤ 16 floats per buffer")
    }

    func testTrainingRunIsStepForStepTheSame() throws {
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        var ca = tinyTrainConfig(.gift, dir: a, steps: 6), cb = tinyTrainConfig(.gift, dir: b, steps: 6)
        cb.recompute = .blocks
        _ = try makeTrainer(ca).run(outDir: a.path)
        _ = try makeTrainer(cb).run(outDir: b.path)
        XCTAssertEqual(try stepLosses(a), try stepLosses(b))
        XCTAssertThrowsError(try ca.set("recompute", "sometimes", source: "--recompute"))
    }
}
