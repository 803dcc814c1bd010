import Foundation
import XCTest
@testable import GiftCore

/// The `gift` executable itself: init, inspect and bench as a user runs them.
final class CommandTests: XCTestCase {
    /// config.json's mlp_ratio: the llada-8b preset writes the published 4 (not 12288 / 4096 = 3), and a
    /// folder's own value goes back out unchanged (the golden folder says 4 beside 48 / 32).
    func testMLPRatioIsThePublishedOne() throws {
        XCTAssertEqual(try ModelConfig.preset("llada-8b").jsonObject()["mlp_ratio"] as? Int, 4)
        XCTAssertEqual(try ModelConfig.preset("tiny").jsonObject()["mlp_ratio"] as? Int, 2)
        let golden = goldenDir.appendingPathComponent("llada-tiny/config.json").path
        let c = try ModelConfig.parse(try Data(contentsOf: URL(fileURLWithPath: golden)), source: golden)
        XCTAssertEqual(c.jsonObject()["mlp_ratio"] as? Int, 4)
        XCTAssertEqual(try ModelConfig.parse(c.jsonData(), source: "round trip"), c)
    }

    func testInitSameSeedSameBytesAndLoads() throws {
        let dir = try temporaryDirectory(self)
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        let c = dir.appendingPathComponent("c").path
        for (out, seed) in [(a, "3"), (b, "3"), (c, "4")] {
            let r = try runGift(["init", "--preset", "tiny", "--seed", seed, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let fa = try Data(contentsOf: URL(fileURLWithPath: a + "/model.safetensors"))
        XCTAssertEqual(fa, try Data(contentsOf: URL(fileURLWithPath: b + "/model.safetensors")))
        XCTAssertNotEqual(fa, try Data(contentsOf: URL(fileURLWithPath: c + "/model.safetensors")))
        let (config, params) = try ModelFolder.load(a)
        XCTAssertEqual(config, try ModelConfig.preset("tiny"))
        XCTAssertEqual(params.count, ParameterLayout(config).count)
        // explicit sizes and grouped-query attention
        let g = dir.appendingPathComponent("g").path
        let r = try runGift(["init", "--d-model", "32", "--layers", "1", "--heads", "4", "--kv-heads", "2", "--ff", "48",
                             "--vocab", "40", "--out", g])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (gc, _) = try ModelFolder.load(g)
        XCTAssertEqual([gc.dModel, gc.nLayers, gc.nHeads, gc.nKVHeads, gc.mlpHiddenSize, gc.vocab, gc.maskTokenId, gc.eosTokenId],
                       [32, 1, 4, 2, 48, 40, 39, 38])
        // a bad size is refused by name
        let bad = try runGift(["init", "--heads", "5", "--out", dir.appendingPathComponent("bad").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("n_heads"), bad.stderr)
    }

    func testInspectIsDeterministicAndMatchesTheReference() throws {
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("m").path
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--seed", "11", "--out", model]).status, 0)
        let batch = dir.appendingPathComponent("batch.json")
        let json = """
        {"sequences": [
          {"input_ids": [5, 9, 13, 20, 21, 22, 23, 62, 62], "prompt_length": 3, "t": 0.3, "mask": [0,0,0,1,0,1,1,0,1]},
          {"input_ids": [7, 8, 30, 31, 32, 33, 34, 35, 62], "prompt_length": 2, "t": 0.7, "mask": [0,0,1,1,1,0,0,1,1]}
        ]}
        """
        try json.write(to: batch, atomically: true, encoding: .utf8)
        let (config, params) = try ModelFolder.load(model)
        let seqs = try Inspect.readBatch(path: batch.path, config: config)
        for objective in ObjectiveKind.allCases {
            var outs: [String] = []
            for i in 0..<2 {
                let out = dir.appendingPathComponent("\(objective.rawValue)-\(i).safetensors").path
                let r = try runGift(["inspect", "--model", model, "--batch", batch.path, "--objective", objective.rawValue, "--out", out])
                XCTAssertEqual(r.status, 0, r.stderr)
                outs.append(r.stdout)
            }
            XCTAssertEqual(outs[0], outs[1], "\(objective): two runs printed different numbers")
            let a = try Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("\(objective.rawValue)-0.safetensors").path))
            let b = try Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("\(objective.rawValue)-1.safetensors").path))
            XCTAssertEqual(a, b, "\(objective): two runs wrote different tensors")
            let printed = try JSONSerialization.jsonObject(with: Data(outs[0].utf8)) as! [String: Any]
            let ref = Reference(config: config, params: params).objective(ObjectiveOptions(kind: objective), seqs)
            XCTAssertEqual((printed["loss"] as! NSNumber).doubleValue, ref.loss, accuracy: 1e-5 * abs(ref.loss), "\(objective)")
            XCTAssertEqual((printed["masked"] as! NSNumber).intValue, 9)
            XCTAssertEqual((printed["response_tokens"] as! NSNumber).intValue, 13)
            let f = try SafetensorsFile.read(path: dir.appendingPathComponent("\(objective.rawValue)-0.safetensors").path)
            let logits = try f.floats("logits"), V = config.vocab
            let refLogits = ref.logits.flatMap { $0.flatMap { $0 } }
            let scale = refLogits.map { abs($0) }.max()!
            for i in stride(from: 0, to: logits.count, by: 7) {
                XCTAssertEqual(Double(logits[i]), refLogits[i], accuracy: 1e-4 * scale)
            }
            XCTAssertEqual(logits.count, 2 * 9 * V)
            let w = try f.floats("weights"), refW = ref.weights.flatMap { $0 }
            for i in w.indices { XCTAssertEqual(Double(w[i]), refW[i], accuracy: 1e-5 * max(1, abs(refW[i]))) }
            for t in ParameterLayout(config).tensors { XCTAssertEqual(try f.tensor("grad/" + t.name).shape, t.shape) }
        }
    }

    func testInspectRejectsBadBatches() throws {
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("m").path
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--out", model]).status, 0)
        let cases: [(String, String)] = [
            (#"{"sequences": [{"input_ids": [1,2,3], "prompt_length": 1, "t": 0.5, "mask": [1,0,0]}]}"#, "prompt position"),
            (#"{"sequences": [{"input_ids": [1,2,99], "prompt_length": 1, "t": 0.5, "mask": [0,0,1]}]}"#, "input_ids[2] = 99"),
            (#"{"sequences": [{"input_ids": [1,2,3], "prompt_length": 1, "t": 1.5, "mask": [0,0,1]}]}"#, "t = 1.5"),
            (#"{"sequences": [{"input_ids": [1,2,3], "prompt_length": 1, "t": 0.5, "mask": [0,1]}]}"#, "mask has 2 entries"),
            (#"{"sequences": [{"input_ids": [1,2,3], "prompt_length": 1, "t": 0.5, "mask": [0,0,1]}, {"input_ids": [1,2], "prompt_length": 1, "t": 0.5, "mask": [0,1]}]}"#, "sequences[1]"),
            (#"{"sequences": []}"#, "non-empty"),
            ("not json", "not a JSON object"),
        ]
        for (i, (text, expect)) in cases.enumerated() {
            let batch = dir.appendingPathComponent("b\(i).json")
            try text.write(to: batch, atomically: true, encoding: .utf8)
            let r = try runGift(["inspect", "--model", model, "--batch", batch.path, "--objective", "sft",
                                 "--out", dir.appendingPathComponent("o.safetensors").path])
            XCTAssertNotEqual(r.status, 0, text)
            XCTAssertTrue(r.stderr.contains(expect) && r.stderr.contains(batch.lastPathComponent), "expected '\(expect)' in: \(r.stderr)")
        }
        let r = try runGift(["inspect", "--model", model, "--batch", "x.json", "--objective", "nope", "--out", "o"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("unknown objective 'nope'"), r.stderr)
    }

    func testBenchPrintsMachineReadableFigures() throws {
        let r = try runGift(["bench", "--preset", "tiny", "--seq", "32", "--batch", "2", "--steps", "2", "--warmup", "1",
                             "--objective", "sft,gift"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let o = try JSONSerialization.jsonObject(with: Data(last.utf8)) as! [String: Any]
        for k in ["tokens_per_s", "gflops", "sgemm_gflops", "gift_sft_ratio", "s_per_step"] {
            XCTAssertGreaterThan((o[k] as? NSNumber)?.doubleValue ?? 0, 0, "\(k) in \(last)")
        }
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"objective\": \"gift\"") }
        XCTAssertEqual(lines.count, 1)
    }

    /// --gemm and --precision lists: one JSON line per (backend, precision, objective), a ratio per setting.
    func testBenchMeasuresEveryBackendAndPrecision() throws {
        let gemms = fp32Backends.joined(separator: ",")
        let r = try runGift(["bench", "--preset", "tiny", "--seq", "32", "--batch", "2", "--steps", "1", "--warmup", "0",
                             "--objective", "sft,gift", "--gemm", gemms, "--precision", "fp32,bf16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lanes = r.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"objective\"") }.dropLast()
            .map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(lanes.count, fp32Backends.count * 2 * 2, r.stdout)
        for g in fp32Backends {
            for p in ["fp32", "bf16"] {
                let mine = lanes.filter { $0["gemm"] as? String == g && $0["precision"] as? String == p }
                XCTAssertEqual(Set(mine.compactMap { $0["objective"] as? String }), ["sft", "gift"], "\(g) \(p)")
                XCTAssertTrue(mine.allSatisfy { ($0["compute"] as? String ?? "").hasPrefix("\(g) \(p)") }, "\(mine)")
            }
        }
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual((summary["gift_sft_ratios"] as? [String: Any])?.count, fp32Backends.count * 2, "\(summary)")
        let bad = try runGift(["bench", "--preset", "tiny", "--gemm", "cublas"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("auto, openblas or onednn"), bad.stderr)
    }

    /// inspect in bf16 prints a different (rounded) loss than fp32, close to it; a bad precision is refused.
    func testInspectPrecisionFlag() throws {
        let dir = try temporaryDirectory(self)
        let model = goldenDir.appendingPathComponent("llada-tiny").path, batch = goldenDir.appendingPathComponent("batch.json").path
        var loss: [String: Double] = [:]
        for p in ["fp32", "bf16"] {
            let r = try runGift(["inspect", "--model", model, "--batch", batch, "--objective", "gift", "--precision", p,
                                 "--gemm", "openblas", "--out", dir.appendingPathComponent("\(p).safetensors").path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            loss[p] = (o["loss"] as! NSNumber).doubleValue
        }
        XCTAssertNotEqual(loss["fp32"], loss["bf16"])
        XCTAssertEqual(loss["bf16"]!, loss["fp32"]!, accuracy: 2e-2 * loss["fp32"]!)
        let r = try runGift(["inspect", "--model", model, "--batch", batch, "--precision", "fp16", "--out", "x"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("fp32 or bf16"), r.stderr)
    }

    func testHelpTeachesEveryCommand() throws {
        for cmd in ["init", "inspect", "bench"] {
            let r = try runGift(["help", cmd])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.stdout.contains("Example"), "\(cmd) --help has no example")
        }
    }
}
