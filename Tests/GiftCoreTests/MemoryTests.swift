import Foundation
import XCTest
@testable import GiftCore

final class MemoryTests: XCTestCase {
    /// A tiny-width model trains a step on one 4096-token sequence, and its whole working memory (all
    /// layers' activations and scratch) is smaller than ONE layer's [heads, L, L] probability tensor.
    func testLongSequenceWithoutQuadraticActivations() throws {
        let c = try ModelConfig.preset("tiny")
        let L = 4096
        let m = Transformer(config: c, maxSeqLen: L)
        let params = m.layout.initialize(seed: 1)
        let r = ObjectiveRunner(model: m, options: ObjectiveOptions(kind: .gift), capacityTokens: L, maxSeqLen: L)
        let toks = (0..<L).map { Int32($0 % 60) }
        let s = TrainSequence(tokens: toks, promptLength: 100, exampleIndex: 0)
        let g = FloatBuffer(count: params.count)
        let (st, _) = r.run(params.pointer, grads: g.pointer, [s], seed: 1, step: 0, normalizer: .of([s]))
        XCTAssertTrue(st.loss.isFinite)
        XCTAssertGreaterThan(st.maskedTokens, 0)
        XCTAssertTrue(g.array.allSatisfy { $0.isFinite })
        let oneLayerProbs = c.nHeads * L * L * 4
        XCTAssertLessThan(r.train.bytes + r.infer.bytes, oneLayerProbs,
                          "activations \(r.train.bytes + r.infer.bytes) B vs one [heads, L, L] tensor \(oneLayerProbs) B")
    }
}
