import Foundation
import XCTest
@testable import GiftCore

/// `gift eval --benchmark` end to end on a tiny chat model: the files, resume after a kill, 2 ranks = 1
/// rank, settings guarded, re-scoring, bad input.
final class BenchmarkEvalTests: XCTestCase {
    /// 4×4 Sudoku rows (Puzzle,Solution); the solutions are valid grids, the puzzles blank some cells.
    static let sudokuCSV = """
    Puzzle,Solution
    1030040221004020,1234341221434321
    0204300120030400,1234341221434321
    4321000000001234,4321123434122143
    0010200000030400,3412214312344321
    1200003400120000,1243213434124321

    """

    /// A tiny chat model folder and the Sudoku file above (also `TrainBenchmarkTests`').
    static func setUp(_ dir: URL) throws -> (model: String, data: String) {
        let model = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        _ = try makeChatModelFolder(model)
        let data = dir.appendingPathComponent("sudoku.csv")
        try sudokuCSV.write(to: data, atomically: true, encoding: .utf8)
        return (model.path, data.path)
    }
    func setUp(_ dir: URL) throws -> (model: String, data: String) { try Self.setUp(dir) }

    func evalArgs(_ model: String, _ data: String, out: String, extra: [String] = []) -> [String] {
        ["eval", "--benchmark", "sudoku", "--model", model, "--data", data, "--out", out, "--gen-length", "16",
         "--block-length", "8", "--batch-size", "2"] + extra
    }

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func testFilesResumeRanksAndRescoring() throws {
        let dir = try temporaryDirectory(self)
        let (model, data) = try setUp(dir)
        let out = dir.appendingPathComponent("eval").path
        let r = try runGift(evalArgs(model, data, out: out))
        XCTAssertEqual(r.status, 0, r.stderr)
        let gen = out + "/generations.jsonl"
        let first = try String(contentsOfFile: gen, encoding: .utf8)
        let rows = try lines(gen)
        // 5 problems (fewer than d1's 256: the file whole, in file order), every field, 16 generated ids
        XCTAssertEqual(rows.map { $0["index"] as? Int }, [0, 1, 2, 3, 4])
        for (i, row) in rows.enumerated() {
            for k in ["question", "prompt", "output", "output_ids", "extracted", "ground_truth", "verdict", "empty_cells"] {
                XCTAssertNotNil(row[k], "line \(i + 1) lacks \(k)")
            }
            XCTAssertEqual((row["output_ids"] as? [Int])?.count, 16)
            XCTAssertTrue((row["prompt"] as! String).hasSuffix("<reasoning>"))
            XCTAssertTrue((row["question"] as! String).hasPrefix("Solve the following Sudoku puzzle: "))
        }
        XCTAssertEqual(rows.map { $0["empty_cells"] as? Int }, [8, 9, 8, 12, 10])
        let result = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/eval.json"))) as! [String: Any]
        let correct = rows.map { $0["verdict"] as! Int }.reduce(0, +)
        XCTAssertEqual(result["correct"] as? Int, correct)
        XCTAssertEqual(result["total"] as? Int, 47)
        XCTAssertEqual(result["problems"] as? Int, 5)
        XCTAssertNotNil(result["generated_tokens_per_second"])

        // re-scoring the file without a model gives the same verdicts
        let s = try runGift(["eval", "--benchmark", "sudoku", "--score", gen, "--json"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let js = try JSONSerialization.jsonObject(with: Data(s.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual(js["verdicts"] as? [Int], rows.map { $0["verdict"] as! Int })
        XCTAssertEqual(js["total"] as? Int, 47)

        // a kill after the first round (2 problems) and in the middle of writing the next line
        let kept = first.split(separator: "\n", omittingEmptySubsequences: false).prefix(2).joined(separator: "\n") + "\n{\"index\": 2, \"quest"
        try kept.write(toFile: gen, atomically: true, encoding: .utf8)
        let again = try runGift(evalArgs(model, data, out: out))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("resuming: 2 of 5 problems"), again.stderr)
        XCTAssertEqual(try String(contentsOfFile: gen, encoding: .utf8), first, "the resumed eval's file is the same")

        // other settings into the same folder are refused, naming both hashes
        let other = try runGift(evalArgs(model, data, out: out, extra: ["--steps", "4"]))
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("holds an eval with other settings"), other.stderr)

        // 2 ranks (3 batches dealt 2 + 1) write the same file as 1 rank
        try skipUnlessMPI()
        let out2 = dir.appendingPathComponent("eval2").path
        let m = try runProcess(mpirunURL, ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path] + evalArgs(model, data, out: out2),
                               env: mpiTestEnvironment)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(try String(contentsOfFile: out2 + "/generations.jsonl", encoding: .utf8), first)
    }

    func testAttendedPaddingIsASetting() throws {
        let dir = try temporaryDirectory(self)
        let (model, data) = try setUp(dir)
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        XCTAssertEqual(try runGift(evalArgs(model, data, out: a, extra: ["--limit", "2"])).status, 0)
        let r = try runGift(evalArgs(model, data, out: b, extra: ["--limit", "2", "--attend-padding"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        let sa = try String(contentsOfFile: a + "/eval-settings.json", encoding: .utf8)
        let sb = try String(contentsOfFile: b + "/eval-settings.json", encoding: .utf8)
        XCTAssertTrue(sa.contains("\"attend_padding\": false") && sb.contains("\"attend_padding\": true"), sa + sb)
        XCTAssertEqual(try lines(b + "/generations.jsonl").count, 2)
        // the weights kept as bf16 (read a block at a time): a setting too
        let h = dir.appendingPathComponent("h").path
        let r16 = try runGift(evalArgs(model, data, out: h, extra: ["--limit", "2", "--dtype", "bf16"]))
        XCTAssertEqual(r16.status, 0, r16.stderr)
        XCTAssertTrue(try String(contentsOfFile: h + "/eval-settings.json", encoding: .utf8).contains("\"dtype\": \"bf16\""))
        // gift compare pairs the two eval folders by problem: Sudoku per empty cell (8 + 9 of the first two)
        let c = try runGift(["compare", a, b, "--json"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let cj = try JSONSerialization.jsonObject(with: Data(c.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((cj["groups"] as? [[String: Any]])?.count, 2, c.stdout)
        let pair = (cj["pairs"] as! [[String: Any]])[0]
        XCTAssertEqual((pair["mcnemar"] as? [String: Any])?["problems"] as? Int, 17, c.stdout)
    }

    func testBadInputIsAnErrorNamingFileAndLine() throws {
        let dir = try temporaryDirectory(self)
        let (model, data) = try setUp(dir)
        var csv = Self.sudokuCSV.split(separator: "\n").map(String.init)
        csv[3] = "43210000000012,4321123434122143"
        let bad = dir.appendingPathComponent("bad.csv").path
        try (csv.joined(separator: "\n") + "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try runGift(evalArgs(model, bad, out: dir.appendingPathComponent("x").path))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("bad.csv:4"), r.stderr)
        // a benchmark the file does not match
        let g = try runGift(["eval", "--benchmark", "gsm8k", "--model", model, "--data", data, "--out", dir.appendingPathComponent("y").path])
        XCTAssertNotEqual(g.status, 0)
        XCTAssertTrue(g.stderr.contains("sudoku.csv"), g.stderr)
        // a generations file whose line is not JSON
        let gen = dir.appendingPathComponent("g.jsonl").path
        try "{\"question\": \"Solve the following Sudoku puzzle: 1030040221004020\\n\", \"output\": \"x\", \"ground_truth\": \"1234341221434321\"}\nnot json\n"
            .write(toFile: gen, atomically: true, encoding: .utf8)
        let s = try runGift(["eval", "--benchmark", "sudoku", "--score", gen])
        XCTAssertNotEqual(s.status, 0)
        XCTAssertTrue(s.stderr.contains("g.jsonl:2"), s.stderr)
    }
}
