import Foundation
import XCTest
@testable import GiftCore

/// `gift bench` times the step `gift train` runs: both go through `TrainStep`, so the same batches from
/// the same weights give the same losses, bit for bit, step after step (the second and third losses
/// depend on the updates: clipping, AdamW and the ZeRO stage's reduction included).
final class TrainStepTests: XCTestCase {
    func testBenchAndTrainerRunTheSameStep() throws {
        for zero in [0, 2] {
            let dir = try temporaryDirectory(self)
            var c = tinyTrainConfig(.gift, dir: dir, steps: 3)
            c.schedule = .constant; c.warmupRatio = 0; c.zero = zero; c.maxGradNorm = 0.5
            let t = try makeTrainer(c)
            let start = FloatBuffer(count: t.params.count)
            start.pointer.update(from: t.params.pointer, count: t.params.count)
            let batches = try (0..<3).map { s in
                let b = try t.batches.step(s, rank: 0, fixedPadLength: nil, betas: [])
                return Bench.Batch(sequences: b.sequences, normalizer: b.normalizer)
            }
            let trained = try (0..<3).map { try t.step($0).stats.loss }
            let L = t.model.rope.maxLen
            let bench = try Bench.run(model: Transformer(config: t.model.config, maxSeqLen: L), params: start,
                                      objectives: [c.objective], batch: c.microBatch, seqLen: L, steps: 3, warmup: 0,
                                      config: c, batches: batches)
            XCTAssertEqual(bench[0].losses.map(\.bitPattern), trained.map(\.bitPattern), "ZeRO \(zero): bench \(bench[0].losses), train \(trained)")
            XCTAssertNotEqual(trained[0], trained[2], "the steps must train something")
            // and the weights after the steps
            XCTAssertEqual(FNV1a.of(start.pointer, count: start.count), FNV1a.of(t.params.pointer, count: t.params.count))
        }
    }
}
