import Foundation
import XCTest
@testable import GiftCore

/// bf16 matmul inputs at the model level: against a float64 reference that rounds the same operands,
/// and a short bf16 training run against the fp32 one.
final class BF16Tests: XCTestCase {
    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    /// Every bf16 kernel here: the emulation on OpenBLAS, and oneDNN's bf16 kernel where installed.
    var kernels: [(String, BF16Kernel)] {
        Gemm.onednnAvailable ? [("openblas", .emulated), ("onednn", .native)] : [("openblas", .emulated)]
    }

    /// The golden model and batch: gift's bf16 inspect against `Reference` with bf16 rounding at the same
    /// points (matmul operands), for sft and gift. What remains is float32 accumulation (≤ n·u, n the
    /// forward's reduction lengths: ~1e-4 here, ErrorBounds.swift) and, above all, the operand that lies
    /// within that float32 error of a bf16 rounding boundary and rounds the other way: it moves by one
    /// bf16 ulp, ≤ 2·2^-8 relative, so its term in a dot product moves by ≤ 2^-7 of that term, which is at
    /// most of the order of the largest logit. Bounds:
    /// - logits: ≤ 2^-7 (= 2·u_bf16) of their largest magnitude, i.e. one flipped operand's worth
    ///   (a flip is ≤ 2^-7 of a term, terms are below the largest output; several flips in one entry
    ///   have random signs and are rare: the probability of one is ~ n·u / 2^-8 per operand);
    /// - loss: 2n·u relative, the float32 forward bound (n = `forwardReductionLength`; factor 2: CE is
    ///   2-Lipschitz in the logits). A flip's logit error has a random sign and the loss is a mean over
    ///   tokens, so flips average out (measured |Δloss| ≈ 1e-7 with logit flips of 8e-4 present), while
    ///   the unrounded reference is off by 0.05: the bound still tells the two apart.
    /// The unrounded float64 reference must lie outside the logit bound (it is ~70x further than the bf16
    /// one: the golden model is "hot", weights of std 0.53 at width 32 make attention very peaked), so
    /// the test tells bf16 rounding at the right points from none.
    func testInspectMatchesABF16Reference() throws {
        let (config, params) = try ModelFolder.load(goldenDir.appendingPathComponent("llada-tiny").path)
        let model = Transformer(config: config)
        let seqs = try Inspect.readBatch(path: goldenDir.appendingPathComponent("batch.json").path, config: config)
        for kind in [ObjectiveKind.sft, .gift] {
            var ref = Reference(config: config, params: params)
            let exact = ref.objective(ObjectiveOptions(kind: kind), seqs)
            ref.bf16 = true
            let want = ref.objective(ObjectiveOptions(kind: kind), seqs)
            for (gemm, kernel) in kernels {
                try useBackend(gemm, precision: .bf16, kernel: kernel)
                let out = Inspect.run(model: model, params: params, options: ObjectiveOptions(kind: kind), batch: seqs)
                let tag = "\(Gemm.summary) \(kind)"
                let refLogits = want.logits.flatMap { $0.flatMap { $0 } }, exactLogits = exact.logits.flatMap { $0.flatMap { $0 } }
                let got = out.logits.array
                XCTAssertEqual(got.count, refLogits.count)
                let scale = refLogits.map { abs($0) }.max()!
                let logitBound = 2 * bfloat16UnitRoundoff
                let lossBound = float32Bound(reduction: forwardReductionLength(config, seqLen: out.seqLen), factor: 2) * abs(want.loss)
                XCTAssertEqual(out.loss, want.loss, accuracy: lossBound, tag)
                var err = 0.0, errExact = 0.0
                for i in got.indices {
                    err = max(err, abs(Double(got[i]) - refLogits[i]) / scale)
                    errExact = max(errExact, abs(Double(got[i]) - exactLogits[i]) / scale)
                }
                print(String(format: "bf16 %@: loss %.6f, bf16 reference %.6f (|Δ| %.2e, bound %.2e), fp64 %.6f; logits off the bf16 reference by %.2e (bound %.2e), off fp64 by %.2e",
                             tag, out.loss, want.loss, abs(out.loss - want.loss), lossBound, exact.loss, err, logitBound, errExact))
                XCTAssertLessThanOrEqual(err, logitBound, "\(tag) logits vs the bf16 reference")
                XCTAssertGreaterThan(errExact, logitBound, "\(tag): the unrounded reference must lie outside the bf16 bound")
            }
        }
    }

    /// 40 steps of the tiny model on Countdown with GIFT: the bf16 run's mean loss over the last 8
    /// steps is within 5% of the fp32 run's (same seed, data and steps), and both learned.
    func testBF16TrainingTracksFP32() throws {
        func run(_ precision: Precision, kernel: BF16Kernel?, gemm: String) throws -> [Double] {
            let dir = try temporaryDirectory(self)
            var c = tinyTrainConfig(.gift, dir: dir)
            c.precision = precision; c.gemm = GemmBackendChoice(rawValue: gemm)!
            let t = try makeTrainer(c)
            if let kernel { try useBackend(gemm, precision: precision, kernel: kernel) }
            _ = try t.run(outDir: dir.path)
            XCTAssertEqual(Gemm.precision, precision)
            return try stepLosses(dir)
        }
        let fp32 = try run(.fp32, kernel: nil, gemm: "openblas")
        let last32 = fp32.suffix(8).reduce(0, +) / 8
        XCTAssertLessThan(last32, 0.75 * fp32.prefix(8).reduce(0, +) / 8, "fp32 run learned")
        for (gemm, kernel) in kernels {
            let bf = try run(.bf16, kernel: kernel, gemm: gemm)
            XCTAssertEqual(bf.count, 40)
            XCTAssertNotEqual(bf, fp32, "bf16 really changes the arithmetic")
            let last = bf.suffix(8).reduce(0, +) / 8
            print(String(format: "bf16 training (%@ %@): last-8 mean loss %.4f vs fp32 %.4f (%.2f%%)", gemm, kernel.rawValue,
                         last, last32, 100 * (last - last32) / last32))
            // behavioural, not a rounding bound: bf16 operand rounding (2^-8) changes each step's gradient by
            // ~1e-2 relative and the trajectory drifts; 5% is a margin on what training reaches (measured 0.06%)
            XCTAssertEqual(last, last32, accuracy: 0.05 * last32, "\(gemm) \(kernel)")
        }
    }
}
