import Foundation
import XCTest
@testable import GiftCore

/// `gift train --eval-benchmark`: the benchmark sampled and scored at every evaluation, the same
/// generations as `gift eval --benchmark` gives for the same weights, on 1 rank and on 2 ranks under
/// ZeRO-3 (where every rank samples through the block gathers).
final class TrainBenchmarkTests: XCTestCase {
    func testTrainingEvaluatesTheBenchmarkLikeGiftEval() throws {
        let dir = try temporaryDirectory(self)
        let (model, data) = try BenchmarkEvalTests.setUp(dir)
        let train = dir.appendingPathComponent("train.jsonl")
        try (0..<8).map { "{\"prompt\": \"what is \($0) plus 1?\", \"response\": \"\($0 + 1)\"}" }.joined(separator: "\n")
            .write(to: train, atomically: true, encoding: .utf8)
        // lr 1e-30: every update is below half an ulp of the weights, which so stay those of the folder: every
        // evaluation must equal gift eval's on it
        func args(_ out: String, _ extra: [String]) -> [String] {
            ["train", "--model", model, "--data", train.path, "--max-steps", "2", "--micro-batch", "2", "--lr", "1e-30",
             "--validation-fraction", "0", "--eval-every", "1", "--eval-benchmark", "sudoku", "--eval-data", data,
             "--eval-n", "4", "--eval-gen-length", "16", "--out", out] + extra
        }
        let one = dir.appendingPathComponent("one").path, two = dir.appendingPathComponent("two").path
        let r1 = try runGift(args(one, []))
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try runProcess(mpirunURL, ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path] + args(two, ["--zero", "3"]),
                                env: mpiTestEnvironment)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let ref = dir.appendingPathComponent("eval").path
        let e = try runGift(["eval", "--benchmark", "sudoku", "--model", model, "--data", data, "--out", ref, "--limit", "4",
                             "--gen-length", "16", "--block-length", "16", "--batch-size", "8"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let want = try String(contentsOfFile: ref + "/generations.jsonl", encoding: .utf8)
        XCTAssertEqual(want.split(separator: "\n").count, 4)
        for run in [one, two] {
            for step in [1, 2] {
                let got = try String(contentsOfFile: run + String(format: "/benchmark/step-%08d/generations.jsonl", step), encoding: .utf8)
                XCTAssertEqual(got, want, "\(run) step \(step)")
            }
            let m = try MetricsWriter.read(run + "/metrics.jsonl")
            let evalJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ref + "/eval.json"))) as! [String: Any]
            XCTAssertEqual(m.map { ($0["benchmark_accuracy"] as? NSNumber)?.doubleValue }, [1, 2].map { _ in (evalJSON["accuracy"] as! NSNumber).doubleValue })
            XCTAssertEqual(m.last?["benchmark"] as? String, "sudoku")
            XCTAssertTrue(try String(contentsOfFile: run + "/summary.txt", encoding: .utf8).contains("sudoku accuracy"))
            XCTAssertTrue(try String(contentsOfFile: run + "/loss.svg", encoding: .utf8).contains("sudoku accuracy"))
        }
        XCTAssertTrue(r2.stderr.contains("ZeRO 3"), r2.stderr)
    }

    func testBenchmarkNeedsDataAndATokenizer() throws {
        let dir = try temporaryDirectory(self)
        let train = dir.appendingPathComponent("train.jsonl")
        try (0..<8).map { "{\"prompt\": \"\($0)+1\", \"response\": \"\($0 + 1)\"}" }.joined(separator: "\n")
            .write(to: train, atomically: true, encoding: .utf8)
        let r = try runGift(["train", "--model", "tiny", "--data", train.path, "--max-steps", "1", "--micro-batch", "2", "--eval-benchmark", "gsm8k",
                             "--eval-data", "/nonexistent.jsonl", "--out", dir.appendingPathComponent("r").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("tokenizer.json"), r.stderr)
        let (model, _) = try BenchmarkEvalTests.setUp(dir)
        let r2 = try runGift(["train", "--model", model, "--data", train.path, "--max-steps", "1", "--micro-batch", "2", "--eval-benchmark", "gsm8k",
                              "--out", dir.appendingPathComponent("r2").path])
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("eval_data"), r2.stderr)
        let r3 = try runGift(["train", "--model", "tiny", "--eval-benchmark", "gsm9k", "--out", dir.appendingPathComponent("r3").path])
        XCTAssertNotEqual(r3.status, 0)
        XCTAssertTrue(r3.stderr.contains("eval_benchmark") || r3.stderr.contains("eval-benchmark"), r3.stderr)
    }
}
