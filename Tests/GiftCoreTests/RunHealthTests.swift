import Foundation
import XCTest
@testable import GiftCore

/// A run that ends broken says so first, keeps its last good parameters as the model and exits non-zero.
final class RunHealthTests: XCTestCase {
    /// The reproduction: at lr 1e30 the first step (finite, at the starting parameters) blows the
    /// weights up, the next two are non-finite and skipped, the validation loss is nan.
    func testDivergedRunSaysSoFirstKeepsTheLastGoodModelAndFails() throws {
        let dir = try temporaryDirectory(self).appendingPathComponent("run")
        let r = try runGift(["train", "--model", "tiny", "--data", "countdown", "--max-steps", "3", "--lr", "1e30",
                             "--task-examples", "400", "--out", dir.path])
        XCTAssertNotEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("the run diverged"), r.stderr)
        let summary = try String(contentsOf: dir.appendingPathComponent("summary.txt"), encoding: .utf8)
        let first = String(summary.prefix { $0 != ";" })
        XCTAssertEqual(first, "FAILED: this run diverged (its final validation loss is nan)", summary)
        XCTAssertTrue(summary.contains("holds the last good parameters instead of the final ones (the starting ones"), summary)
        XCTAssertTrue(r.stdout.hasPrefix(first), r.stdout)
        // step 1 was finite (so the starting parameters are the last good ones), steps 2 and 3 were skipped
        let m = try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path)
        XCTAssertEqual(m.map { $0["skipped"] as? Bool ?? false }, [false, true, true])
        // a skipped step's non-finite values are null in the JSON, and the line says why it was skipped
        XCTAssertTrue((m[1]["skipped_reason"] as? String ?? "").hasPrefix("non-finite"), "\(m[1])")
        XCTAssertNil(m[0]["skipped_reason"])
        let (mc, saved) = try ModelFolder.load(dir.appendingPathComponent("model").path)
        let start = ParameterLayout(mc).initialize(seed: 0)   // --init-seed's default
        XCTAssertEqual(saved.count, start.count)
        XCTAssertTrue((0..<saved.count).allSatisfy { saved[$0].isFinite })
        XCTAssertTrue((0..<saved.count).allSatisfy { saved[$0] == start[$0] }, "RUN_DIR/model is not the last good parameters")
        // the final (diverged) parameters are in the end-of-run checkpoint, not in the model
        let last = FloatBuffer(count: start.count)
        _ = try Resume.load(dir.appendingPathComponent("checkpoints/" + Checkpoint.folderName(step: 3)).path,
                            params: last.pointer, m: nil, v: nil)
        XCTAssertFalse((0..<last.count).allSatisfy { last[$0] == start[$0] })
    }

    /// Parameters poisoned after step 3 of 6: steps 4-6 are skipped, and the model saved is the one step 3
    /// started from (the last finite step's), bit for bit the same run stopped after 2 steps.
    func testTheModelIsTheLastFiniteStepsStartingPoint() throws {
        let dir = try temporaryDirectory(self)
        var c = tinyTrainConfig(.sft, dir: dir.appendingPathComponent("a"), steps: 6)
        c.taskExamples = 64; c.maxBadSteps = 10
        let t = try makeTrainer(c)
        XCTAssertEqual(t.stepsPerEpoch, 3)
        t.log = { [unowned t] line in if line.hasPrefix("epoch 1.00") { t.params[t.model.layout.head] = .nan } }
        let s = try t.run(outDir: c.out)
        XCTAssertEqual(s.skippedSteps, 3)
        XCTAssertTrue(s.text.hasPrefix("FAILED: this run diverged (its final validation loss is nan and 1 of its \(t.params.count) final parameters are not finite); \(c.out)/model holds the last good parameters instead of the final ones (those after step 2 of 6,"), s.text)
        XCTAssertEqual(s.failure.map { s.text.hasPrefix($0) }, true)
        var c2 = c; c2.out = dir.appendingPathComponent("b").path
        let t2 = try makeTrainer(c2); t2.stopAtStep = 2
        _ = try t2.run(outDir: c2.out)
        let (_, saved) = try ModelFolder.load(c.out + "/model")
        XCTAssertTrue((0..<saved.count).allSatisfy { saved[$0].bitPattern == t2.params[$0].bitPattern })
    }

    func testKeeperSkipsParametersWithANonFiniteValidationLoss() {
        let k = LastGoodParameters(count: 2)
        XCTAssertNil(k.stepsDone)
        let a = FloatBuffer([1, 2]), b = FloatBuffer([3, 4]), c = FloatBuffer([5, 6])
        defer { withExtendedLifetime((a, b, c)) {} }
        k.keep(a.pointer, stepsDone: 0)
        k.validated(0.7, stepsDone: 1)
        k.validated(.nan, stepsDone: 2)
        k.keep(b.pointer, stepsDone: 2)   // validated nan: not kept
        XCTAssertEqual(k.stepsDone, 0); XCTAssertEqual([k.parameters[0], k.parameters[1]], [1, 2])
        k.keep(c.pointer, stepsDone: 3)
        XCTAssertEqual(k.stepsDone, 3); XCTAssertEqual([k.parameters[0], k.parameters[1]], [5, 6])
    }

    func testHealthVerdicts() {
        let p = FloatBuffer([1, 2, 3])
        XCTAssertFalse(RunHealth(parameters: p, finalValLoss: 0.5).isBroken)
        XCTAssertFalse(RunHealth(parameters: p, finalValLoss: nil).isBroken)
        XCTAssertNil(RunHealth(parameters: p, finalValLoss: 0.5).failureSentence(modelDir: "m", kept: 2, steps: 3))
        XCTAssertTrue(RunHealth(parameters: p, finalValLoss: .infinity).isBroken)
        p[1] = .nan
        let h = RunHealth(parameters: p, finalValLoss: 0.5)
        XCTAssertEqual(h.nonFiniteParameters, 1)
        XCTAssertEqual(h.failureSentence(modelDir: "m", kept: 7, steps: 9),
                       "FAILED: this run diverged (1 of its 3 final parameters are not finite); m holds the last good parameters instead of the final ones (those after step 7 of 9, the last at which a training step had a finite loss and gradient). Lower --lr or check the data.")
        XCTAssertTrue(h.failureSentence(modelDir: "m", kept: nil, steps: 9)!.contains("so m holds the starting parameters"))
    }
}
