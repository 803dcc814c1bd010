import Foundation
import XCTest
@testable import GiftCore

/// gift's adapters in PEFT itself (PyPI `peft` + `torch` in launch/test.sh's venv): a LLaDA-shaped
/// PyTorch model with LLaDA's module names loads gift's model folder, PeftModel.from_pretrained loads
/// gift's adapter folder, and its float64 logits equal gift's; PEFT's merge_and_unload() state equals
/// `gift export --model BASE --adapter DIR --merge`. Skipped, with the reason, without torch/peft.
final class LoRAPEFTTests: XCTestCase {
    func check(targets: [LoRATarget], rslora: Bool) throws {
        let c = try ModelConfig.preset("tiny")
        let dir = try temporaryDirectory(self)
        let base = ParameterLayout(c).initialize(seed: 11, std: 0.2)
        try ModelFolder.save(dir.appendingPathComponent("model").path, config: c, parameters: base)
        var lc = LoRAConfig()
        lc.r = 4; lc.alpha = 8; lc.dropout = 0.05; lc.targets = targets; lc.rslora = rslora
        let layout = try LoRALayout(c, lc)
        let a = layout.initialize(seed: 2)
        for t in layout.tensors where t.name.hasSuffix("lora_B.weight") {
            let r = CounterRNG(5, UInt64(t.offset))
            for j in 0..<t.count { a[t.offset + j] = Float(0.4 * r.normal(UInt64(j))) }
        }
        try PEFTAdapter.save(dir.appendingPathComponent("adapter").path, layout: layout, weights: a.pointer, baseModel: "model")
        // gift's logits: inference (no dropout), every position
        let (lpath, tpath) = try writeLogits(config: c, weights: base, lora: (layout, a), dir: dir)
        let merged = dir.appendingPathComponent("merged").path
        let ex = try runGift(["export", "--model", dir.appendingPathComponent("model").path, "--adapter",
                              dir.appendingPathComponent("adapter").path, "--merge", "--out", merged])
        XCTAssertEqual(ex.status, 0, ex.stderr)
        let script = try String(contentsOf: packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/lora/peft_check.py"), encoding: .utf8)
        let o = try runPythonCheck("PEFT check", script, [dir.appendingPathComponent("model").path, dir.appendingPathComponent("adapter").path,
                                                         tpath.path, lpath.path, merged])
        // gift float32 vs PEFT float64: the forward's rounding bound on the logits' scale
        let n = forwardReductionLength(c, seqLen: loraLogitsSeqLen)
        XCTAssertLessThanOrEqual(o["logit_max_diff"]!, float32Bound(reduction: n, factor: 2) * o["logit_scale"]!, "\(o)")
        XCTAssertGreaterThan(o["logit_scale"]!, 0.1)
        // merged weights: one float32 rounding of the float64 sum (plus float64 noise far below it)
        XCTAssertLessThanOrEqual(o["merged_max_rel_diff"]!, 1.2e-7, "\(o)")
        XCTAssertEqual(Int(o["lora_modules"]!), c.nLayers * targets.count, "PEFT wrapped exactly the targeted layers: \(o)")
        print("PEFT check (\(targets.map(\.rawValue).joined(separator: ",")), rslora \(rslora)): \(o)")
    }

    func testAllTargetsAgreeWithPEFT() throws { try check(targets: LoRATarget.allCases, rslora: false) }
    func testAttentionTargetsWithRsLoRAAgreeWithPEFT() throws { try check(targets: [.q, .k, .v], rslora: true) }
}
