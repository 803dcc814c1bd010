import Foundation
import XCTest
@testable import GiftCore

/// Dream's sampler (`DreamSampler`) against a Python port of Dream's diffusion_generate on the float64
/// Qwen2 reference (Fixtures/dream), its schedule against torch.linspace, and the family deciding which
/// sampler `gift generate` / `gift eval` run.
final class DreamSamplerTests: XCTestCase {
    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    static let fixtures = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/dream")
    /// Three prompts of different lengths: a batch of them is left-padded.
    let prompts: [[Int32]] = [[5, 17, 3, 42, 8], [61, 2, 33, 7, 12, 90, 4, 55, 21], [9, 30, 70]]

    /// The tiny Dream of DreamTests with the mask id's head row zeroed: its logit is 0 where the others
    /// reach several units, so (as for a trained Dream) the mask id is never the argmax, every sequence
    /// keeps as many masked positions as the others, and Dream's batch-mean count is each sequence's own.
    static func model() throws -> (ModelConfig, FloatBuffer) {
        let (c, p) = try DreamTests.tinyDream(seed: 21)
        let head = ParameterLayout(c).tensor(named: "lm_head.weight")!
        for j in 0..<c.dModel { p[head.offset + c.maskTokenId * c.dModel + j] = 0 }
        return (c, p)
    }

    /// The port's generated ids for each request (one Python run).
    func runPort(_ folder: String, _ requests: [[String: Any]], dir: URL) throws -> [[[Int]]] {
        let req = dir.appendingPathComponent("requests.json")
        try JSONSerialization.data(withJSONObject: requests).write(to: req)
        let script = Self.fixtures.appendingPathComponent("dream_generate.py").path
        let r = try runPython("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                              [script, folder, req.path])
        if r.status != 0 && r.stderr.contains("No module named") {
            throw XCTSkip("Dream port skipped: \(r.stderr.split(separator: "\n").last ?? "")")
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        return o["outputs"] as! [[[Int]]]
    }

    /// gift's generated ids equal the port's for each algorithm at temperature 0 (origin with gift's transfer
    /// draws in both), on a left-padded batch (Dream's attention mask and position ids in the port, masked
    /// padding in gift) and on each prompt alone (no padding: Dream's full attention); top_p and top_k change
    /// the confidences even at temperature 0. Alone and batched give the same ids in gift.
    func testMatchesDreamPortForEachAlgorithm() throws {
        let (c, params) = try Self.model()
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("dream").path
        try ModelFolder.save(folder, config: c, parameters: params)
        let G = 12
        let cases: [(DreamAlgorithm, Int, Double?, Int?)] = [(.origin, 12, nil, nil), (.maskgitPlus, 12, nil, nil),
                                                             (.topkMargin, 5, nil, nil), (.entropy, 12, nil, nil),
                                                             (.entropy, 7, 0.6, nil), (.maskgitPlus, 8, nil, 3)]
        var requests: [[String: Any]] = [], expected: [(what: String, ids: [[Int32]])] = []
        for (alg, steps, topP, topK) in cases {
            let what = "\(alg.rawValue), \(steps) steps, top_p \(topP as Any), top_k \(topK as Any)"
            let opts = SamplerOptions(genLength: G, steps: steps, seed: 3, maxBatch: 3)
            let dream = DreamSettings(alg: alg, topP: topP, topK: topK)
            let sampler = try DreamSampler(config: c, params: params, options: opts, dream: dream, maxPromptLength: 9)
            let batched = try sampler.generate(prompts)
            var req: [String: Any] = ["prompts": prompts.map { $0.map(Int.init) }, "gen_length": G, "steps": steps, "eps": 1e-3,
                                      "alg": alg.rawValue, "temperature": 0, "alg_temp": 0, "pad_id": c.padTokenId, "seed": 3,
                                      "keys": [0, 1, 2]]
            if let topP { req["top_p"] = topP }
            if let topK { req["top_k"] = topK }
            requests.append(req); expected.append(("batch: " + what, batched))
            for (i, p) in prompts.enumerated() {
                let alone = try sampler.generate([p], keys: [i])
                XCTAssertEqual(alone, [batched[i]], "prompt \(i) alone: \(what)")
            }
            // the first prompt alone in the port too (no padding: Dream's full attention, no position ids)
            req["prompts"] = [prompts[0].map(Int.init)]; req["keys"] = [0]
            requests.append(req); expected.append(("alone: " + what, [batched[0]]))
            XCTAssertFalse(batched.joined().contains(Int32(c.maskTokenId)), "every position decided: \(what)")
        }
        let port = try runPort(folder, requests, dir: dir)
        XCTAssertEqual(port.count, expected.count)
        for (want, got) in zip(port, expected) { XCTAssertEqual(got.ids.map { $0.map(Int.init) }, want, got.what) }
        XCTAssertGreaterThanOrEqual(Set(expected.filter { $0.what.hasPrefix("batch") }.map(\.ids)).count, 4,
                                    "the settings change the outputs: the comparison sees them")
    }

    /// DreamSchedule's timesteps equal torch.linspace(1, eps, steps + 1) bit for bit, and the transfer
    /// counts of a whole generation (each step int(n · (1 − s/t)) of the n still masked, all at the last)
    /// equal torch's float32 arithmetic; they add up to the gen length.
    func testScheduleMatchesTorch() throws {
        let grid: [(Int, Double, Int)] = [(1, 1e-3, 4), (2, 1e-3, 7), (5, 1e-3, 12), (8, 0, 8), (12, 1e-3, 12), (64, 0.05, 256),
                                          (256, 1e-3, 256), (512, 1e-3, 256), (100, 0, 37)]
        let py = #"""
import json, sys
import torch
out = []
for steps, eps, n in json.loads(sys.argv[1]):
    t = torch.linspace(1, eps, steps + 1)
    counts, masked = [], n
    for i in range(steps):
        k = int(torch.tensor(masked, dtype=torch.float32) * (1 - t[i + 1] / t[i])) if i < steps - 1 else masked
        counts.append(k); masked -= k
    out.append({"bits": t.view(torch.int32).tolist(), "counts": counts})
print(json.dumps(out))
"""#
        let arg = String(decoding: try JSONSerialization.data(withJSONObject: grid.map { [$0.0, $0.1, $0.2] as [Any] }), as: UTF8.self)
        let r = try runPython(py, [arg])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "torch missing: launch/test.sh installs it")
        XCTAssertEqual(r.status, 0, r.stderr)
        let ref = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: [Int]]]
        for ((steps, eps, n), want) in zip(grid, ref) {
            let s = try DreamSchedule(steps: steps, eps: eps)
            XCTAssertEqual(s.timesteps.map { Int(Int32(bitPattern: $0.bitPattern)) }, want["bits"], "steps \(steps), eps \(eps)")
            var masked = n, counts: [Int] = []
            for i in 0..<steps {
                let k = s.transferCount(masked: masked, step: i)
                counts.append(k); masked -= k
            }
            XCTAssertEqual(counts, want["counts"], "steps \(steps), eps \(eps), \(n) tokens")
            XCTAssertEqual(counts.reduce(0, +), n)
        }
        XCTAssertEqual(try DreamSchedule(steps: 12, eps: 1e-3).transferCount(masked: 12, step: 0), 0,
                       "Dream's first step of one step per token commits nothing (int(12 · 0.999/12))")
    }

    /// Randomness is seeded: temperature and alg_temp > 0 give the same ids again with the same seed,
    /// others with another, and a prompt's ids do not depend on its batch.
    func testSeededSamplingIsReproducible() throws {
        let (c, params) = try Self.model()
        func run(_ seed: UInt64, _ ps: [[Int32]], keys: [Int]? = nil) throws -> [[Int32]] {
            let opts = SamplerOptions(genLength: 10, steps: 5, temperature: 0.8, seed: seed, maxBatch: 3)
            return try DreamSampler(config: c, params: params, options: opts, dream: DreamSettings(alg: .entropy, algTemp: 0.5, topP: 0.9),
                                    maxPromptLength: 9).generate(ps, keys: keys)
        }
        let a = try run(1, prompts)
        XCTAssertEqual(try run(1, prompts), a)
        XCTAssertNotEqual(try run(2, prompts), a)
        XCTAssertEqual(try run(1, [prompts[2]], keys: [2]), [a[2]])
    }

    // MARK: the commands

    /// `gift generate` on a Dream folder runs Dream's sampler (the ids DreamSampler gives); each family's
    /// own switches are refused by name on the other, in generate and in both kinds of eval.
    func testCommandsPickTheFamilysSamplerAndRefuseTheOthersFlags() throws {
        let dir = try temporaryDirectory(self)
        let dream = dir.appendingPathComponent("dream").path, llada = dir.appendingPathComponent("llada").path
        XCTAssertEqual(try runGift(["init", "--preset", "dream-tiny", "--out", dream]).status, 0)
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--out", llada]).status, 0)
        let promptsFile = dir.appendingPathComponent("p.jsonl")
        try "{\"prompt_ids\": [5, 17, 3, 42]}\n{\"prompt_ids\": [61, 2]}\n".write(to: promptsFile, atomically: true, encoding: .utf8)
        let g = try runGift(["generate", "--model", dream, "--prompts", promptsFile.path, "--gen-length", "8", "--steps", "4",
                             "--alg", "topk_margin", "--json"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let got = g.stdout.split(separator: "\n").map {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["output_ids"] as? [Int] ?? []
        }
        let (c, p) = try ModelFolder.load(dream)
        let want = try DreamSampler(config: c, params: p, options: SamplerOptions(genLength: 8, steps: 4),
                                    dream: DreamSettings(alg: .topkMargin), maxPromptLength: 4).generate([[5, 17, 3, 42], [61, 2]])
        XCTAssertEqual(got, want.map { $0.map(Int.init) })
        for (model, args, says) in [
            (dream, ["generate", "--prompts", promptsFile.path, "--block-length", "4"], "--block-length: LLaDA's sampler settings"),
            (dream, ["generate", "--prompts", promptsFile.path, "--remasking", "random", "--cfg", "1"], "--remasking, --cfg: LLaDA's"),
            (dream, ["eval", "--task", "sudoku", "--n", "2", "--threshold", "0.9"], "--threshold: LLaDA's sampler settings"),
            (llada, ["generate", "--prompts", promptsFile.path, "--alg", "entropy"], "--alg: Dream's sampler settings"),
            (llada, ["eval", "--task", "sudoku", "--n", "2", "--alg-temp", "0.5", "--top-p", "0.9"], "--alg-temp, --top-p: Dream's"),
            (llada, ["eval", "--task", "sudoku", "--n", "2", "--eps", "0.01"], "--eps: Dream's sampler settings")]
            as [(String, [String], String)] {
            let r = try runGift(args + ["--model", model])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(says) && r.stderr.contains(model == dream ? "this is a Dream model" : "this is a LLaDA model"),
                          "\(args): \(r.stderr)")
        }
        // refused by config.json before any weights load: a folder with nothing else gets the same message
        let bare = dir.appendingPathComponent("llada-config-only")
        try FileManager.default.createDirectory(at: bare, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: llada + "/config.json", toPath: bare.appendingPathComponent("config.json").path)
        for args in [["generate", "--prompts", promptsFile.path], ["eval", "--task", "sudoku", "--n", "2"],
                     ["eval", "--benchmark", "gsm8k", "--data", promptsFile.path, "--out", dir.appendingPathComponent("o").path]] {
            let r = try runGift(args + ["--model", bare.path, "--alg", "entropy"])
            XCTAssertTrue(r.status != 0 && r.stderr.contains("--alg: Dream's sampler settings"), "\(args): \(r.stderr)")
        }
        let e = try runGift(["eval", "--task", "sudoku", "--n", "2", "--seeds", "1", "--model", dream, "--alg", "nope"])
        XCTAssertTrue(e.stderr.contains("unknown Dream algorithm 'nope'"), e.stderr)
    }

    /// `gift eval --benchmark` on a Dream chat folder samples with Dream's sampler: its generations are the
    /// ids DreamSampler gives the rendered prompts (and not d1's sampler's), and eval-settings.json records
    /// Dream's settings; so does training-time evaluation (`TrainBenchmark`, Dream's defaults); --attend-padding
    /// and --threshold (d1's, Fast-dLLM's) are refused.
    func testBenchmarkEvalOnDreamUsesDreamsSampler() throws {
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        _ = try makeChatModelFolder(model, preset: "dream-tiny")   // (LLaDA's tokenizer: its outputs tell the two samplers apart)
        let data = dir.appendingPathComponent("sudoku.csv")
        try BenchmarkEvalTests.sudokuCSV.write(to: data, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("out").path
        let args = ["eval", "--benchmark", "sudoku", "--model", model.path, "--data", data.path, "--out", out, "--gen-length", "12",
                    "--steps", "6", "--batch-size", "2", "--limit", "3", "--alg", "maskgit_plus"]
        let r = try runGift(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Dream's sampler, gen length 12, 6 steps"), r.stderr)
        let settings = try String(contentsOfFile: out + "/eval-settings.json", encoding: .utf8)
        for key in ["\"sampler\": \"dream\"", "\"alg\": \"maskgit_plus\"", "\"steps\": 6", "\"eps\": 0.001", "\"alg_temp\": 0.0"] {
            XCTAssertTrue(settings.contains(key), "\(key) in \(settings)")
        }
        XCTAssertFalse(settings.contains("remasking"), settings)
        let got = try String(contentsOfFile: out + "/generations.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["output_ids"] as! [Int]
        }
        // the same prompts, sampled here by Dream's sampler (in batches of 2, as the eval)
        let text = try TextModel.load(model.path)
        let problems = try BenchmarkData.load(.sudoku, file: data, limit: 3)
        let builder = try BenchmarkPromptBuilder(model: text)
        let ids = try problems.map { try builder.prompt(.sudoku, $0).ids }
        let (c, p) = try ModelFolder.load(model.path)
        XCTAssertEqual(c.family, .dream)
        let opts = SamplerOptions(genLength: 12, steps: 6, maxBatch: 2)
        let padId = text.padId(modelDefault: c.padTokenId)
        let want = try DreamSampler(config: c, params: p, options: opts, dream: DreamSettings(alg: .maskgitPlus), padId: padId,
                                    maxPromptLength: ids.map(\.count).max()!).generateAll(ids)
        XCTAssertEqual(got, want.map { $0.map(Int.init) })
        let d1 = try PaddedSampler(config: c, params: p, options: SamplerOptions(genLength: 12, blockLength: 12, steps: 6, maxBatch: 2),
                                   padId: padId, attendPadding: false, maxPromptLength: ids.map(\.count).max()!).generateAll(ids)
        XCTAssertNotEqual(got, d1.map { $0.map(Int.init) }, "the test tells the two samplers apart")
        // training-time evaluation (--eval-benchmark) on a Dream model: Dream's sampler with its defaults
        var rc = RunConfig()
        rc.model = model.path; rc.evalBenchmark = "sudoku"; rc.evalData = data.path; rc.evalN = 3; rc.evalGenLength = 12
        let tb = try TrainBenchmark(config: rc, model: c)
        XCTAssertEqual(tb.settings.dream, DreamSettings())
        _ = try tb.run(config: c, weights: .fp32(p), comm: SingleProcess(), runDir: dir.path, stepsDone: 0, log: { _ in })
        let trained = try String(contentsOfFile: dir.path + "/benchmark/step-00000000/generations.jsonl", encoding: .utf8)
            .split(separator: "\n").map { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["output_ids"] as! [Int] }
        let defaults = try DreamSampler(config: c, params: p, options: SamplerOptions(genLength: 12, maxBatch: 8), dream: DreamSettings(),
                                        padId: padId, maxPromptLength: ids.map(\.count).max()!).generateAll(ids)
        XCTAssertEqual(trained, defaults.map { $0.map(Int.init) })
        let a = try runGift(args.map { $0 == out ? out + "2" : $0 } + ["--attend-padding"])
        XCTAssertTrue(a.stderr.contains("--attend-padding is d1's LLaDA behaviour"), a.stderr)
        let t = try runGift(args.map { $0 == out ? out + "3" : $0 } + ["--threshold", "0.5"])
        XCTAssertTrue(t.stderr.contains("--threshold: LLaDA's sampler settings, and this is a Dream model"), t.stderr)
    }
}
