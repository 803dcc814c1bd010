import Foundation
import XCTest
@testable import GiftCore

/// Pass 1's trimmed forward (`Transformer.forwardPass1`: block 0's QKV once per distinct token, the last
/// block after attention and ln_f only at the response rows) against the plain full `forward` + `head`
/// + entropy (or NLL), on random parameters and prompts of different lengths within a batch.
/// Tolerances (ErrorBounds.swift): B = n·u with n = `forwardReductionLength` (every float32 reduction
/// along the forward: 4416 for mini at L = 8, 2400 for tiny) bounds each float32 forward's logits and
/// ln_f states against exact arithmetic, relative to the row's largest magnitude. Factor 1: the bound is
/// the worst case n·u, while rounding errors of random data grow like √n·u, so the √n ≈ 50–70 headroom
/// covers the ratio Σ|terms| / max|row| and the amplification through layers (RMSNorm and softmax
/// rescale, std-0.3 weights keep the residual stream of order 1). Checked:
/// - each forward (trimmed, full) against the float64 `Reference`: ≤ B — trimming costs no accuracy
///   beyond float32's bound. (Not "trimmed ≤ 2 × full": both are only bounded, not equal, and another
///   CPU's kernels move either one within its bound.)
/// - trimmed against full, ln_f states and logits: ≤ 2B (triangle inequality through the exact value;
///   the arithmetic at every row read is the same, only the GEMMs' row counts, and with them the
///   kernels' summation orders, differ, so the difference is often exactly 0).
/// - betas (entropy^γ or NLL) of the trimmed forward against those of the full forward's logits: the
///   logits differ by δ ≤ 2B·max|z|; entropy moves by ≤ S·δ with S = Σ pᵢ|log pᵢ + H| (its gradient is
///   −pᵢ(log pᵢ + H)), the NLL by ≤ 2δ; each float32 evaluation adds ≤ 2(V + 10)u·(max z − min z + 1)
///   (a V-term sum of exps of 8u accuracy, the division and the log); then x^γ (γ ≤ 1) maps an error
///   ε of x to ≤ min(ε^γ, γ(x − ε)^(γ−1)·ε).
/// A wrong row, token or stale activation gives O(1) relative errors: orders of magnitude above these.
final class Pass1Tests: XCTestCase {
    /// B of the doc comment: the float32 forward bound, relative to a row's largest magnitude.
    static func forwardBound(_ c: ModelConfig, seqLen L: Int) -> Double {
        float32Bound(reduction: forwardReductionLength(c, seqLen: L), factor: 1)
    }

    /// max |a − b| over a row, relative to the row's largest |b|.
    func rowError(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var e: Float = 0, m: Float = 0
        for i in 0..<n { e = max(e, abs(a[i] - b[i])); m = max(m, abs(b[i])) }
        return Double(e / max(m, 1e-30))
    }

    /// |a − b| ≤ tol, both finite.
    func assertClose(_ a: Double, _ b: Double, tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssert(a.isFinite && b.isFinite, "\(what): \(a) vs \(b)", file: file, line: line)
        XCTAssertLessThanOrEqual(abs(a - b), tol, "\(what): \(a) vs \(b) (bound \(tol))", file: file, line: line)
    }

    /// Sequences of length L with the given prompt lengths; tokens random below the mask id.
    func batch(_ c: ModelConfig, L: Int, prompts: [Int], seed: UInt64) -> [TrainSequence] {
        prompts.enumerated().map { b, P in
            let r = CounterRNG(seed, 17, UInt64(b))
            let toks = (0..<L).map { Int32(r.bits(UInt64($0)) % UInt64(c.maskTokenId)) }
            return TrainSequence(tokens: toks, promptLength: P, exampleIndex: b)
        }
    }

    /// Runs both forwards on `seqs` (pass 1's input: response = mask) and compares states, logits, betas.
    func check(_ c: ModelConfig, _ seqs: [TrainSequence], paramSeed: UInt64, _ label: String,
               file: StaticString = #filePath, line: UInt = #line) {
        let B = seqs.count, L = seqs[0].tokens.count, d = c.dModel, V = c.vocab
        let model = Transformer(config: c, maxSeqLen: L)
        let params = model.layout.initialize(seed: paramSeed, std: 0.3)
        var input: [Int32] = [], rows: [Int32] = []
        for (b, s) in seqs.enumerated() {
            for i in 0..<L {
                input.append(i >= s.promptLength ? Int32(c.maskTokenId) : s.tokens[i])
                if i >= s.promptLength { rows.append(Int32(b * L + i)) }
            }
        }
        // full forward, head, at every response row
        let full = Activations(config: c, capacityTokens: B * L, maxSeqLen: L, training: false)
        model.forward(params.pointer, tokens: input, batch: B, seqLen: L, acts: full)
        // trimmed, on activations that first held something else (nothing stale may leak in)
        let trim = Activations(config: c, capacityTokens: B * L, maxSeqLen: L, training: false)
        model.forward(params.pointer, tokens: input.map { _ in Int32(1) }, batch: B, seqLen: L, acts: trim)
        model.forwardPass1(params.pointer, tokens: input, batch: B, seqLen: L, outputRows: rows, acts: trim)
        var worstHf = 0.0, worstLogit = 0.0, worstTrim64 = 0.0, worstFull64 = 0.0
        for t in rows {
            let e = rowError(trim.hf + Int(t) * d, full.hf + Int(t) * d, d)
            worstHf = max(worstHf, e)
        }
        let lf = model.head(params.pointer, rows: rows, acts: full), lt = model.head(params.pointer, rows: rows, acts: trim)
        // and both against the float64 reference: trimming must cost no accuracy
        let ref = Reference(config: c, params: params)
        var refLogits: [Int: [[Double]]] = [:]
        for (r, t) in rows.enumerated() {
            worstLogit = max(worstLogit, rowError(lt + r * V, lf + r * V, V))
            let b = Int(t) / L
            if refLogits[b] == nil { refLogits[b] = ref.logits(input[(b * L)..<(b * L + L)].map { Int($0) }) }
            let z = refLogits[b]![Int(t) % L], scale = z.map(abs).max()!
            for i in 0..<V {
                worstTrim64 = max(worstTrim64, abs(Double(lt[r * V + i]) - z[i]) / scale)
                worstFull64 = max(worstFull64, abs(Double(lf[r * V + i]) - z[i]) / scale)
            }
        }
        let bound = Self.forwardBound(c, seqLen: L)
        print("pass1 \(label): hf \(worstHf) logits \(worstLogit) (bound \(2 * bound)) vs float64: trimmed \(worstTrim64) full \(worstFull64) (bound \(bound))")
        XCTAssertLessThanOrEqual(worstHf, 2 * bound, "\(label) ln_f states", file: file, line: line)
        XCTAssertLessThanOrEqual(worstLogit, 2 * bound, "\(label) logits", file: file, line: line)
        XCTAssertLessThanOrEqual(worstTrim64, bound, "\(label) trimmed forward vs float64", file: file, line: line)
        XCTAssertLessThanOrEqual(worstFull64, bound, "\(label) full forward vs float64", file: file, line: line)

        // pass1Betas (which uses the trimmed forward) against entropy / NLL of the full forward's logits
        for kind in [ObjectiveKind.gift, .nll] {
            let opts = ObjectiveOptions(kind: kind)
            let runner = ObjectiveRunner(model: model, options: opts, capacityTokens: B * L, maxSeqLen: L)
            let betas = runner.pass1Betas(params.pointer, seqs)
            XCTAssertEqual(betas.count, B * L, file: file, line: line)
            model.forward(params.pointer, tokens: input, batch: B, seqLen: L, acts: full)
            let z = model.head(params.pointer, rows: rows, acts: full)
            var tmp = [Float](repeating: 0, count: V + 16)
            var want = [Double](repeating: 0, count: B * L), tol = want
            for (r, pos) in rows.enumerated() {
                // the bound of the doc comment, from this row's logits
                let zr = (0..<V).map { Double(z[r * V + $0]) }
                let zmax = zr.max()!, zmin = zr.min()!, zabs = zr.map(abs).max()!
                let lse = zmax + Foundation.log(zr.reduce(0) { $0 + Foundation.exp($1 - zmax) })
                let H = -zr.reduce(0) { $0 + Foundation.exp($1 - lse) * ($1 - lse) }
                let S = zr.reduce(0) { $0 + Foundation.exp($1 - lse) * abs($1 - lse + H) }
                let delta = 2 * bound * zabs, evalErr = float32Bound(reduction: V + 10, factor: 2) * (zmax - zmin + 1)
                let eps = (kind == .nll ? 2 * delta : S * delta) + 2 * evalErr
                let v = kind == .nll
                    ? Softmax.crossEntropy(z + r * V, count: V, target: Int(seqs[Int(pos) / L].tokens[Int(pos) % L]),
                                           grad: nil, scale: 0, tmp: &tmp)
                    : Softmax.entropy(z + r * V, count: V, tmp: &tmp)
                let x = max(0, Double(v)), g = opts.gamma
                want[Int(pos)] = Foundation.pow(x, g)
                tol[Int(pos)] = x > eps ? min(Foundation.pow(eps, g), g * Foundation.pow(x - eps, g - 1) * eps) : Foundation.pow(eps, g)
            }
            for p in 0..<(B * L) {
                if want[p] == 0 {
                    XCTAssertEqual(betas[p], 0, "\(label) \(kind) beta at \(p)", file: file, line: line)
                } else {
                    assertClose(betas[p], want[p], tol: tol[p], "\(label) \(kind) beta at \(p)", file: file, line: line)
                }
            }
        }
    }

    func presets() throws -> [(String, ModelConfig)] {
        [("tiny", try ModelConfig.preset("tiny")), ("mini", try ModelConfig.preset("mini")),
         // one block (block 0 is also the last) with grouped-query heads
         ("1-layer gqa", ModelConfig(dModel: 64, nHeads: 4, nKVHeads: 2, nLayers: 1, mlpHiddenSize: 176,
                                     vocabSize: 64, maskTokenId: 63))]
    }

    /// Prompts of different lengths, including 0 (all response) and L (no response rows).
    func testMixedPromptLengths() throws {
        for (name, c) in try presets() {
            check(c, batch(c, L: 24, prompts: [5, 0, 17, 24, 23], seed: 1), paramSeed: 3, "\(name) mixed")
            check(c, batch(c, L: 40, prompts: [0, 0], seed: 2), paramSeed: 4, "\(name) all response")
            check(c, batch(c, L: 13, prompts: [12], seed: 3), paramSeed: 5, "\(name) one response row")
        }
    }

    /// Distinct tokens and one response row: too few repeats to deduplicate block 0 (the plain path).
    func testNoRepeatedTokens() throws {
        for (name, c) in try presets() {
            var s = TrainSequence(tokens: (0..<8).map { Int32($0 * 5) }, promptLength: 7)
            check(c, [s], paramSeed: 6, "\(name) distinct")
            s.promptLength = 6   // two mask rows: 1 row of 8 saved, just enough to deduplicate
            check(c, [s], paramSeed: 7, "\(name) distinct+2")
        }
        XCTAssertNil(Transformer.distinctTokens([1, 2, 3, 4, 5, 6, 7, 63], vocab: 64))
        let dd = Transformer.distinctTokens([1, 63, 2, 63, 63, 1, 7, 63], vocab: 64)
        XCTAssertEqual(dd?.first, [0, 1, 2, 6])
        XCTAssertEqual(dd?.slot, [0, 1, 2, 1, 1, 0, 3, 1])
    }

    /// No response row at all: betas are all 0 and the trimmed forward accepts an empty row list.
    func testNoResponseRows() throws {
        let c = try ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 16)
        let params = model.layout.initialize(seed: 2, std: 0.3)
        let seqs = batch(c, L: 16, prompts: [16, 16], seed: 9)
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .gift), capacityTokens: 32, maxSeqLen: 16)
        XCTAssertEqual(runner.pass1Betas(params.pointer, seqs), [Double](repeating: 0, count: 32))
        model.forwardPass1(params.pointer, tokens: seqs.flatMap(\.tokens), batch: 2, seqLen: 16, outputRows: [],
                           acts: runner.infer)
    }
}
