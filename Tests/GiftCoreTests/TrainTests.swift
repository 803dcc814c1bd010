import Foundation
import XCTest
@testable import GiftCore

/// The training loop on one process: loss falls, optimizer and schedule values, accumulation,
/// determinism and bad input.
final class TrainTests: XCTestCase {
    /// 40 steps of the tiny model on Countdown: the mean loss of the last 8 steps is at least 25% below
    /// that of the first 8, for sft and gift (a model that learns nothing stays near log 64 ≈ 4.2).
    func testLossFallsForSFTAndGIFT() throws {
        for k in [ObjectiveKind.sft, .gift] {
            let dir = try temporaryDirectory(self)
            let s = try makeTrainer(tinyTrainConfig(k, dir: dir)).run(outDir: dir.path)
            let l = try stepLosses(dir)
            XCTAssertEqual(l.count, 40)
            let first = l.prefix(8).reduce(0, +) / 8, last = l.suffix(8).reduce(0, +) / 8
            XCTAssertLessThan(last, 0.75 * first, "\(k): loss \(first) -> \(last)")
            XCTAssertNotNil(s.finalValLoss)
            for f in ["config.json", "metrics.jsonl", "loss.svg", "summary.txt", "model/config.json", "model/model.safetensors"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
            }
            let m = try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path)
            for key in ["step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mask_rate", "mean_weight"] {
                XCTAssertNotNil(m[5][key], "metrics lack \(key)")
            }
            XCTAssertNotNil(m.last!["val_loss"])
            let (_, trained) = try ModelFolder.load(dir.appendingPathComponent("model").path)
            XCTAssertGreaterThan(trained.count, 0)
        }
    }

    /// gift-ref caches betas per split; a validation split larger than the training split must use its
    /// own cache (it once took the training split's, by the wrong indices).
    func testGiftRefWithLargeValidationSplit() throws {
        let d = try temporaryDirectory(self)
        var c = tinyTrainConfig(.giftRef, dir: d, steps: 3); c.validationFraction = 0.7; c.microBatch = 8
        let t = try makeTrainer(c)
        XCTAssertGreaterThan(t.data.validation.count, t.data.train.count)
        let s = try t.run(outDir: d.path)
        XCTAssertTrue(s.finalLoss.isFinite)
        XCTAssertTrue(s.finalValLoss?.isFinite ?? false)
        XCTAssertEqual(t.valRefBetas.count, t.data.validation.count)
        XCTAssertEqual(t.valRefBetas[0].count, t.model.rope.maxLen - t.data.validation[0].prompt.count)
    }

    func testSameSeedSameLossesBitForBit() throws {
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        _ = try makeTrainer(tinyTrainConfig(.gift, dir: a, steps: 6)).run(outDir: a.path)
        _ = try makeTrainer(tinyTrainConfig(.gift, dir: b, steps: 6)).run(outDir: b.path)
        XCTAssertEqual(try stepLosses(a).map(\.bitPattern), try stepLosses(b).map(\.bitPattern))
    }

    /// k micro-batches of b accumulate to the same step as one micro-batch of k·b (float tolerance).
    ///
    /// Bounds (ErrorBounds.swift; n = `forwardReductionLength` at --max-length 48, the longest
    /// sequence; 16 sequences × 48 = 768 token rows): the loss is two float32 evaluations of the
    /// same Double-summed CE, ≤ 2 · `float32LossBound` relative. A gradient entry is within
    /// (3n + 768)·u of the exact one relative to Σ|terms| (`backwardReductionLength`: the weight
    /// gradients sum over all 768 rows, and Higham's bound holds for any order, so accumulating 4
    /// micro-batches of 192 rows instead of one GEMM over 768 is covered, not an extra log2(4)·u);
    /// two evaluations: 2·(3n + 768)·u, factor 1 for Σ|terms| against the largest entry. The norm is
    /// accumulated in Double from those entries: the same relative bound. The clipped gradients g·c add
    /// the clip factor c = maxNorm/‖g‖'s relative difference (≤ the norm's): 4·(3n + 768)·u of the largest.
    func testAccumulationEqualsLargerBatch() throws {
        let d = try temporaryDirectory(self)
        var c1 = tinyTrainConfig(.gift, dir: d, steps: 1); c1.microBatch = 4; c1.gradAccum = 4
        var c2 = c1; c2.microBatch = 16; c2.gradAccum = 1
        let t1 = try makeTrainer(c1), t2 = try makeTrainer(c2)
        let r1 = try t1.step(0), r2 = try t2.step(0)
        let mc = try ModelConfig.preset(c1.model)
        let backward = backwardReductionLength(mc, seqLen: c1.maxLength, tokens: c2.microBatch * c1.maxLength)
        let lossTol = 2 * float32LossBound(mc, seqLen: c1.maxLength) * abs(r2.stats.loss)
        let normTol = float32Bound(reduction: backward, factor: 2) * r2.gradNorm
        XCTAssertEqual(r1.stats.loss, r2.stats.loss, accuracy: lossTol, "|Δloss| \(abs(r1.stats.loss - r2.stats.loss)) bound \(lossTol)")
        XCTAssertEqual(r1.gradNorm, r2.gradNorm, accuracy: normTol, "|Δnorm| \(abs(r1.gradNorm - r2.gradNorm)) bound \(normTol)")
        XCTAssertEqual(r1.stats.maskedTokens, r2.stats.maskedTokens)
        // the summed (and clipped) gradients agree to float tolerance ...
        var worst: Float = 0, scale: Float = 0
        for i in 0..<t1.table.count { worst = max(worst, abs(t1.grads[i] - t2.grads[i])); scale = max(scale, abs(t2.grads[i])) }
        let gradTol = float32Bound(reduction: backward, factor: 4) * Double(scale)
        print(String(format: "accumulation: |Δloss| %.3g (bound %.3g), |Δnorm| %.3g (bound %.3g), max|Δg| %.3g (bound %.3g)",
                     abs(r1.stats.loss - r2.stats.loss), lossTol, abs(r1.gradNorm - r2.gradNorm), normTol, Double(worst), gradTol))
        XCTAssertLessThan(Double(worst), gradTol)
        // ... and so do the parameters. Behavioural, not a rounding bound: Adam's first step moves each entry
        // by lr·g/(|g| + ε) (m̂ = g, v̂ = g²), i.e. by lr·sign(g)·(1 − ε/|g|), whose sensitivity to g is
        // lr·ε/g². A relative gradient difference δ ≤ 4(3n + 768)·u ≈ 1e-3 moves it by ≤ lr·δ·ε/|g|, far below
        // 1e-2·lr unless |g| ≲ 1e-9; what the check rests on is that no entry has a gradient that small whose
        // rounding error is comparable to itself (such an entry could flip its update's sign: up to 2·lr).
        // Entries with g = 0 exactly in both runs (unused embedding rows) move identically.
        var pw: Float = 0
        for i in 0..<t1.params.count { pw = max(pw, abs(t1.params[i] - t2.params[i])) }
        XCTAssertLessThan(Double(pw), 1e-2 * r1.lr)
    }

    /// The float32 update against a Double hand computation, with a first-order running error bound
    /// that counts each float32 operation of `AdamW.update` (u = 2^-24 each, no fused multiply-adds):
    /// g = Float(grad) (1); m = b1·m + c1·g: b1, c1 rounded (1 each), two products, one sum; v = b2·v +
    /// (c2·g)·g: three products and one sum; the step a·m / (√v·rb2 + ε): lr, a and rb2 rounded (3), sqrt,
    /// product, sum, product a·m, division (5); the decay lr·wd·p: lr, wd rounded, two products (4); then
    /// p − (step + decay): two roundings. Errors carried from earlier steps enter with their coefficients
    /// (b1 for m, b2 for v, 1 for p). The m and v bounds are absolute, so the cancellation in
    /// m₂ = 0.9·0.02 − 0.01 (≈ 3.5×) is accounted for.
    func testAdamWMatchesHandComputation() {
        let c = try! ModelConfig.preset("tiny")
        let layout = ParameterLayout(c)
        let opt = AdamW(layout: layout, weightDecay: 0.1)
        let p = FloatBuffer(count: layout.count), g = FloatBuffer(count: layout.count)
        let iw = layout.head + 3, inorm = layout.lnF + 1   // a decayed matrix entry and a norm weight
        p[iw] = 0.5; p[inorm] = 1.0
        let u = float32UnitRoundoff, lr = 0.01, wd = 0.1
        var (m, v, pw, pn) = (0.0, 0.0, 0.5, 1.0)
        var (em, ev, epw, epn) = (0.0, 0.0, 0.0, 0.0)   // running error bounds
        for (t, grad) in [0.2, -0.1, 0.4].enumerated() {
            g[iw] = Float(grad); g[inorm] = Float(grad)
            opt.update(params: p.pointer, grads: g.pointer, lr: Float(lr))
            let step = Double(t + 1)
            let m0 = m, v0 = v
            m = 0.9 * m + 0.1 * grad; v = 0.999 * v + 0.001 * grad * grad
            em = 0.9 * em + 2 * u * 0.9 * abs(m0) + 3 * u * 0.1 * abs(grad) + u * abs(m)
            ev = 0.999 * ev + 2 * u * 0.999 * v0 + 5 * u * 0.001 * grad * grad + u * v
            let mh = m / (1 - pow(0.9, step)), vh = v / (1 - pow(0.999, step))
            let upd = lr * (mh / (vh.squareRoot() + 1e-8))
            let eUpd = abs(upd) * (em / abs(m) + 0.5 * ev / v + 8 * u)   // relative errors of m, √v, and 8 roundings
            let decay = lr * wd * pw
            epw = epw * (1 + lr * wd) + eUpd + abs(decay) * 4 * u + u * abs(upd + decay)
            epn = epn + eUpd + u * abs(upd)
            pw = pw - (upd + decay); pn = pn - upd
            epw += u * abs(pw); epn += u * abs(pn)
            XCTAssertEqual(Double(p[iw]), pw, accuracy: epw, "step \(t + 1): error \(abs(Double(p[iw]) - pw)) bound \(epw)")
            XCTAssertEqual(Double(p[inorm]), pn, accuracy: epn, "norm weights get no decay; error \(abs(Double(p[inorm]) - pn)) bound \(epn)")
            XCTAssertEqual(Double(opt.m[iw]), m, accuracy: em, "m error \(abs(Double(opt.m[iw]) - m)) bound \(em)")
            XCTAssertEqual(Double(opt.v[iw]), v, accuracy: ev, "v error \(abs(Double(opt.v[iw]) - v)) bound \(ev)")
            print(String(format: "AdamW step %d: |Δp| %.2g (bound %.2g), |Δp_norm| %.2g (bound %.2g), |Δm| %.2g (bound %.2g)", t + 1,
                         abs(Double(p[iw]) - pw), epw, abs(Double(p[inorm]) - pn), epn, abs(Double(opt.m[iw]) - m), em))
        }
    }

    /// The 8-lane update and the scalar formula give the same bits for every element, whichever lane or
    /// tail an element falls in (ranges of every tensor, sharded at an odd offset).
    func testAdamWVectorPathIsBitIdenticalToScalar() {
        let c = try! ModelConfig.preset("tiny")
        let layout = ParameterLayout(c)
        let shard = 13..<(layout.count - 5)
        let opt = AdamW(layout: layout, weightDecay: 0.1, shard: shard)
        let p0 = randomFloats(layout.count, seed: 1), g0 = randomFloats(layout.count, seed: 2, scale: 0.1)
        let p = FloatBuffer(count: layout.count)
        for i in 0..<p.count { p[i] = p0[i] }
        var m = [Float](repeating: 0, count: layout.count), v = m, q = p0
        let norms = Set(layout.tensors.filter(\.isNorm).flatMap { $0.offset..<($0.offset + $0.count) })
        for step in 1...3 {
            g0.withUnsafeBufferPointer { opt.update(params: p.pointer, grads: $0.baseAddress!, lr: 0.01) }
            let bc1 = 1 - pow(0.9, Double(step)), bc2 = 1 - pow(0.999, Double(step))
            let a = Float(0.01 / bc1), rb2 = Float(1 / bc2.squareRoot())
            let b1 = Float(0.9), c1 = Float(1 - 0.9), b2 = Float(0.999), c2 = Float(1 - 0.999), eps = Float(1e-8), lr: Float = 0.01
            for i in shard {
                let wd: Float = norms.contains(i) ? 0 : 0.1, gi = g0[i]
                m[i] = b1 * m[i] + c1 * gi
                v[i] = b2 * v[i] + c2 * gi * gi
                q[i] -= a * m[i] / (v[i].squareRoot() * rb2 + eps) + lr * wd * q[i]
            }
        }
        for i in 0..<layout.count {
            XCTAssertEqual(p[i].bitPattern, q[i].bitPattern, "parameter \(i)")
            if shard.contains(i) { XCTAssertEqual(opt.m[i - 13].bitPattern, m[i].bitPattern, "m \(i)") }
        }
    }

    func testSchedulesMatchHandValues() {
        // total 10 steps, 2 warmup, base 1
        let total = 10, w = 2
        XCTAssertEqual(LRSchedule.linear.lr(step: 0, total: total, warmup: w, base: 1), 0.5)
        XCTAssertEqual(LRSchedule.cosine.lr(step: 1, total: total, warmup: w, base: 1), 1.0)
        XCTAssertEqual(LRSchedule.linear.lr(step: 2, total: total, warmup: w, base: 1), 1.0)
        XCTAssertEqual(LRSchedule.linear.lr(step: 6, total: total, warmup: w, base: 1), 0.5, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.linear.lr(step: 9, total: total, warmup: w, base: 1), 0.125, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.cosine.lr(step: 6, total: total, warmup: w, base: 1), 0.5, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.cosine.lr(step: 4, total: total, warmup: w, base: 1), 0.5 * (1 + cos(Double.pi / 4)), accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.constant.lr(step: 9, total: total, warmup: w, base: 2e-5), 2e-5)
        XCTAssertEqual(LRSchedule.warmupSteps(ratio: 0.1, total: 25), 3)
        XCTAssertEqual(LRSchedule.linear.lr(step: 0, total: 5, warmup: 0, base: 1), 1)
    }

    func testClipping() {
        let g = FloatBuffer([3, 4, 0, 0])
        XCTAssertEqual(GradClip.clip(g.pointer, count: 4, maxNorm: 10), 5, accuracy: 1e-12)
        XCTAssertEqual(g.array, [3, 4, 0, 0])   // below the bound: untouched
        XCTAssertEqual(GradClip.clip(g.pointer, count: 4, maxNorm: 1), 5, accuracy: 1e-12)
        XCTAssertEqual(GradClip.norm(g.pointer, count: 4), 1, accuracy: 1e-6)
        XCTAssertEqual(Double(g[0]), 0.6, accuracy: 1e-6)
    }

    // MARK: bad input

    func jsonl(_ lines: [String], _ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("data.jsonl").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func dataConfig(_ path: String, _ dir: URL) -> RunConfig {
        var c = tinyTrainConfig(.sft, dir: dir, steps: 2); c.data = path; c.microBatch = 2; c.validationFraction = 0
        return c
    }

    func testMalformedLineNamesFileAndLine() throws {
        let dir = try temporaryDirectory(self)
        let good = #"{"prompt": "1 2 3 to 6:", "response": "1+2+3"}"#
        let path = try jsonl([good, good, #"{"prompt": "x", "response": }"#, good, good], dir)
        let mc = try ModelConfig.preset("tiny")
        XCTAssertThrowsError(try TrainData.load(dataConfig(path, dir), model: mc)) { e in
            XCTAssertTrue("\(e)".contains("data.jsonl:3"), "\(e)")
        }
        var c = dataConfig(path, dir); c.skipBadLines = true
        let d = try TrainData.load(c, model: mc)
        XCTAssertEqual(d.report.skippedBadLines, 1)
        XCTAssertEqual(d.train.count, 4)
    }

    func testEmptyResponseSkippedAndOutOfVocabularyIdNamed() throws {
        let dir = try temporaryDirectory(self)
        let mc = try ModelConfig.preset("tiny")
        let good = #"{"prompt_ids": [1, 2], "response_ids": [3, 4]}"#
        let d = try TrainData.load(dataConfig(try jsonl([good, #"{"prompt_ids": [1], "response_ids": []}"#, good, good], dir), dir), model: mc)
        XCTAssertEqual(d.report.skippedEmptyResponse, 1)
        XCTAssertEqual(d.train.count, 3)
        let bad = try jsonl([good, #"{"prompt_ids": [1], "response_ids": [70]}"#], dir)
        XCTAssertThrowsError(try TrainData.load(dataConfig(bad, dir), model: mc)) { e in
            XCTAssertTrue("\(e)".contains(":2") && "\(e)".contains("70"), "\(e)")
        }
    }

    func testTokenizerVocabularyMismatchNamesBothSizes() throws {
        var mc = try ModelConfig.preset("tiny")
        mc.vocabSize = 40; mc.embeddingSize = 40; mc.maskTokenId = 39; mc.eosTokenId = 38; mc.padTokenId = 38
        let dir = try temporaryDirectory(self)
        XCTAssertThrowsError(try TrainData.load(tinyTrainConfig(.sft, dir: dir), model: mc)) { e in
            XCTAssertTrue("\(e)".contains("64") && "\(e)".contains("40"), "\(e)")
        }
    }

    /// A non-finite loss skips the step with a warning; several in a row stop the run with a clear
    /// message, and the parameters before them are saved.
    func testNonFiniteStepsAreSkippedThenStop() throws {
        let dir = try temporaryDirectory(self)
        var c = tinyTrainConfig(.sft, dir: dir, steps: 10); c.maxBadSteps = 3
        let t = try makeTrainer(c)
        var warnings: [String] = []
        t.log = { warnings.append($0) }
        t.params[t.model.layout.head] = .nan
        XCTAssertThrowsError(try t.run(outDir: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("3 consecutive non-finite steps"), "\(e)")
        }
        XCTAssertEqual(warnings.filter { $0.contains("non-finite") }.count, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model-last-good/model.safetensors").path))
        let m = try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path)
        XCTAssertEqual(m.count, 2)   // the third bad step stops before its line
        XCTAssertEqual(m[0]["skipped"] as? Bool, true)
    }

    /// --max-length leaves room for the EOS every sequence gets beyond its response: one with --extra-eos 1,
    /// none with --extra-eos 0 (where the longest example then fills max_length itself).
    func testTruncationLeavesRoomForTheExtraEOSOnly() throws {
        let dir = try temporaryDirectory(self)
        var c = tinyTrainConfig(.sft, dir: dir); c.maxLength = 10
        let mc = try ModelConfig.preset(c.model)
        XCTAssertEqual(try TrainData.load(c, model: mc).maxExampleLength, 9)
        c.extraEOS = 0
        let d = try TrainData.load(c, model: mc)
        XCTAssertEqual(d.maxExampleLength, 10)
        XCTAssertGreaterThan(d.report.truncated, 0)
    }

    func testConfigFileUnknownFieldAndTypes() throws {
        let dir = try temporaryDirectory(self)
        let p = dir.appendingPathComponent("c.json").path
        try #"{"lr": 1e-4, "schedule": "linear", "epochs": 3}"#.write(toFile: p, atomically: true, encoding: .utf8)
        var c = RunConfig(); try c.apply(file: p)
        XCTAssertEqual(c.lr, 1e-4); XCTAssertEqual(c.schedule, .linear); XCTAssertEqual(c.epochs, 3)
        try #"{"lrr": 1}"#.write(toFile: p, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try c.apply(file: p)) { XCTAssertTrue("\($0)".contains("unknown field 'lrr'"), "\($0)") }
        try #"{"schedule": "cosin"}"#.write(toFile: p, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try c.apply(file: p)) { XCTAssertTrue("\($0)".contains("'schedule'"), "\($0)") }
        try #"{"precision": "fp16"}"#.write(toFile: p, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try c.apply(file: p)) { XCTAssertTrue("\($0)".contains("'precision' must be fp32 or bf16"), "\($0)") }
        try #"{"gemm": "mkl"}"#.write(toFile: p, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try c.apply(file: p)) { XCTAssertTrue("\($0)".contains("'gemm' must be auto, openblas or onednn"), "\($0)") }
        try #"{"precision": "bf16", "gemm": "openblas"}"#.write(toFile: p, atomically: true, encoding: .utf8)
        try c.apply(file: p)
        XCTAssertEqual(c.precision, .bf16); XCTAssertEqual(c.gemm, .openblas)
        c.precision = .fp32; c.gemm = .auto
        // the written config reads back to the same run
        var back = RunConfig()
        try RunConfig.quickstart.jsonData().write(to: URL(fileURLWithPath: p))
        try back.apply(file: p)
        XCTAssertEqual(back, RunConfig.quickstart)
    }
}
