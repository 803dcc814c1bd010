import Foundation
import XCTest
@testable import GiftCore

/// The whole model + objective: the analytic gradient of the loss (float32, flat buffer) against
/// central finite differences of the independent float64 reference (`Reference`), on the `tiny` preset
/// with a fixed mask and t. Betas are held fixed in the differences: no gradient flows through them.
/// Tolerance: |analytic − numeric| ≤ 2e-3·|numeric| + 2e-4·max|grad of that tensor|. The reference is
/// float64 (h = 1e-4, truncation ≈ 1e-8), so the error is float32 accumulation (≈ 1e-6 relative); a
/// wrong term in any backward is off by far more than 1e-3 of its tensor's scale.
/// Derivation (ErrorBounds.swift): n = `forwardReductionLength` (1192 for tiny at L = 10); the backward
/// runs two GEMMs per forward GEMM (reductions over the other dimension and over the B·L = 20 rows), so
/// the float32 gradient is within ≈ (3n + 20)·u ≈ 2.1e-4 of its tensor's largest entry: atol 2e-4 is
/// that bound; rtol 2e-3 adds slack for entries with their own cancellation and is still 500× below
/// the O(1) error of a wrong term. The loss: 2n·u relative (float32 forward; CE is 2-Lipschitz in the
/// logits, whose magnitude at std 0.2 is below the loss's ≈ ln 64).
final class ModelGradientTests: XCTestCase {
    static func tinyBatch(_ c: ModelConfig) -> [TrainSequence] {
        let L = 10
        var seqs: [TrainSequence] = []
        for (b, (P, t)) in [(3, 0.35), (5, 0.8)].enumerated() {
            let r = CounterRNG(99, UInt64(b))
            var toks = (0..<L).map { Int32(r.bits(UInt64($0)) % UInt64(c.vocab - 2)) }
            toks[L - 1] = Int32(c.eosTokenId)
            var mask = [Bool](repeating: false, count: L)
            for i in P..<L { mask[i] = (i + b) % 2 == 0 || i == L - 1 }
            seqs.append(TrainSequence(tokens: toks, promptLength: P, exampleIndex: b, fixedT: t, fixedMask: mask))
        }
        return seqs
    }

    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    /// On every fp32 backend here (OpenBLAS; oneDNN where installed).
    func runCheck(_ opts: ObjectiveOptions) throws {
        for gemm in fp32Backends {
            try useBackend(gemm, precision: .fp32)
            try Self.runCheckOnce(opts)
        }
    }

    /// `preset`: "dream-tiny" checks Dream's path (q/k/v biases, drawn like the matrices here, and the
    /// shifted rows) against the reference's Dream.
    static func runCheckOnce(_ opts: ObjectiveOptions, preset: String = "tiny") throws {
        let c = try ModelConfig.preset(preset)
        let model = Transformer(config: c, maxSeqLen: 64)
        let params = model.layout.initialize(seed: 5, std: 0.2)   // larger than 0.02 so every path matters
        for t in model.layout.tensors where t.isBias {
            let r = CounterRNG(17, UInt64(t.offset))
            for j in 0..<t.count { params[t.offset + j] = Float(0.2 * r.normal(UInt64(j))) }
        }
        var seqs = Self.tinyBatch(c)
        let runner = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
        if opts.kind == .giftRef {
            var o = opts; o.kind = .gift
            let pass1 = ObjectiveRunner(model: model, options: o, capacityTokens: 64, maxSeqLen: 64)
            let betas = pass1.pass1Betas(params.pointer, seqs)
            for b in seqs.indices {
                seqs[b].cachedBetas = (seqs[b].promptLength..<10).map { Float(betas[b * 10 + $0]) }
            }
        }
        let grads = FloatBuffer(count: model.layout.count)
        let (st, prep) = runner.run(params.pointer, grads: grads.pointer, seqs, seed: 0, step: 0,
                                    normalizer: .of(seqs))
        var ref = Reference(config: c, params: params)
        let frozen = (0..<seqs.count).map { b in (0..<10).map { prep.betas[b * 10 + $0] } }
        let refLoss = ref.objective(opts, seqs, frozenBetas: frozen).loss
        let n = forwardReductionLength(c, seqLen: 10)
        XCTAssertEqual(st.loss, refLoss, accuracy: float32Bound(reduction: n, factor: 2) * abs(refLoss), "\(opts.kind) loss")
        let h = 1e-4
        for t in model.layout.tensors {
            let g = (0..<t.count).map { grads[t.offset + $0] }
            let gmax = g.map { Double(abs($0)) }.max()!
            // a few entries per tensor, including the largest-gradient one
            let argmax = g.indices.max { abs(g[$0]) < abs(g[$1]) }!
            let sample = Set([argmax, 0, t.count / 3, (t.count * 7) / 11, t.count - 1])
            for j in sample {
                let x0 = ref.w[t.name]![j]
                ref.w[t.name]![j] = x0 + h; let fp = ref.objective(opts, seqs, frozenBetas: frozen).loss
                ref.w[t.name]![j] = x0 - h; let fm = ref.objective(opts, seqs, frozenBetas: frozen).loss
                ref.w[t.name]![j] = x0
                let num = (fp - fm) / (2 * h)
                XCTAssertLessThanOrEqual(abs(Double(g[j]) - num), 2e-3 * abs(num) + float32Bound(reduction: 3 * n + 20, factor: 1) * gmax,
                                         "\(Gemm.summary) \(opts.kind) \(t.name)[\(j)]: analytic \(g[j]) numeric \(num)")
            }
        }
    }

    func testGradientSFT() throws { try runCheck(ObjectiveOptions(kind: .sft)) }
    func testGradientGIFT() throws { try runCheck(ObjectiveOptions(kind: .gift)) }
    func testGradientGIFTExactSequenceNorm() throws {
        var o = ObjectiveOptions(kind: .gift); o.giftWeight = .exact; o.lossNorm = .sequence; o.betaReference = .content
        try runCheck(o)
    }
    func testGradientGIFTRaw() throws { try runCheck(ObjectiveOptions(kind: .giftRaw)) }
    func testGradientNLL() throws { try runCheck(ObjectiveOptions(kind: .nll)) }
    func testGradientGIFTSW() throws { try runCheck(ObjectiveOptions(kind: .giftSW)) }
    func testGradientDream() throws { try runCheck(ObjectiveOptions(kind: .dream)) }
    func testGradientGIFTRef() throws { try runCheck(ObjectiveOptions(kind: .giftRef)) }
}
