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

    func assertClose(_ got: [Float], _ want: [Float], _ what: String, rel: Float = 1e-4) {
        XCTAssertEqual(got.count, want.count, what)
        let scale = max(want.map { abs($0) }.max() ?? 0, 1e-30)
        var worst: Float = 0, at = 0
        for i in 0..<min(got.count, want.count) where abs(got[i] - want[i]) > worst { worst = abs(got[i] - want[i]); at = i }
        XCTAssertLessThanOrEqual(worst / scale, rel, "\(what): worst at \(at): \(got[at]) vs \(want[at])")
    }

    func testAllGoldenCases() throws {
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: goldenDir.appendingPathComponent("expected.json")))
        XCTAssertEqual(cases.count, 9)
        let (config, params) = try ModelFolder.load(goldenDir.appendingPathComponent("llada-tiny").path)
        let model = Transformer(config: config)
        let batch = try Inspect.readBatch(path: goldenDir.appendingPathComponent("batch.json").path, config: config)
        for c in cases {
            let out = Inspect.run(model: model, params: params, options: try Self.options(c), batch: batch)
            let g = try SafetensorsFile.read(path: goldenDir.appendingPathComponent(c.file).path)
            XCTAssertEqual(out.loss, c.loss, accuracy: 1e-5 * abs(c.loss), "\(c.file) loss")
            XCTAssertEqual(Double(try g.floats("loss")[0]), c.loss, accuracy: 1e-5 * abs(c.loss))
            assertClose(out.betas, try g.floats("betas"), "\(c.file) betas")
            assertClose(out.weights, try g.floats("weights"), "\(c.file) weights")
            assertClose(out.logits.array, try g.floats("logits"), "\(c.file) logits")
            for t in model.layout.tensors {
                assertClose(Array(out.grads.buffer[t.offset..<(t.offset + t.count)]), try g.floats("grad/" + t.name),
                            "\(c.file) grad/\(t.name)")
            }
        }
    }
}
