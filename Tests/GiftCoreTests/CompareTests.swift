import Foundation
import XCTest
@testable import GiftCore

/// `gift compare`'s statistics against closed forms, and its grouping, pairing and outputs on run
/// folders whose accuracies and outcomes are set by hand.
final class CompareTests: XCTestCase {
    /// Student's t for 1 and 2 degrees of freedom has closed forms: df 1 is Cauchy, p = 1 − 2·atan|t|/π;
    /// df 2: p = 1 − |t|/√(2 + t²). The continued fraction converges to ~1e-15; 1e-12 leaves room for
    /// lgamma's and exp's rounding.
    func testStudentTAgainstClosedForms() {
        for t in [0.0, 0.3, 1, 2.5, 10, 123] {
            XCTAssertEqual(Statistics.studentTwoSided(t, df: 1), 1 - 2 * atan(t) / .pi, accuracy: 1e-12, "df 1, t \(t)")
            XCTAssertEqual(Statistics.studentTwoSided(-t, df: 2), 1 - t / (2 + t * t).squareRoot(), accuracy: 1e-12, "df 2, t \(t)")
        }
        // I_x(a, 1) = x^a and I_x(1, b) = 1 − (1−x)^b
        for x in [0.01, 0.2, 0.5, 0.9, 0.999] {
            XCTAssertEqual(Statistics.incompleteBeta(x, a: 3.5, b: 1), pow(x, 3.5), accuracy: 1e-12)
            XCTAssertEqual(Statistics.incompleteBeta(x, a: 1, b: 7.25), 1 - pow(1 - x, 7.25), accuracy: 1e-12)
        }
        // a paired t-test by hand: d = 1, 2, 3, 6 → mean 3, s² = 14/3, t = 3/√(14/12), df 3
        let r = Statistics.pairedT([1, 2, 3, 6])!
        XCTAssertEqual(r.t, 3 / (14.0 / 12).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(r.df, 3)
        XCTAssertNil(Statistics.pairedT([1]))
        XCTAssertEqual(Statistics.pairedT([0, 0, 0])!.p, 1)
        XCTAssertEqual(Statistics.pairedT([0.1, 0.1])!.p, 0)
    }

    /// McNemar's exact p from integer binomial sums: b = 1, c = 9 → 2·(C(10,0) + C(10,1))/2^10.
    func testMcNemarExact() {
        XCTAssertEqual(Statistics.mcnemarExact(b: 1, c: 9), 2 * 11 / 1024, accuracy: 1e-14)
        XCTAssertEqual(Statistics.mcnemarExact(b: 9, c: 1), 2 * 11 / 1024, accuracy: 1e-14)
        XCTAssertEqual(Statistics.mcnemarExact(b: 5, c: 5), 1)
        XCTAssertEqual(Statistics.mcnemarExact(b: 0, c: 0), 1)
        XCTAssertEqual(Statistics.mcnemarExact(b: 0, c: 20), 2 / 1_048_576, accuracy: 1e-18)
    }

    /// A run folder as `gift train --eval-task` leaves it, with the given accuracies and outcomes.
    func makeRun(_ dir: URL, objective: String, seed: Int, lr: Double = 3e-3, perSeed: [Double], right: [Bool]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cfg: [String: Any] = ["objective": objective, "seed": seed, "lr": lr, "data": "countdown", "out": dir.path, "model": "tiny"]
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
        try (1...10).map { "{\"step\": \($0), \"loss\": \(3.0 - 0.1 * Double($0)), \"tokens_per_s\": 1000}" }.joined(separator: "\n")
            .write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let (m, se) = Evaluate.meanAndStandardError(perSeed)
        let e: [String: Any] = ["task": "countdown", "n": right.count, "seeds": perSeed.count, "accuracy": m, "stderr": se,
                                "per_seed": perSeed, "untrained_accuracy": 0.01]
        try JSONSerialization.data(withJSONObject: e).write(to: dir.appendingPathComponent("eval.json"))
        try right.enumerated().map { "{\"seed\": \(seed), \"index\": \($0.offset), \"score\": \($0.element ? 1 : 0)}" }
            .joined(separator: "\n").write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
    }

    func testGroupsPairsAndOutputs() throws {
        let root = try temporaryDirectory(self)
        // three seeds per objective; GIFT's accuracy is SFT's + (0.02, 0.05, 0.03)
        let sft = [0.30, 0.40, 0.35], gift = [0.32, 0.45, 0.38]
        var paths: [String] = []
        for (i, s) in [11, 12, 13].enumerated() {
            // per problem: SFT right on the first 3 of 10, GIFT on the first 4, plus problem 9 for SFT only
            let a = root.appendingPathComponent("sft-\(s)"), b = root.appendingPathComponent("gift-\(s)")
            try makeRun(a, objective: "sft", seed: s, perSeed: [sft[i], sft[i]], right: (0..<10).map { $0 < 3 || $0 == 9 })
            try makeRun(b, objective: "gift", seed: s, perSeed: [gift[i], gift[i]], right: (0..<10).map { $0 < 4 })
            paths += [a.path, b.path]
        }
        let r = try runGift(["compare", "--json"] + paths)
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let groups = o["groups"] as! [[String: Any]]
        XCTAssertEqual(groups.map { $0["label"] as! String }, ["sft", "gift"], "grouped by objective only (seeds and out differ)")
        XCTAssertEqual((groups[1]["mean"] as! NSNumber).doubleValue, gift.reduce(0, +) / 3, accuracy: 1e-12)
        let pair = (o["pairs"] as! [[String: Any]])[0]
        let d = [0.02, 0.05, 0.03]
        XCTAssertEqual((pair["mean_difference"] as! NSNumber).doubleValue, d.reduce(0, +) / 3, accuracy: 1e-12)
        let t = Statistics.pairedT(d)!
        XCTAssertEqual((pair["t"] as! NSNumber).doubleValue, t.t, accuracy: 1e-9)
        XCTAssertEqual((pair["p"] as! NSNumber).doubleValue, t.p, accuracy: 1e-12)
        let mc = pair["mcnemar"] as! [String: Any]
        // per seed: problem 3 right only for GIFT, problem 9 only for SFT: 3 each way over 30 problems
        XCTAssertEqual(mc["only_a"] as? Int, 3); XCTAssertEqual(mc["only_b"] as? Int, 3); XCTAssertEqual(mc["problems"] as? Int, 30)
        XCTAssertEqual((mc["p"] as! NSNumber).doubleValue, 1, accuracy: 1e-12)
        // a differing setting splits a group and names itself
        let other = root.appendingPathComponent("gift-lr")
        try makeRun(other, objective: "gift", seed: 11, lr: 1e-3, perSeed: [0.5, 0.6], right: [true])
        let r2 = try runGift(["compare", "--markdown", "--svg", root.appendingPathComponent("c.svg").path] + paths + [other.path])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stdout.contains("| gift (lr=0.001) |"), r2.stdout)
        XCTAssertTrue(r2.stdout.contains("| group | runs |"), r2.stdout)
        let svg = try String(contentsOf: root.appendingPathComponent("c.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("gift (lr=0.001)") && svg.contains("training loss"))
        // the terminal form carries both tables and the per-run one
        let r3 = try runGift(["compare"] + paths)
        XCTAssertTrue(r3.stdout.contains("gift − sft") && r3.stdout.contains("accuracy ± s.e.") && r3.stdout.contains("per run:"), r3.stdout)
    }
}

/// The miniature experiment's pipeline end to end at smoke scale (its numbers mean nothing): bases,
/// paired fine-tunes, evaluation and the compare report.
final class MiniatureSmokeTests: XCTestCase {
    /// Three objectives (sft listed last: it is still the baseline, run and compared first) with the
    /// content beta reference: every objective against sft, within the base and pooled.
    func testSmokeScaleRunsAndReports() throws {
        let out = try temporaryDirectory(self).appendingPathComponent("mini")
        let r = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                               [packageRoot.appendingPathComponent("cluster/experiments/miniature.sh").path,
                                "--objectives", "gift,nll,sft", "--beta-reference", "content", out.path],
                               env: ["SCALE": "smoke", "GIFT": giftBinary.path, "THREADS": "1"], cwd: packageRoot)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        let report = try String(contentsOf: out.appendingPathComponent("REPORT.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("## Base 1") && report.contains("## Pooled"), report)
        for pair in ["| gift − sft |", "| nll − sft |"] {   // within the base, pooled
            XCTAssertEqual(report.components(separatedBy: pair).count - 1, 2, pair + "\n" + report)
        }
        XCTAssertFalse(report.contains("nll − gift") || report.contains("gift − nll"), "only comparisons against sft\n" + report)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("ft-base1-nll-seed101/config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["beta_reference"] as? String, "content")
        let svg = try String(contentsOf: out.appendingPathComponent("pooled.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(svg.components(separatedBy: "fill=\"#4a7fb5\"").count - 1, 3, "one bar per group")
        let bad = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                 [packageRoot.appendingPathComponent("cluster/experiments/miniature.sh").path, "--objectives", "sft,gfit", out.path],
                                 env: ["SCALE": "smoke", "GIFT": giftBinary.path], cwd: packageRoot)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown objective gfit"), bad.stderr)
    }

    /// RANKS=2 runs every job under mpirun with the same global batch: the same batches and draws, so the
    /// same evaluation outcomes. (The losses differ only by the gradient sum's order, ~1e-7 relative after
    /// the smoke scale's few steps: far too little to flip a sampler decision. Over the full design's
    /// hundreds of steps the training amplifies it and the accuracies differ; see README.)
    func testTwoRanksGiveTheSameAccuracies() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun"), "mpirun not installed")
        let dir = try temporaryDirectory(self)
        var acc: [String: [String: [Double]]] = [:]
        for ranks in ["1", "2"] {
            let out = dir.appendingPathComponent("ranks\(ranks)")
            let r = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                   [packageRoot.appendingPathComponent("cluster/experiments/miniature.sh").path, "--objectives", "sft", out.path],
                                   env: ["SCALE": "smoke", "GIFT": giftBinary.path, "RANKS": ranks], cwd: packageRoot)
            XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
            for seed in ["101", "102"] {
                let run = out.appendingPathComponent("ft-base1-sft-seed\(seed)")
                let e = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("eval.json"))) as! [String: Any]
                acc[seed, default: [:]][ranks] = (e["per_seed"] as! [NSNumber]).map(\.doubleValue)
                let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("config.json"))) as! [String: Any]
                XCTAssertEqual(cfg["micro_batch"] as? Int, ranks == "1" ? 32 : 16)
            }
        }
        for (seed, byRanks) in acc { XCTAssertEqual(byRanks["1"], byRanks["2"], "seed \(seed)") }
    }
}
