import Foundation
import XCTest
@testable import GiftCore

/// The llada-8b preset against LLaDA-8B's published config.json (GSAI-ML/LLaDA-8B-Base and -Instruct),
/// and `gift bench` refusing, before allocating, a model the node cannot hold.
final class ScalePresetTests: XCTestCase {
    func testLLaDA8BPresetHasThePublishedShape() throws {
        let c = try ModelConfig.preset("llada-8b")
        let j = c.jsonObject()
        let published: [String: Any] = [
            "d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": 12288,
            "vocab_size": 126464, "embedding_size": 126464, "mask_token_id": 126336, "eos_token_id": 126081,
            "pad_token_id": 126081, "max_sequence_length": 4096, "weight_tying": false,
        ]
        for (k, v) in published { XCTAssertEqual("\(j[k]!)", "\(v)", k) }
        XCTAssertEqual(j["rope_theta"] as? Double, 500000)
        XCTAssertEqual(j["rms_norm_eps"] as? Double, 1e-5)
        // 8.02 B parameters: embedding and head (V·d each), per block q, k, v, o (d² each), ff_proj, up_proj
        // and ff_out (d·ff each) and two norms (d each), and the final norm
        let (d, ff, V, L) = (4096, 12288, 126464, 32)
        XCTAssertEqual(ParameterLayout(c).count, 2 * V * d + L * (4 * d * d + 3 * d * ff + 2 * d) + d)
        XCTAssertEqual(ParameterLayout(c).count, 8_015_581_184)
        // the whole model's sizes are beyond Int32: counts and offsets must be Int
        XCTAssertGreaterThan(ParameterLayout(c).count, Int(Int32.max))
    }

    func testActivationBytesWithoutAllocating() throws {
        let c = try ModelConfig.preset("small")
        for training in [true, false] {
            let a = Activations(config: c, capacityTokens: 96, maxSeqLen: 48, training: training)
            XCTAssertEqual(Activations.bytes(config: c, capacityTokens: 96, maxSeqLen: 48, training: training), a.bytes)
        }
    }

    func testBenchRefusesWhatDoesNotFitBeforeAllocating() throws {
        let have = MemoryInfo.available() ?? 0
        try XCTSkipIf(have == 0 || have > 150 << 30, "needs /proc/meminfo and a node with under 150 GiB available")
        let t0 = Date()
        let r = try runGift(["bench", "--preset", "llada-8b", "--seq", "1024", "--batch", "1", "--steps", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("needs") && r.stderr.contains("--vocab") && r.stderr.contains("available"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "refused only after allocating?")
        let slice = try runGift(["bench", "--preset", "llada-8b", "--layers", "33"])
        XCTAssertNotEqual(slice.status, 0)
        XCTAssertTrue(slice.stderr.contains("--layers must be 1...32"), slice.stderr)
    }
}
