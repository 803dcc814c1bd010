import Foundation
import XCTest
@testable import GiftCore

/// Defaults a researcher can see and set: the extra EOS, the validation split, AdamW's constants and the
/// cosine schedule's floor.
final class TrainDefaultsTests: XCTestCase {
    /// HF transformers' `_get_cosine_schedule_with_warmup_lr_lambda` with `min_lr_rate` (what
    /// `cosine_with_min_lr` uses), transcribed in float64: after warmup,
    /// factor = 0.5·(1 + cos(π·cycles·2·progress)), then factor·(1 − r) + r, clamped at 0.
    static func hfCosineWithMinLR(step: Int, warmup: Int, total: Int, minLRRate r: Double, cycles: Double = 0.5) -> Double {
        let progress = Double(step - warmup) / Double(max(1, total - warmup))
        let factor = 0.5 * (1.0 + cos(Double.pi * cycles * 2.0 * progress))
        return max(0, factor * (1 - r) + r)
    }

    func testCosineFloorMatchesHFAfterWarmup() {
        let base = 3e-4
        for (total, warmup, r) in [(10, 2, 0.1), (37, 4, 0.25), (5, 0, 0.5), (100, 10, 0.0), (8, 1, 1.0)] {
            for step in warmup..<total {
                let ours = LRSchedule.cosine.lr(step: step, total: total, warmup: warmup, base: base, minRatio: r)
                let hf = base * Self.hfCosineWithMinLR(step: step, warmup: warmup, total: total, minLRRate: r)
                XCTAssertEqual(ours, hf, accuracy: 4 * Double.ulpOfOne * base, "step \(step) of \(total), r \(r)")
            }
            // never below the floor; warmup is untouched by it
            XCTAssertGreaterThanOrEqual(LRSchedule.cosine.lr(step: total - 1, total: total, warmup: warmup, base: base, minRatio: r), r * base * (1 - 1e-12))
            if warmup > 0 {
                XCTAssertEqual(LRSchedule.cosine.lr(step: 0, total: total, warmup: warmup, base: base, minRatio: r),
                               LRSchedule.cosine.lr(step: 0, total: total, warmup: warmup, base: base))
            }
        }
        XCTAssertEqual(LRSchedule.cosine.lr(step: 10, total: 10, warmup: 2, base: 1, minRatio: 0.1), 0.1, accuracy: 1e-15)
    }

    func testExtraEOSSwitch() throws {
        for extra in [1, 0] {
            var c = tinyTrainConfig(.sft, dir: try temporaryDirectory(self), steps: 2); c.extraEOS = extra
            let t = try makeTrainer(c)
            let idx = Array(0..<16)
            let longest = idx.map { t.data.train[$0].length }.max()!
            let seqs = t.batches.sequences(idx, from: t.data.train)
            XCTAssertEqual(Set(seqs.map(\.tokens.count)), [longest + extra], "extra_eos \(extra)")
        }
        var c = RunConfig()
        XCTAssertThrowsError(try c.set("extra_eos", 2, source: "--extra-eos")) { XCTAssertTrue("\($0)".contains("'extra_eos' must be 0 or 1"), "\($0)") }
        c.minLRRatio = 0.1; c.schedule = .linear
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("min_lr_ratio is the cosine schedule's floor"), "\($0)") }
        c.schedule = .cosine; c.minLRRatio = 1.5
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("min_lr_ratio must be in [0, 1]"), "\($0)") }
    }

    /// The flags reach the run (config.json, the schedule in metrics.jsonl, the start log), are named in
    /// `gift help train`, and the ones that change training refuse a resume with another value.
    func testFlagsReachTheRunAndDefineResume() throws {
        let run = try temporaryDirectory(self).appendingPathComponent("run")
        let common = ["train", "--model", "tiny", "--data", "countdown", "--task-examples", "200", "--max-steps", "4",
                      "--lr", "1e-3", "--max-length", "40", "--micro-batch", "8", "--out", run.path]
        let r = try runGift(common + ["--beta1", "0.8", "--beta2", "0.95", "--adam-eps", "1e-6", "--min-lr-ratio", "0.1", "--extra-eos", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["beta1"] as? Double, 0.8); XCTAssertEqual(cfg["beta2"] as? Double, 0.95)
        XCTAssertEqual(cfg["adam_eps"] as? Double, 1e-6); XCTAssertEqual(cfg["min_lr_ratio"] as? Double, 0.1)
        XCTAssertEqual(cfg["extra_eos"] as? Int, 0)
        let valN = Batching.validationMask(count: 200, validationFraction: 0.05, seed: 42).filter { $0 }.count
        XCTAssertTrue(r.stderr.contains("validation \(valN) (held out: fraction 0.05, by seed 42"), r.stderr)
        // warmup 1 step; the last step's lr is 1e-3 · (0.1 + 0.9 · ½(1 + cos(2π/3)))
        let lrs = try MetricsWriter.read(run.appendingPathComponent("metrics.jsonl").path).map { ($0["lr"] as! NSNumber).doubleValue }
        XCTAssertEqual(lrs.last!, 1e-3 * Self.hfCosineWithMinLR(step: 3, warmup: 1, total: 4, minLRRate: 0.1), accuracy: 1e-15)
        let ck = run.appendingPathComponent("checkpoints/" + Checkpoint.folderName(step: 4)).path
        for (flag, value, was, field) in [("--extra-eos", "1", "0", "extra_eos"), ("--min-lr-ratio", "0.2", "0.1", "min_lr_ratio")] {
            var again = ["--beta1", "0.8", "--beta2", "0.95", "--adam-eps", "1e-6", "--min-lr-ratio", "0.1", "--extra-eos", "0", "--resume", ck]
            again[again.firstIndex(of: flag)! + 1] = value
            let x = try runGift(common + again)
            XCTAssertNotEqual(x.status, 0)
            XCTAssertTrue(x.stderr.contains("run config field '\(field)' is \(was) in the checkpoint and \(value) in this run"), x.stderr)
        }
        let help = try runGift(["help", "train"], env: ["COLUMNS": "100"])
        let flat = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for s in ["--beta1", "--beta2", "--adam-eps", "--min-lr-ratio", "cosine_with_min_lr", "--extra-eos", "one more EOS",
                  "default 0.05: 5% of a JSONL file is not trained on"] {
            XCTAssertTrue(flat.contains(s), "gift help train lacks \(s)")
        }
    }

    /// A run folder written before extra_eos and min_lr_ratio existed trained with 1 and 0: `gift compare`
    /// groups it with a new run that says so, and apart from one that changed them.
    func testCompareReadsOldRunsWithTheOldDefaults() throws {
        let root = try temporaryDirectory(self)
        func run(_ name: String, _ extra: [String: Any]) throws -> RunReport {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var cfg: [String: Any] = ["objective": "sft", "seed": name.count, "lr": 1e-3, "out": dir.path]
            cfg.merge(extra) { $1 }
            try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
            try "{\"step\": 1, \"loss\": 2.0, \"tokens_per_s\": 10}\n".write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
            return try RunReport.load(dir.path)
        }
        let old = try run("o", [:]), new = try run("nn", ["extra_eos": 1, "min_lr_ratio": 0.0])
        XCTAssertEqual(CompareReport.build([old, new]).groups.map(\.label), ["sft"])
        let other = try run("eee", ["extra_eos": 0, "min_lr_ratio": 0.0])
        XCTAssertEqual(CompareReport.build([old, other]).groups.map(\.label), ["sft (extra_eos=1)", "sft (extra_eos=0)"])
    }
}
