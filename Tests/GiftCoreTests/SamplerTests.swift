import Foundation
import XCTest
@testable import GiftCore

final class SamplerTests: XCTestCase {
    let tiny = try! ModelConfig.preset("tiny")   // vocab 64, eos 62, mask 63

    func randomModel(std: Double = 0.02, seed: UInt64 = 3) -> FloatBuffer {
        ParameterLayout(tiny).initialize(seed: seed, std: std)
    }

    /// Every weight zero except: embeddings all ones, ln_f ones, and head row `token` ones, so the
    /// final hidden state is all ones everywhere and `token`'s logit is d_model (64), every other 0.
    func certainModel(token: Int) -> FloatBuffer {
        let l = ParameterLayout(tiny), d = tiny.dModel
        let p = FloatBuffer(count: l.count)
        (p.pointer + l.wte).update(repeating: 1, count: tiny.vocab * d)
        (p.pointer + l.lnF).update(repeating: 1, count: d)
        (p.pointer + l.head + token * d).update(repeating: 1, count: d)
        return p
    }

    let prompts: [[Int32]] = [[8, 0, 2, 6, 0, 4, 0, 30, 25, 0, 4, 7, 40], [2, 0, 3, 0, 4, 0, 30, 25, 0, 10, 40],
                              [5, 0, 5, 0, 5, 0, 30, 25, 0, 3, 40], [1, 2, 3]]

    /// Runs the sampler with a trace; returns outputs and the trace steps grouped by prompt key.
    func traced(_ opt: SamplerOptions, params: FloatBuffer, prompts: [[Int32]]) throws
        -> ([[Int32]], [Int: [SamplerTraceStep]]) {
        let s = try Sampler(config: tiny, params: params, options: opt)
        var steps: [Int: [SamplerTraceStep]] = [:]
        s.trace = { steps[$0.promptIndex, default: []].append($0) }
        let out = try s.generate(prompts)
        return (out, steps)
    }

    // MARK: schedule

    func testScheduleSplitsStepsAndTokensLikeLLaDA() throws {
        XCTAssertEqual(SamplerSchedule.transferCounts(masked: 32, steps: 5), [7, 7, 6, 6, 6])
        XCTAssertEqual(SamplerSchedule.transferCounts(masked: 3, steps: 5), [1, 1, 1, 0, 0])
        let s = try SamplerSchedule(genLength: 64, blockLength: 32, steps: 10)
        XCTAssertEqual(s.blocks, [0..<32, 32..<64])
        XCTAssertEqual(s.stepsPerBlock, 5)
        XCTAssertEqual(s.counts, [[7, 7, 6, 6, 6], [7, 7, 6, 6, 6]])
        // default steps: gen / 2
        XCTAssertEqual(try SamplerSchedule(genLength: 64, blockLength: 32, steps: nil).totalSteps, 32)
        // a block longer than the response is cut to it
        let one = try SamplerSchedule(genLength: 11, blockLength: 32, steps: nil)
        XCTAssertEqual(one.blocks, [0..<11]); XCTAssertEqual(one.counts, [[3, 2, 2, 2, 2]])
        // a final partial block takes the remainder, with its own even split
        let part = try SamplerSchedule(genLength: 40, blockLength: 32, steps: 4)
        XCTAssertEqual(part.blocks, [0..<32, 32..<40]); XCTAssertEqual(part.counts, [[16, 16], [4, 4]])
        // steps not divisible by the number of blocks: an error that says so
        XCTAssertThrowsError(try SamplerSchedule(genLength: 64, blockLength: 32, steps: 5)) {
            XCTAssertTrue("\($0)".contains("divisible by the number of blocks (2"), "\($0)")
        }
        // default steps rounded up to a multiple of the blocks
        XCTAssertEqual(try SamplerSchedule(genLength: 36, blockLength: 8, steps: nil).totalSteps, 20)
        XCTAssertThrowsError(try SamplerOptions(genLength: 8, temperature: -1).validate())
        XCTAssertThrowsError(try SamplerOptions(genLength: 0).validate())
        XCTAssertThrowsError(try Remasking(name: "lowest"))
        XCTAssertEqual(try Remasking(name: "low-confidence"), .lowConfidence)
    }

    // MARK: the trace

    func checkTrace(_ opt: SamplerOptions, params: FloatBuffer, file: StaticString = #filePath, line: UInt = #line) throws {
        let sched = try opt.schedule
        let mask = Int32(tiny.maskTokenId)
        let (out, trace) = try traced(opt, params: params, prompts: prompts)
        XCTAssertEqual(out.count, prompts.count, file: file, line: line)
        for (i, o) in out.enumerated() {
            XCTAssertEqual(o.count, opt.genLength, file: file, line: line)
            XCTAssertFalse(o.contains(mask), "prompt \(i) still has masks", file: file, line: line)
            let steps = trace[i] ?? []
            XCTAssertEqual(steps.count, sched.totalSteps, file: file, line: line)
            var committedSoFar = Set<Int>()
            for t in steps {
                let block = sched.blocks[t.block]
                XCTAssertEqual(t.step, t.block * sched.stepsPerBlock + t.stepInBlock, file: file, line: line)
                XCTAssertEqual(t.committed.count, sched.counts[t.block][t.stepInBlock], "prompt \(i) step \(t.step)",
                               file: file, line: line)
                XCTAssertTrue(t.committed.allSatisfy { block.contains($0) }, "committed outside block \(t.block)",
                              file: file, line: line)
                XCTAssertTrue(committedSoFar.isDisjoint(with: t.committed), file: file, line: line)
                committedSoFar.formUnion(t.committed)
                // exactly the committed positions are unmasked; everything after the block is masked
                for p in 0..<opt.genLength {
                    XCTAssertEqual(t.response[p] != mask, committedSoFar.contains(p), "prompt \(i) step \(t.step) pos \(p)",
                                   file: file, line: line)
                    if p >= block.upperBound { XCTAssertEqual(t.response[p], mask, file: file, line: line) }
                }
            }
            // per block: the whole block, nothing else
            for (b, block) in sched.blocks.enumerated() {
                let c = steps.filter { $0.block == b }.flatMap(\.committed).sorted()
                XCTAssertEqual(c, Array(block), file: file, line: line)
            }
            XCTAssertEqual(steps.last?.response, o, file: file, line: line)
        }
    }

    func testCommitsFollowTheScheduleBlockByBlock() throws {
        try checkTrace(SamplerOptions(genLength: 64, blockLength: 32, steps: 10), params: randomModel())
        try checkTrace(SamplerOptions(genLength: 20, blockLength: 8, steps: 9, maxBatch: 2), params: randomModel())
    }

    func testRandomRemaskingAndSamplingCommitTheRightCounts() throws {
        try checkTrace(SamplerOptions(genLength: 64, blockLength: 32, steps: 10, remasking: .random), params: randomModel())
        try checkTrace(SamplerOptions(genLength: 16, blockLength: 8, steps: 4, temperature: 1, remasking: .random, seed: 5),
                       params: randomModel(std: 0.3))
        try checkTrace(SamplerOptions(genLength: 16, blockLength: 16, steps: 6, temperature: 0.7, cfg: 1.5),
                       params: randomModel(std: 0.3))
    }

    // MARK: determinism and seeds

    func testGreedyIsDeterministicAndSamplingFollowsTheSeed() throws {
        let params = randomModel(std: 0.3)
        let greedy = SamplerOptions(genLength: 16, blockLength: 8, steps: 8)
        let a = try Sampler(config: tiny, params: params, options: greedy).generate(prompts)
        let b = try Sampler(config: tiny, params: params, options: greedy).generate(prompts)
        XCTAssertEqual(a, b)
        var g2 = greedy; g2.seed = 99   // the seed does not matter at temperature 0
        XCTAssertEqual(try Sampler(config: tiny, params: params, options: g2).generate(prompts), a)
        var hot = greedy; hot.temperature = 1; hot.seed = 1
        let h1 = try Sampler(config: tiny, params: params, options: hot).generate(prompts)
        let h2 = try Sampler(config: tiny, params: params, options: hot).generate(prompts)
        XCTAssertEqual(h1, h2, "same seed, same samples")
        hot.seed = 2
        XCTAssertNotEqual(try Sampler(config: tiny, params: params, options: hot).generate(prompts), h1)
        // a prompt's draws depend on its key, not on the other prompts of the batch
        hot.seed = 1
        let alone = try Sampler(config: tiny, params: params, options: hot).generate([prompts[2]], keys: [2])
        XCTAssertEqual(alone[0], h1[2])
    }

    // MARK: a model that is sure of one token

    func testCertainTokenEverywhere() throws {
        let params = certainModel(token: 5)
        for opt in [SamplerOptions(genLength: 24, blockLength: 8, steps: 6),
                    SamplerOptions(genLength: 24, blockLength: 8, steps: 6, temperature: 1, seed: 4),
                    SamplerOptions(genLength: 24, blockLength: 24, steps: 3, remasking: .random, cfg: 2)] {
            let out = try Sampler(config: tiny, params: params, options: opt).generate(prompts)
            for o in out { XCTAssertEqual(o, [Int32](repeating: 5, count: 24), "\(opt)") }
        }
        // a model sure of the mask token: the sampler never commits the mask id, and still fills every slot
        let sureMask = certainModel(token: tiny.maskTokenId)
        let out = try Sampler(config: tiny, params: sureMask, options: SamplerOptions(genLength: 8, blockLength: 8, steps: 4))
            .generate(prompts)
        for o in out { XCTAssertFalse(o.contains(Int32(tiny.maskTokenId))) }
    }

    // MARK: agreement with a direct computation

    /// Logits of `tokens` at response position `pos`, straight from the model.
    func logitsAt(_ params: FloatBuffer, tokens: [Int32], row: Int) -> [Float] {
        let m = Transformer(config: tiny, maxSeqLen: tokens.count)
        let a = Activations(config: tiny, capacityTokens: tokens.count, maxSeqLen: tokens.count, training: false)
        m.forward(params.pointer, tokens: tokens, batch: 1, seqLen: tokens.count, acts: a)
        let p = m.head(params.pointer, rows: [Int32(row)], acts: a)
        return Array(UnsafeBufferPointer(start: p, count: tiny.vocab))
    }

    func testFirstStepKeepsTheMostConfidentArgmaxPredictions() throws {
        let params = randomModel(std: 0.5, seed: 11)
        let prompt = prompts[0], P = prompt.count, G = 8, mask = Int32(tiny.maskTokenId)
        let x = prompt + [Int32](repeating: mask, count: G)
        var pred: [(tok: Int32, conf: Double)] = []
        for p in 0..<G {
            var z = logitsAt(params, tokens: x, row: P + p).map(Double.init)
            z[tiny.maskTokenId] = -.infinity
            let m = z.max()!, sum = z.reduce(0) { $0 + exp($1 - m) }
            let t = z.firstIndex(of: m)!
            pred.append((Int32(t), 1 / sum))
        }
        let top = (0..<G).sorted { pred[$0].conf > pred[$1].conf }.prefix(2).sorted()
        let (_, trace) = try traced(SamplerOptions(genLength: G, blockLength: G, steps: 4), params: params, prompts: [prompt])
        let first = trace[0]![0]
        XCTAssertEqual(first.committed, Array(top))
        for p in top { XCTAssertEqual(first.response[p], pred[p].tok) }
    }

    func testGuidanceCombinesConditionalAndUnconditionalLogits() throws {
        let params = randomModel(std: 0.5, seed: 12)
        let prompt = prompts[1], P = prompt.count, mask = Int32(tiny.maskTokenId), cfg = 1.5
        let cond = logitsAt(params, tokens: prompt + [mask], row: P)
        let uncond = logitsAt(params, tokens: [Int32](repeating: mask, count: P + 1), row: P)
        var z = (0..<tiny.vocab).map { Double(uncond[$0]) + (cfg + 1) * Double(cond[$0] - uncond[$0]) }
        z[tiny.maskTokenId] = -.infinity
        let want = Int32(z.firstIndex(of: z.max()!)!)
        let out = try Sampler(config: tiny, params: params, options: SamplerOptions(genLength: 1, steps: 1, cfg: cfg))
            .generate([prompt])
        XCTAssertEqual(out, [[want]])
        // without guidance: the conditional argmax
        var c = cond.map(Double.init); c[tiny.maskTokenId] = -.infinity
        let plain = try Sampler(config: tiny, params: params, options: SamplerOptions(genLength: 1, steps: 1)).generate([prompt])
        XCTAssertEqual(plain, [[Int32(c.firstIndex(of: c.max()!)!)]])
    }

    func testRejectsBadInputs() throws {
        let params = randomModel()
        let s = try Sampler(config: tiny, params: params, options: SamplerOptions(genLength: 4))
        XCTAssertThrowsError(try s.generate([[1, 64]]))
        var long = tiny; long.maxSequenceLength = 8
        XCTAssertThrowsError(try Sampler(config: long, params: params, options: SamplerOptions(genLength: 8)).generate([[1]]))
        XCTAssertThrowsError(try Sampler(config: tiny, params: FloatBuffer(count: 3), options: SamplerOptions()))
    }

    // MARK: evaluation

    func testEvaluateRunsEndToEndOnAFreshModel() throws {
        let params = randomModel()
        let r = try Evaluate.run(config: tiny, params: params, task: .countdown, n: 8, seeds: 2, seed: 7)
        XCTAssertEqual(r.records.count, 16)
        XCTAssertEqual(r.seeds, [7, 8])
        XCTAssertEqual(r.accuracies.count, 2)
        XCTAssertTrue((0...1).contains(r.accuracy)); XCTAssertTrue(r.stderr.isFinite && r.stderr >= 0)
        // repetitions draw different problem sets
        XCTAssertNotEqual(r.records.filter { $0.seedIndex == 0 }.map(\.prompt), r.records.filter { $0.seedIndex == 1 }.map(\.prompt))
        for rec in r.records {
            XCTAssertEqual(rec.score, BuiltinTask.countdown.score(prompt: rec.prompt, output: rec.output))
            XCTAssertTrue(Countdown.verify(prompt: rec.prompt, output: rec.reference))
        }
        let json = try JSONSerialization.jsonObject(with: Data(r.jsonLine.utf8)) as! [String: Any]
        for k in ["task", "n", "accuracy", "stderr", "seconds"] { XCTAssertNotNil(json[k], k) }
        // the JSONL of every answer
        let dir = try temporaryDirectory(self)
        let path = dir.appendingPathComponent("r.jsonl").path
        try Evaluate.writeJSONL(r.records, to: path)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 16)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        for k in ["prompt", "output", "reference", "score"] { XCTAssertNotNil(first[k], k) }
        // Sudoku, one repetition: the standard error is over problems
        let s = try Evaluate.run(config: tiny, params: certainModel(token: 2), task: .sudoku, n: 6, seeds: 1)
        XCTAssertTrue((0...1).contains(s.accuracy)); XCTAssertTrue(s.stderr.isFinite)
        XCTAssertEqual(s.records.first?.output, String(repeating: "1", count: 17))   // id 2 is the digit 1
    }

    func testRepetitionsMatchSeparateRunsWithTheirSeeds() throws {
        let params = randomModel(std: 0.3)
        var opt = Evaluate.defaultOptions(for: .countdown)
        opt.temperature = 1
        let both = try Evaluate.run(config: tiny, params: params, task: .countdown, n: 5, seeds: 2, seed: 20, options: opt)
        let second = try Evaluate.run(config: tiny, params: params, task: .countdown, n: 5, seeds: 1, seed: 21, options: opt)
        XCTAssertEqual(both.records.filter { $0.seedIndex == 1 }.map(\.output), second.records.map(\.output))
        XCTAssertEqual(both.accuracies[1], second.accuracies[0])
    }

    func testMeanAndStandardError() {
        let (m, se) = Evaluate.meanAndStandardError([0.2, 0.4, 0.6])
        XCTAssertEqual(m, 0.4, accuracy: 1e-12)
        XCTAssertEqual(se, 0.2 / 3.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Evaluate.meanAndStandardError([0.5]).stderr, 0)
    }

    func testModelDirectoryAcceptsARunFolder() throws {
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("model")
        try ModelFolder.save(model.path, config: tiny, parameters: randomModel())
        try Data("{\"objective\": \"gift\"}".utf8).write(to: dir.appendingPathComponent("config.json"))   // a run config
        XCTAssertEqual(Evaluate.modelDirectory(dir.path), model.path)
        XCTAssertEqual(Evaluate.modelDirectory(model.path), model.path)
    }

    // MARK: the commands

    func testGenerateAndEvalCommands() throws {
        for cmd in ["generate", "eval"] {
            let r = try runGift(["help", cmd])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.stdout.contains("Example"), "\(cmd) --help has no example")
        }
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("model").path
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--out", model]).status, 0)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("config.json"))   // as a run folder has
        let g = try runGift(["generate", "--model", dir.path, "--prompt", "7 15 3 to 36:", "--gen-length", "8",
                             "--block-length", "4", "--steps", "4"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertEqual(g.stdout.split(separator: "\n").count, 1)
        let bad = try runGift(["generate", "--model", model, "--prompt", "x", "--gen-length", "8", "--steps", "3",
                               "--block-length", "4"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("divisible"), bad.stderr)
        let out = dir.appendingPathComponent("res.jsonl").path
        let e = try runGift(["eval", "--model", model, "--task", "countdown", "--n", "4", "--seeds", "2", "--out", out])
        XCTAssertEqual(e.status, 0, e.stderr)
        let last = e.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        XCTAssertEqual(json?["task"] as? String, "countdown")
        XCTAssertEqual(json?["n"] as? Int, 4)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count, 8)
    }
}
