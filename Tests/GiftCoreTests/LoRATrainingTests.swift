import Foundation
import XCTest
@testable import GiftCore

/// LoRA runs of the gift binary: 2 ranks equal 1 rank with twice the micro-batch and reduce only the
/// adapters' bytes, resume continues bit-identically (and on another rank count), a checkpoint of
/// adapters refuses another base, and a LoRA fine-tune of a trained base improves its task accuracy.
final class LoRATrainingTests: XCTestCase {
    let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]
    static let lora = ["--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1",
                       "--lora-targets", "q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out"]

    func args(out: URL, micro: Int, steps: Int = 10, model: String = "tiny") -> [String] {
        ["train", "--model", model, "--data", "countdown", "--task-examples", "600", "--max-steps", "\(steps)",
         "--lr", "1e-2", "--seed", "5", "--objective", "gift", "--max-length", "48", "--eval-every", "5",
         "--micro-batch", "\(micro)", "--out", out.path] + Self.lora
    }

    func mpi(_ ranks: Int, _ a: [String]) throws -> RunResult {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        return try runProcess(mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path] + a, env: env)
    }

    func losses(_ dir: URL, _ key: String = "loss") throws -> [Double] {
        try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path).compactMap { ($0[key] as? NSNumber)?.doubleValue }
    }

    func adapterBytes() throws -> Int {
        var l = LoRAConfig(); l.r = 4; l.targets = LoRATarget.allCases
        return try LoRALayout(try ModelConfig.preset("tiny"), l).count * 4
    }

    func testTwoRanksEqualOneRankAndReduceOnlyTheAdapters() throws {
        let one = try temporaryDirectory(self), two = try temporaryDirectory(self)
        let r1 = try runGift(args(out: one, micro: 16), env: env)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try mpi(2, args(out: two, micro: 8))
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let a = try losses(one), b = try losses(two)
        XCTAssertEqual(a.count, 10)
        // the runs differ only in how the adapters' gradient sum is split over ranks: 1e-5 relative (the
        // issue's bound; the per-step trajectory model of MPITests gives the same order over 10 steps)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x)) }
        for (x, y) in zip(try losses(one, "val_loss"), try losses(two, "val_loss")) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x)) }
        let bytes = try adapterBytes()
        XCTAssertTrue(r2.stderr.contains("gradient sync: \(bytes) bytes per step per rank (the adapters only"), r2.stderr)
        XCTAssertTrue(r2.stderr.contains("gradient bytes reduced by this rank: \(10 * bytes) in 10 steps"), r2.stderr)
        XCTAssertTrue(r2.stderr.contains("parameters identical on all 2 ranks"), r2.stderr)
        // ZeRO-1 over the adapters: their moments sharded, the same training
        let z = try temporaryDirectory(self)
        let rz = try mpi(2, args(out: z, micro: 8) + ["--zero", "1"])
        XCTAssertEqual(rz.status, 0, rz.stderr)
        for (x, y) in zip(a, try losses(z)) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x)) }
        XCTAssertTrue(rz.stderr.contains("gradient bytes reduced by this rank: \(10 * bytes) in 10 steps"), rz.stderr)
        // only the adapter is written, in PEFT's format
        let ad = two.appendingPathComponent("adapter")
        XCTAssertTrue(FileManager.default.fileExists(atPath: ad.appendingPathComponent(PEFTAdapter.weightsFile).path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: two.appendingPathComponent("model").path))
        let (lc, _) = try PEFTAdapter.load(ad.path, model: try ModelConfig.preset("tiny"))
        XCTAssertEqual(lc.r, 4); XCTAssertEqual(lc.targets, LoRATarget.allCases)
    }

    func testResumeIsBitIdenticalAndReshards() throws {
        let full = try temporaryDirectory(self), part = try temporaryDirectory(self), moved = try temporaryDirectory(self)
        XCTAssertEqual(try runGift(args(out: full, micro: 16), env: env).status, 0)
        let p1 = try runGift(args(out: part, micro: 16) + ["--stop-at-step", "4"], env: env)
        XCTAssertEqual(p1.status, 0, p1.stderr)
        // a copy of the stopped run, resumed on 2 ranks below
        try FileManager.default.removeItem(at: moved)
        try FileManager.default.copyItem(at: part, to: moved)
        let p2 = try runGift(args(out: part, micro: 16) + ["--resume", "auto"], env: env)
        XCTAssertEqual(p2.status, 0, p2.stderr)
        XCTAssertEqual(try losses(full), try losses(part), "resumed LoRA run must continue bit-identically")
        let fa = try Data(contentsOf: full.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)"))
        let fb = try Data(contentsOf: part.appendingPathComponent("adapter/\(PEFTAdapter.weightsFile)"))
        XCTAssertEqual(fa, fb, "same adapter bytes")
        let p3 = try mpi(2, args(out: moved, micro: 8) + ["--resume", "auto"])
        XCTAssertEqual(p3.status, 0, p3.stderr)
        XCTAssertTrue(p3.stderr.contains("written by 1 ranks, now 2"), p3.stderr)
        for (x, y) in zip(try losses(full), try losses(moved)) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x)) }
        // the merged export equals base + scale·B·A of the exported adapter
        let merged = try temporaryDirectory(self).appendingPathComponent("m").path
        let ex = try runGift(["export", part.path, "--merge", "--out", merged])
        XCTAssertEqual(ex.status, 0, ex.stderr)
        let (c, m) = try ModelFolder.load(merged)
        let (lc, ad) = try PEFTAdapter.load(part.appendingPathComponent("adapter").path, model: c)
        let base = ParameterLayout(c).initialize(seed: 0)   // the preset's weights at init_seed 0
        let want = try LoRALayout(c, lc).merged(base: base.pointer, adapters: ad.pointer)
        let differing = (0..<m.count).filter { m[$0] != want[$0] }
        XCTAssertEqual(m.count, want.count)
        XCTAssertTrue(differing.isEmpty, "\(differing.count) merged weights differ, first at \(differing.first ?? -1): \(differing.first.map { "\(m[$0]) vs \(want[$0])" } ?? "")")
    }

    func testAdaptersForAnotherBaseAreRefused() throws {
        let dir = try temporaryDirectory(self)
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path, run = dir.appendingPathComponent("run")
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--seed", "1", "--out", a]).status, 0)
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--seed", "2", "--out", b]).status, 0)
        let r1 = try runGift(args(out: run, micro: 16, model: a) + ["--stop-at-step", "2"], env: env)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try runGift(args(out: run, micro: 16, model: b) + ["--resume", "auto"], env: env)
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("were trained on the base \(a)") && r2.stderr.contains("this run's base \(b) has other weights"), r2.stderr)
        // and a full fine-tune cannot resume from adapters
        let r3 = try runGift(args(out: run, micro: 16, model: a).filter { !Self.lora.contains($0) } + ["--resume", "auto"], env: env)
        XCTAssertNotEqual(r3.status, 0)
        XCTAssertTrue(r3.stderr.contains("lora_r") || r3.stderr.contains("holds LoRA adapters"), r3.stderr)
    }

    /// A base that has learnt some 4×4 Sudoku (mini, 1 epoch of 1200 puzzles: measured 0.249) fine-tuned with
    /// LoRA r 8 on every block layer (1 epoch of 2000 puzzles, lr 1e-2) by SFT and by GIFT: each ends above
    /// the base's accuracy on the same problems and seeds by more than two combined standard errors
    /// (measured: 0.308 ± 0.014 and 0.305 ± 0.013 against 0.249 ± 0.005).
    func testLoRAImprovesTheBaseOnATask() throws {
        let dir = try temporaryDirectory(self)
        let base = dir.appendingPathComponent("base")
        let sudoku = ["--data", "sudoku", "--micro-batch", "32", "--epochs", "1", "--max-length", "40",
                      "--eval-task", "sudoku", "--eval-n", "64"]
        let rb = try runGift(["train", "--model", "mini", "--task-examples", "1200", "--lr", "2e-3", "--out", base.path] + sudoku, env: env)
        XCTAssertEqual(rb.status, 0, rb.stderr)
        for objective in ["sft", "gift"] {
            let out = dir.appendingPathComponent(objective)
            let r = try runGift(["train", "--model", base.appendingPathComponent("model").path, "--task-examples", "2000",
                                 "--lr", "1e-2", "--objective", objective, "--out", out.path, "--lora-r", "8", "--lora-alpha", "16",
                                 "--lora-targets", "q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out"] + sudoku, env: env)
            XCTAssertEqual(r.status, 0, r.stderr)
            let e = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("eval.json"))) as! [String: Any]
            let acc = (e["accuracy"] as! NSNumber).doubleValue, se = (e["stderr"] as! NSNumber).doubleValue
            let u = (e["untrained_accuracy"] as! NSNumber).doubleValue, use = (e["untrained_stderr"] as! NSNumber).doubleValue
            XCTAssertGreaterThan(u, 0.1, "the base has learnt something before LoRA")
            XCTAssertGreaterThan(acc - u, 2 * (se * se + use * use).squareRoot(), "\(objective): LoRA \(acc) ± \(se) vs base \(u) ± \(use)")
            print(String(format: "LoRA %@: accuracy %.3f ± %.3f, base %.3f ± %.3f", objective, acc, se, u, use))
        }
    }

    /// `gift train --adapter DIR` starts from a PEFT folder (its config sets r, alpha and targets; other
    /// --lora-* values are refused), and `gift eval --model BASE --adapter DIR` scores what the merged export scores.
    func testContinueAndEvaluateAnAdapter() throws {
        let dir = try temporaryDirectory(self)
        let first = dir.appendingPathComponent("first"), second = dir.appendingPathComponent("second")
        XCTAssertEqual(try runGift(args(out: first, micro: 16, steps: 4), env: env).status, 0)
        let ad = first.appendingPathComponent("adapter").path
        // lr ≈ 0: the continued run's adapter must be the one it started from
        var a = args(out: second, micro: 16, steps: 1).filter { !Self.lora.contains($0) }
        a[a.firstIndex(of: "--lr")! + 1] = "1e-30"
        let r = try runGift(a + ["--adapter", ad], env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("LoRA: r 4, alpha 8"), r.stderr)
        let c = try ModelConfig.preset("tiny")
        let (_, w0) = try PEFTAdapter.load(ad, model: c), (_, w1) = try PEFTAdapter.load(second.appendingPathComponent("adapter").path, model: c)
        XCTAssertEqual(zip(w0.array, w1.array).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-20)
        let bad = try runGift(a + ["--adapter", ad, "--lora-r", "8"], env: env)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("has r 4") && bad.stderr.contains("leave them out"), bad.stderr)
        // eval with the adapter = eval of the merged folder
        let base = dir.appendingPathComponent("base").path, merged = dir.appendingPathComponent("merged").path
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--out", base]).status, 0)
        XCTAssertEqual(try runGift(["export", "--model", base, "--adapter", ad, "--merge", "--out", merged]).status, 0)
        let o1 = dir.appendingPathComponent("e1.jsonl"), o2 = dir.appendingPathComponent("e2.jsonl")
        let e1 = try runGift(["eval", "--model", base, "--adapter", ad, "--task", "countdown", "--n", "8", "--seeds", "1", "--out", o1.path])
        let e2 = try runGift(["eval", "--model", merged, "--task", "countdown", "--n", "8", "--seeds", "1", "--out", o2.path])
        XCTAssertEqual(e1.status, 0, e1.stderr); XCTAssertEqual(e2.status, 0, e2.stderr)
        // every problem's sampled output is the same
        let t1 = try String(contentsOf: o1, encoding: .utf8), t2 = try String(contentsOf: o2, encoding: .utf8)
        XCTAssertEqual(t1, t2)
        XCTAssertEqual(t1.split(separator: "\n").count, 8)
    }
}
