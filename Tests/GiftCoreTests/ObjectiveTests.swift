import Foundation
import XCTest
@testable import GiftCore

/// The properties of objective.md's last section, one test each, plus extreme inputs.
final class ObjectiveTests: XCTestCase {
    let config = try! ModelConfig.preset("tiny")

    func sequence(_ P: Int, _ n: Int, index: Int = 0, seed: UInt64 = 1) -> TrainSequence {
        let r = CounterRNG(seed, 5, UInt64(index))
        let toks = (0..<(P + n)).map { Int32(r.bits(UInt64($0)) % 60) }
        return TrainSequence(tokens: toks, promptLength: P, exampleIndex: index)
    }

    func runner(_ o: ObjectiveOptions, params: FloatBuffer? = nil, tokens: Int = 256) -> (ObjectiveRunner, FloatBuffer) {
        let m = Transformer(config: config, maxSeqLen: 64)
        return (ObjectiveRunner(model: m, options: o, capacityTokens: tokens, maxSeqLen: 64),
                params ?? m.layout.initialize(seed: 3, std: 0.3))
    }

    // Property 1: with every r_i = 1, gift (either weight) masks and weights exactly like sft. Every beta
    // is 1 (given as cached betas): beta_0 = n/n = 1 exactly, so every r_i = 1/1 = 1 exactly.
    func testUnitImportanceGiftEqualsSFTBitForBit() {
        let seqs = [sequence(4, 12, index: 0), sequence(2, 14, index: 7)].map {
            var s = $0; s.cachedBetas = Array(repeating: 1, count: s.responseLength); return s
        }
        let (sft, params) = runner(ObjectiveOptions(kind: .sft))
        for w in GiftWeight.allCases {
            var o = ObjectiveOptions(kind: .gift); o.giftWeight = w
            let (gift, _) = runner(o, params: params)
            gift.betaSource = .cached
            for step in 0..<20 {
                let g1 = FloatBuffer(count: params.count), g2 = FloatBuffer(count: params.count)
                let (a, pa) = sft.run(params.pointer, grads: g1.pointer, seqs, seed: 9, step: step, normalizer: .of(seqs))
                // pass 1 still runs before pass 2, as in training: it must leave nothing behind that pass 2 reads
                _ = gift.pass1Betas(params.pointer, seqs)
                let (b, pb) = gift.run(params.pointer, grads: g2.pointer, seqs, seed: 9, step: step, normalizer: .of(seqs))
                XCTAssertEqual(pa.masked, pb.masked, "step \(step) \(w)")
                XCTAssertEqual(pa.weights, pb.weights, "step \(step) \(w)")
                XCTAssertEqual(a.loss.bitPattern, b.loss.bitPattern, "step \(step) \(w)")
                XCTAssertEqual(memcmp(g1.pointer, g2.pointer, params.count * 4), 0, "gradients differ at step \(step)")
            }
        }
    }

    /// Property 2, statistically: over S independent draws of (t, mask) from the runner itself, the mean of
    /// 1{masked}·w_i per token must equal the stated expectation within 5 standard errors of the mean
    /// (SE from the sample variance; a 5-SE miss has probability < 1e-6 per check, and the draws are
    /// seeded, so the test is deterministic). With an all-zero model every CE_i = log V, so the mean
    /// loss must also equal Σ_i E_i·log V / N within 5 SE.
    func checkExpectation(_ o: ObjectiveOptions, betas: [Float], expected: (Double) -> Double, draws S: Int = 20000,
                          file: StaticString = #filePath, line: UInt = #line) {
        let n = betas.count, P = 3
        let zero = FloatBuffer(count: ParameterLayout(config).count)
        let (r, _) = runner(o, params: zero)
        var seq = sequence(P, n)
        seq.cachedBetas = betas                        // gift-ref: the frozen model's betas
        r.betaSource = .cached                         // pass-1 objectives: as if pass 1 had found these
        let rs = Masking.importance(betas: betas.map(Double.init), include: Array(repeating: true, count: n))
        var sum = [Double](repeating: 0, count: n), sq = [Double](repeating: 0, count: n)
        var lossSum = 0.0, lossSq = 0.0
        for step in 0..<S {
            let (st, p) = r.run(zero.pointer, grads: nil, [seq], seed: 4, step: step, normalizer: .of([seq]))
            for i in 0..<n {
                let x = p.masked[P + i] ? p.weights[P + i] : 0
                sum[i] += x; sq[i] += x * x
            }
            lossSum += st.loss; lossSq += st.loss * st.loss
        }
        var expectedLoss = 0.0
        for i in 0..<n {
            let mean = sum[i] / Double(S), se = ((sq[i] / Double(S) - mean * mean) / Double(S)).squareRoot()
            let want = expected(rs[i])
            expectedLoss += want
            XCTAssertLessThanOrEqual(abs(mean - want), 5 * se + 1e-12,
                                     "\(o.kind) token \(i) r=\(rs[i]): mean \(mean) want \(want) se \(se)", file: file, line: line)
        }
        expectedLoss *= log(Double(config.vocab)) / Double(n)
        let lm = lossSum / Double(S), lse = ((lossSq / Double(S) - lm * lm) / Double(S)).squareRoot()
        XCTAssertLessThanOrEqual(abs(lm - expectedLoss), 5 * lse, "\(o.kind) mean loss \(lm) want \(expectedLoss)", file: file, line: line)
    }

    let spread: [Float] = [0.3, 0.6, 1.0, 1.4, 2.2, 3.0]   // r from about 0.2 to 2.1

    func testUnbiasedSFT() {
        checkExpectation(ObjectiveOptions(kind: .sft), betas: spread, expected: { _ in 1 })
    }

    func testUnbiasedGIFTInverse() {
        // gift-ref takes the betas given (the frozen model's): the same masks and weights as gift/gift-raw/nll
        checkExpectation(ObjectiveOptions(kind: .giftRef), betas: spread, expected: { _ in 1 })
    }

    func testGIFTExactExpectation() {
        var o = ObjectiveOptions(kind: .giftRef); o.giftWeight = .exact
        let eps = o.timeEpsilon
        checkExpectation(o, betas: spread, expected: { r in (pow(1 - eps, r) - pow(eps, r)) / (1 - 2 * eps) })
    }

    func testGIFTSimpleWeightingExpectation() {
        checkExpectation(ObjectiveOptions(kind: .giftSW), betas: spread, expected: { r in r })
    }

    func testUnbiasedGIFTFamily() {
        for k in [ObjectiveKind.gift, .giftRaw, .nll] {
            checkExpectation(ObjectiveOptions(kind: k), betas: spread, expected: { _ in 1 }, draws: 8000)
        }
    }

    // Property 4: a sequence with no masked token adds 0 to the sum but counts in N.
    func testUnmaskedSequenceCountsInNormaliser() {
        for norm in LossNorm.allCases {
            var o = ObjectiveOptions(kind: .sft); o.lossNorm = norm
            let (r, params) = runner(o)
            var a = sequence(3, 9, index: 0), b = sequence(5, 7, index: 1)
            a.fixedT = 0.5; a.fixedMask = (0..<12).map { $0 >= 3 && $0 % 2 == 0 }
            b.fixedT = 0.5; b.fixedMask = Array(repeating: false, count: 12)
            let both = LossNormalizer.of([a, b])
            XCTAssertEqual(both.responseTokens, 16); XCTAssertEqual(both.sequences, 2)
            let (sBoth, _) = r.run(params.pointer, grads: nil, [a, b], seed: 0, step: 0, normalizer: both)
            let (sA, _) = r.run(params.pointer, grads: nil, [a], seed: 0, step: 0, normalizer: both)
            let (sAlone, _) = r.run(params.pointer, grads: nil, [a], seed: 0, step: 0, normalizer: .of([a]))
            // a's rows go through float32 GEMMs of 24 rows or of 12, which may block and sum differently:
            // each loss is within `float32LossBound` (2n·u, n = the forward's reduction lengths at the
            // runner's longest sequence, 64 ≥ 12) of the exact one, so the two differ by ≤ twice that
            let lossTol = 2 * float32LossBound(config, seqLen: 64) * abs(sA.loss)
            XCTAssertEqual(sBoth.loss, sA.loss, accuracy: lossTol, "\(norm): |Δ| \(abs(sBoth.loss - sA.loss)) bound \(lossTol)")
            print(String(format: "%@: |Δloss| %.3g (bound %.3g)", "\(norm)", abs(sBoth.loss - sA.loss), lossTol))
            XCTAssertGreaterThan(sA.loss, 0)
            // token: N = 16 instead of 9; sequence: mean over 2 sequences instead of 1. sA and sAlone run
            // the same batch [a] with the same seed, so the float32 forward and every CE_i are the same
            // bits (runs are deterministic: testUnitImportanceGiftEqualsSFTBitForBit); only the Double
            // loss = Σ (w_i / N)·CE_i differs. Each of the two sums of k ≤ 12 positive terms, each term off
            // by a division and a product, is within γ_{k+1} (float64) relative, and the ratio adds one
            // rounding: 2·γ_{k+1} + u, far below any float32 effect
            let k = a.fixedMask!.filter { $0 }.count
            let ratio = norm == .token ? 16.0 / 9.0 : 2.0
            let ratioTol = (2 * highamGamma(k + 1, unitRoundoff: float64UnitRoundoff) + float64UnitRoundoff) * ratio
            XCTAssertEqual(sAlone.loss / sA.loss, ratio, accuracy: ratioTol,
                           "\(norm): ratio \(sAlone.loss / sA.loss) bound \(ratioTol)")
            print(String(format: "%@: |Δratio| %.3g (bound %.3g)", "\(norm)", abs(sAlone.loss / sA.loss - ratio), ratioTol))
            let (sB, _) = r.run(params.pointer, grads: nil, [b], seed: 0, step: 0, normalizer: both)
            XCTAssertEqual(sB.loss, 0)
        }
    }

    // Property 5: the statistics a step reports.
    func testStepStatistics() {
        var o = ObjectiveOptions(kind: .gift)
        o.giftWeight = .inverse
        let (r, params) = runner(o)
        let seqs = [sequence(4, 12, index: 0), sequence(2, 14, index: 1)]
        let (st, p) = r.run(params.pointer, grads: nil, seqs, seed: 2, step: 3, normalizer: .of(seqs))
        let masked = p.masked.filter { $0 }.count
        XCTAssertEqual(st.maskedTokens, masked)
        XCTAssertEqual(st.responseTokens, 26)
        // (maskRate, meanWeight, meanBeta: Double sums of ≤ 26 terms of order 1: a few 1e-16 of rounding)
        XCTAssertEqual(st.maskRate, Double(masked) / 26, accuracy: 1e-12)
        let wsum = zip(p.masked, p.weights).filter { $0.0 }.reduce(0) { $0 + $1.1 }
        XCTAssertEqual(st.meanWeight, wsum / Double(masked), accuracy: 1e-9)
        var bsum = 0.0
        for i in 4..<16 { bsum += p.betas[i] }
        for i in 2..<16 { bsum += p.betas[16 + i] }
        XCTAssertEqual(st.meanBeta, bsum / 26, accuracy: 1e-9)
        XCTAssertGreaterThan(st.meanBeta, 0)
        // masking rates follow t: over many steps SFT masks about half the response (E[t] = 1/2)
        let (sft, _) = runner(ObjectiveOptions(kind: .sft), params: params)
        var total = StepStats()
        for step in 0..<400 { total.add(sft.run(params.pointer, grads: nil, seqs, seed: 2, step: step, normalizer: .of(seqs)).0) }
        // statistical, not rounding: t ~ U(0, 1) per sequence and step, so a step's rate has variance
        // ≈ Var t·(12² + 14²)/26² + E[t(1−t)]/26 ≈ 0.048 and the 400-step mean an SE ≈ 0.011; 0.03 is
        // ≈ 2.7 SE. The draws depend only on (seed, step, example), so the value is the same on every machine
        XCTAssertEqual(total.maskRate, 0.5, accuracy: 0.03)
    }

    func testDrawsDependOnlyOnSeedStepAndExample() {
        let (r, params) = runner(ObjectiveOptions(kind: .sft))
        let a = sequence(3, 13, index: 41), b = sequence(3, 13, index: 42)
        let (_, p1) = r.run(params.pointer, grads: nil, [a, b], seed: 5, step: 2, normalizer: .of([a, b]))
        let (_, p2) = r.run(params.pointer, grads: nil, [b], seed: 5, step: 2, normalizer: .of([b]))
        let (_, p3) = r.run(params.pointer, grads: nil, [b], seed: 5, step: 3, normalizer: .of([b]))
        XCTAssertEqual(Array(p1.masked[16...]), p2.masked)   // b's draws do not depend on its batch mates
        XCTAssertEqual(p1.times[1], p2.times[0])
        XCTAssertNotEqual(p2.times[0], p3.times[0])
    }

    // Extreme inputs stay finite; non-finite values are reported, never averaged in.
    func testExtremeInputs() {
        // entropies all 0: beta_0 < 1e-8, every r = 1
        XCTAssertEqual(Masking.importance(betas: [0, 0, 0], include: [true, true, true]), [1, 1, 1])
        XCTAssertEqual(Masking.importance(betas: [1e-12, 0], include: [true, true]), [1, 1])
        let eps = 1e-3
        for t in [eps, 0.5, 1 - eps] {
            for r in [1e-12, 1e-6, 0.01, 1, 50, 1e3] {
                var o = ObjectiveOptions(kind: .gift)
                for w in GiftWeight.allCases {
                    o.giftWeight = w
                    let p = Masking.maskProbability(o, r: r, t: t), wt = Masking.weight(o, r: r, t: t)
                    XCTAssertTrue(p.isFinite && p >= 1e-6 && p <= 1, "p(\(r), \(t)) = \(p)")
                    XCTAssertTrue(wt.isFinite && wt >= 0, "w(\(r), \(t), \(w)) = \(wt)")
                }
            }
        }
        XCTAssertTrue(Masking.importance(betas: [1, .nan], include: [true, true]).allSatisfy { $0.isNaN })
        XCTAssertTrue(Masking.importance(betas: [1, .infinity], include: [true, true]).allSatisfy { $0.isNaN })
        // a one-token response, t at both bounds, and a model with certain predictions (entropy 0)
        for k in ObjectiveKind.allCases {
            let (r, params) = runner(ObjectiveOptions(kind: k))
            for t in [eps, 1 - eps] {
                var s = sequence(5, 1)
                s.fixedT = t; s.fixedMask = [false, false, false, false, false, true]
                s.cachedBetas = [0]
                let g = FloatBuffer(count: params.count)
                let (st, _) = r.run(params.pointer, grads: g.pointer, [s], seed: 0, step: 0, normalizer: .of([s]))
                XCTAssertTrue(st.loss.isFinite && st.nonFinite == 0, "\(k) t=\(t): \(st.loss)")
                XCTAssertTrue(g.array.allSatisfy { $0.isFinite }, "\(k) t=\(t): gradient not finite")
            }
        }
        // a non-finite parameter: the loss is NaN and counted, not averaged away
        let (r, params) = runner(ObjectiveOptions(kind: .gift))
        params[ParameterLayout(config).head] = .nan
        let s = sequence(3, 5)
        let (st, _) = r.run(params.pointer, grads: nil, [s], seed: 0, step: 0, normalizer: .of([s]))
        XCTAssertTrue(st.loss.isNaN)
        XCTAssertGreaterThan(st.nonFinite, 0)
    }

    /// A model whose pass 1 is certain (entropy 0 everywhere): gift falls back to r = 1 and trains finitely.
    func testCertainModelGivesUnitImportance() {
        let layout = ParameterLayout(config)
        let params = FloatBuffer(count: layout.count)
        for t in layout.tensors where t.isNorm { (params.pointer + t.offset).update(repeating: 1, count: t.count) }
        // embedding rows of ones and a head row of +100: every position predicts token 7 with certainty
        for i in 0..<layout.tensor(named: "model.transformer.wte.weight")!.count { params[layout.wte + i] = 1 }
        for j in 0..<config.dModel { params[layout.head + 7 * config.dModel + j] = 100 }
        let (r, _) = runner(ObjectiveOptions(kind: .gift), params: params)
        var s = sequence(3, 6)
        s.fixedT = 0.5; s.fixedMask = (0..<9).map { $0 >= 3 }
        let (st, p) = r.run(params.pointer, grads: nil, [s], seed: 0, step: 0, normalizer: .of([s]))
        XCTAssertEqual(p.betas[3...].max()!, 0, accuracy: 1e-6)
        XCTAssertTrue(st.loss.isFinite)
        XCTAssertEqual(st.meanWeight, 2, accuracy: 1e-12)   // r = 1: w = 1/t
    }
}
