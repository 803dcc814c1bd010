import Foundation
import XCTest
@testable import GiftCore

/// Every case of shared/golden (an independent float64 implementation): loss to 1e-5 relative, betas,
/// weights, logits and every gradient to 1e-4 of each tensor's largest magnitude (its README's bounds).
final class GoldenTests: XCTestCase {
    struct Case: Decodable { let file: String; let objective: String; let switches: [String: String]; let loss: Double }

    static func options(_ c: Case) throws -> ObjectiveOptions {
        var o = ObjectiveOptions(kind: ObjectiveKind(rawValue: c.objective)!)
        for (k, v) in c.switches {
            switch k {
            case "gift_weight": o.giftWeight = GiftWeight(rawValue: v)!
            case "beta_reference": o.betaReference = BetaReference(rawValue: v)!
            case "loss_norm": o.lossNorm = LossNorm(rawValue: v)!
            case "entropy_power": o.entropyPower = Double(v)!
            default: XCTFail("unknown switch \(k)")
            }
        }
        return o
    }

    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    func assertClose(_ got: [Float], _ want: [Float], _ what: String, rel: Float = 1e-4) {
        XCTAssertEqual(got.count, want.count, what)
        let scale = max(want.map { abs($0) }.max() ?? 0, 1e-30)
        var worst: Float = 0, at = 0
        for i in 0..<min(got.count, want.count) where abs(got[i] - want[i]) > worst { worst = abs(got[i] - want[i]); at = i }
        XCTAssertLessThanOrEqual(worst / scale, rel, "\(what): worst at \(at): \(got[at]) vs \(want[at])")
        worstTensor = max(worstTensor, Double(worst / scale))
    }

    // the largest errors seen per setting, printed so the stated bounds can be compared with them
    var worstTensor = 0.0, worstLoss = 0.0
    func worst(_ got: Double, _ want: Double) { worstLoss = max(worstLoss, abs(got - want) / abs(want)) }

    /// Every case on every fp32 backend, to the README's tolerances.
    func testAllGoldenCases() throws {
        for gemm in fp32Backends {
            try useBackend(gemm, precision: .fp32)
            try checkAllCases(lossRel: 1e-5, tensorRel: 1e-4)
        }
    }

    /// bf16 matmul inputs (fp32 accumulation, everything else fp32) against the same float64 golden
    /// values. The golden model is "hot" (weights of std 0.53 at width 32: attention scores of std ~9),
    /// so the 2^-9 relative rounding of each operand is amplified: measured here, loss off by 8.6e-3
    /// relative and the worst tensor entry by 0.23 of its tensor's largest magnitude, the same for both
    /// kernels. The bounds are loss 2e-2 and tensors 0.3 (fp32: 1e-5 and 1e-4). The tight check of the
    /// bf16 path is BF16Tests, against a float64 reference that rounds the same operands.
    func testAllGoldenCasesInBF16() throws {
        var settings: [(String, BF16Kernel)] = [("openblas", .emulated)]
        if Gemm.onednnAvailable { settings.append(("onednn", .native)) }
        for (gemm, kernel) in settings {
            try useBackend(gemm, precision: .bf16, kernel: kernel)
            try checkAllCases(lossRel: 2e-2, tensorRel: 0.3)
        }
    }

    func checkAllCases(lossRel: Double, tensorRel: Float) throws {
        worstTensor = 0; worstLoss = 0
        defer { print(String(format: "golden %@: worst loss error %.2e relative, worst tensor error %.2e of the tensor's scale", Gemm.summary, worstLoss, worstTensor)) }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: goldenDir.appendingPathComponent("expected.json")))
        XCTAssertEqual(cases.count, 9)
        let (config, params) = try ModelFolder.load(goldenDir.appendingPathComponent("llada-tiny").path)
        let model = Transformer(config: config)
        let batch = try Inspect.readBatch(path: goldenDir.appendingPathComponent("batch.json").path, config: config)
        for c in cases {
            let out = Inspect.run(model: model, params: params, options: try Self.options(c), batch: batch)
            let g = try SafetensorsFile.read(path: goldenDir.appendingPathComponent(c.file).path)
            let tag = "\(Gemm.summary) \(c.file)"
            XCTAssertEqual(out.loss, c.loss, accuracy: lossRel * abs(c.loss), "\(tag) loss")
            worst(out.loss, c.loss)
            XCTAssertEqual(Double(try g.floats("loss")[0]), c.loss, accuracy: 1e-5 * abs(c.loss))
            assertClose(out.betas, try g.floats("betas"), "\(tag) betas", rel: tensorRel)
            assertClose(out.weights, try g.floats("weights"), "\(tag) weights", rel: tensorRel)
            assertClose(out.logits.array, try g.floats("logits"), "\(tag) logits", rel: tensorRel)
            for t in model.layout.tensors {
                assertClose(Array(out.grads.buffer[t.offset..<(t.offset + t.count)]), try g.floats("grad/" + t.name),
                            "\(tag) grad/\(t.name)", rel: tensorRel)
            }
        }
    }
}
