import Foundation
import XCTest
@testable import GiftCore

/// `--pad-loss off`: the loss of a padded batch is the loss of its examples without padding, computed
/// one by one, and the normaliser counts no padding; `on` (LLaDA's convention) trains the padding.
final class PadLossTests: XCTestCase {
    /// The tiny preset with every attention output projection zeroed: each position's logits then depend
    /// on its own token only, so padding a sequence changes nothing at its other positions and the
    /// padded and unpadded forms are comparable position by position.
    func contextFreeModel() throws -> (Transformer, FloatBuffer) {
        let c = try ModelConfig.preset("tiny")
        let layout = ParameterLayout(c)
        let params = layout.initialize(seed: 4)
        for t in layout.tensors where t.name.hasSuffix("attn_out.weight") {
            (params.pointer + t.offset).update(repeating: 0, count: t.count)
        }
        return (Transformer(config: c, maxSeqLen: 32), params)
    }

    func examples(_ c: ModelConfig) -> [Example] {
        let r = CounterRNG(11, 3)
        func ids(_ n: Int, _ k: UInt64) -> [Int32] { (0..<n).map { Int32(r.bits(k * 100 + UInt64($0)) % UInt64(c.eosTokenId)) } }
        return [Example(prompt: ids(3, 1), response: ids(9, 2)), Example(prompt: ids(5, 3), response: ids(2, 4)),
                Example(prompt: ids(2, 5), response: ids(4, 6))]
    }

    func testPadLossOffIsTheLossOfTheUnpaddedExamples() throws {
        let (model, params) = try contextFreeModel()
        let ex = examples(model.config)
        for kind in [ObjectiveKind.sft, .gift] {
            for norm in [LossNorm.token, .sequence] {
                var o = ObjectiveOptions(kind: kind); o.lossNorm = norm
                let runner = ObjectiveRunner(model: model, options: o, capacityTokens: 3 * 32, maxSeqLen: 32)
                let padded = Batching.pad(ex.enumerated().map { ($1, $0) }, eos: Int32(model.config.eosTokenId), minEOS: 3)
                func seqs(off: Bool) -> [TrainSequence] {
                    padded.map { p in
                        var s = TrainSequence(tokens: p.tokens, promptLength: p.promptLength, exampleIndex: p.exampleIndex)
                        if off { s.contentLength = p.contentLength }
                        return s
                    }
                }
                let off = seqs(off: true), on = seqs(off: false)
                let nOff = LossNormalizer.of(off)
                // the Trainer's normaliser from lengths alone is the one of the padded sequences
                for (mode, s) in [(PadLoss.off, off), (.on, on)] {
                    let fromLengths = LossNormalizer.of(ex, padTo: padded[0].tokens.count, padLoss: mode)
                    XCTAssertEqual(fromLengths.responseTokens, LossNormalizer.of(s).responseTokens)
                    XCTAssertEqual(fromLengths.sequences, s.count)
                }
                XCTAssertEqual(nOff.responseTokens, ex.reduce(0) { $0 + $1.response.count }, "no padding in the normaliser")
                XCTAssertEqual(LossNormalizer.of(on).responseTokens, padded.reduce(0) { $0 + $1.tokens.count - $1.promptLength })
                let lossOff = runner.run(params.pointer, grads: nil, off, seed: 9, step: 2, normalizer: nOff).0.loss
                let lossOn = runner.run(params.pointer, grads: nil, on, seed: 9, step: 2, normalizer: LossNormalizer.of(on)).0.loss
                // independently: each example alone, unpadded (nothing to exclude), over the same normaliser
                var alone = 0.0
                for (i, e) in ex.enumerated() {
                    let s = TrainSequence(tokens: e.prompt + e.response, promptLength: e.prompt.count, exampleIndex: i)
                    alone += runner.run(params.pointer, grads: nil, [s], seed: 9, step: 2, normalizer: nOff).0.loss
                }
                let tol = 2 * float32LossBound(model.config, seqLen: padded[0].tokens.count) * abs(alone)
                XCTAssertEqual(lossOff, alone, accuracy: tol, "\(kind) \(norm)")
                XCTAssertGreaterThan(abs(lossOn - alone), 100 * tol, "\(kind) \(norm): on must differ (it trains the padding)")
            }
        }
    }

    /// The run config carries the switch: off is a defining field of a checkpoint (resume refuses to
    /// change it), and a checkpoint written before the field existed counts as on.
    func testPadLossIsADefiningField() throws {
        XCTAssertTrue(Resume.definingFields.contains("pad_loss"))
        var c = RunConfig()
        try c.set("pad_loss", "off", source: "--pad-loss")
        XCTAssertEqual(c.padLoss, .off)
        XCTAssertEqual(c.json["pad_loss"] as? String, "off")
        XCTAssertThrowsError(try c.set("pad_loss", "maybe", source: "--pad-loss")) { e in
            XCTAssertTrue("\(e)".contains("--pad-loss") && "\(e)".contains("on, off"), "\(e)")
        }
        // a trainer with off trains on the unpadded examples: its sequences carry their content length
        let dir = try temporaryDirectory(self)
        var t = tinyTrainConfig(.sft, dir: dir, steps: 2)
        t.padLoss = .off
        let tr = try makeTrainer(t)
        let idx = tr.batches.globalIndices(step: 0)
        let s = tr.batches.sequences(idx, from: tr.data.train)
        XCTAssertEqual(s.map(\.trainedResponseLength), idx.map { tr.data.train[$0].response.count })
        XCTAssertTrue(s.contains { $0.tokens.count > $0.contentLength! }, "some sequence must be padded")
    }
}
