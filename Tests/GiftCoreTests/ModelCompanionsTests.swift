import Foundation
import XCTest
@testable import GiftCore

/// A run started from a Hugging Face folder ends with a drop-in replacement of it: same weight dtype and
/// sharding, its tokenizer, generation config and remote-code files, its extra config.json keys.
final class ModelCompanionsTests: XCTestCase {
    /// A sharded bf16 source folder with the files a LLaDA repository ships.
    func makeSource(_ dir: URL) throws -> (ModelConfig, [String: Data]) {
        let c = try ModelConfig.preset("tiny")
        let params = ParameterLayout(c).initialize(seed: 4)
        try ModelFolder.save(dir.path, config: c, parameters: params, dtype: .BF16, maxShardBytes: 80_000)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        cfg["auto_map"] = ["AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM"]
        cfg["transformers_version"] = "4.46.3"
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
        let files: [String: Data] = [
            "tokenizer_config.json": Data(#"{"bos_token": "<s>", "chat_template": "{{ messages }}"}"#.utf8),
            "special_tokens_map.json": Data(#"{"bos_token": "<s>"}"#.utf8),
            "generation_config.json": Data(#"{"bos_token_id": 1, "eos_token_id": 62}"#.utf8),
            "modeling_llada.py": Data("class LLaDAModelLM: pass\n".utf8),
            "configuration_llada.py": Data("class LLaDAConfig: pass\n".utf8),
        ]
        for (name, data) in files { try data.write(to: dir.appendingPathComponent(name)) }
        return (c, files)
    }

    func shards(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix("model-") }.sorted()
    }

    func testRunModelAndExportAreDropInReplacements() throws {
        let root = try temporaryDirectory(self)
        let src = root.appendingPathComponent("source")
        let (_, files) = try makeSource(src)
        XCTAssertGreaterThan(shards(src).count, 1, "the source is sharded")
        XCTAssertEqual(try ModelCompanions.weightFormat(of: src.path).dtype, .BF16)
        // ids data (the source's tokenizer_config is not a real tokenizer: no text goes through it)
        let data = root.appendingPathComponent("d.jsonl")
        try (0..<24).map { i in "{\"prompt_ids\": [\(i % 50), 3], \"response_ids\": [\(i % 40 + 1), 7, 9]}" }
            .joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        let run = root.appendingPathComponent("run")
        let r = try runGift(["train", "--model", src.path, "--data", data.path, "--max-steps", "2", "--micro-batch", "4",
                             "--out", run.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for out in [run.appendingPathComponent("model"), root.appendingPathComponent("exported")] {
            if out.lastPathComponent == "exported" {
                let e = try runGift(["export", run.path, "--out", out.path])
                XCTAssertEqual(e.status, 0, e.stderr)
                XCTAssertTrue(e.stdout.contains("BF16") && e.stdout.contains("modeling_llada.py"), e.stdout)
            }
            XCTAssertEqual(shards(out).count, shards(src).count, "\(out.lastPathComponent): same sharding")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors.index.json").path))
            XCTAssertEqual(try ModelCompanions.weightFormat(of: out.path).dtype, .BF16)
            for (name, bytes) in files { XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(name)), bytes, name) }
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
            XCTAssertEqual((cfg["auto_map"] as? [String: String])?["AutoModel"], "modeling_llada.LLaDAModelLM")
            XCTAssertEqual(cfg["torch_dtype"] as? String, "bfloat16")
            XCTAssertEqual(cfg["transformers_version"] as? String, "4.46.3")
            XCTAssertEqual(cfg["d_model"] as? Int, 64, "gift's own keys are not overwritten")
            _ = try ModelFolder.load(out.path)   // and it loads
        }
        // the trained weights, not the source's: export in f32 differs from the source by training
        let f32 = root.appendingPathComponent("f32")
        XCTAssertEqual(try runGift(["export", run.path, "--out", f32.path, "--dtype", "f32"]).status, 0)
        XCTAssertEqual(try ModelCompanions.weightFormat(of: f32.path).dtype, .F32)
        let (_, a) = try ModelFolder.load(f32.path), (_, b) = try ModelFolder.load(src.path)
        XCTAssertTrue((0..<a.count).contains { a[$0] != b[$0] })
        // a header whose length does not fit its file is refused, naming the file
        let bad = root.appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x7B]).write(to: bad.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try ModelCompanions.weightFormat(of: bad.path)) { e in
            XCTAssertTrue("\(e)".contains("bad/model.safetensors") && "\(e)".contains("header length"), "\(e)")
        }
    }
}
