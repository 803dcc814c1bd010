import Foundation
import XCTest
@testable import GiftCore

/// Real text through gift: a tiny LLaDA-layout folder with a trained tokenizer and LLaDA's chat template,
/// prepared messages and s1K data trained on 2 ranks with --group-by-length, resumed, exported and
/// loaded by transformers; and `gift generate` with the folder's template and tokenizer.
final class TextEndToEndTests: XCTestCase {
    let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]

    func mpi(_ ranks: Int, _ args: [String]) throws -> RunResult {
        try runProcess(mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path] + args, env: env)
    }

    /// Conversations of mixed lengths (so grouping by length has something to group).
    func messagesRecords(_ n: Int) -> [String] {
        (0..<n).map { i in
            let q = String(repeating: "What is 2 + 3? ", count: 1 + i % 4)
            let a = String(repeating: "It is 5. ", count: 1 + (i * 7) % 9)
            let conv: [[String: String]] = (i % 3 == 0 ? [["role": "system", "content": "Be brief."]] : [])
                + [["role": "user", "content": q], ["role": "assistant", "content": a]]
            return String(decoding: try! JSONSerialization.data(withJSONObject: ["messages": conv], options: [.sortedKeys]), as: UTF8.self)
        }
    }

    func s1kRecords(_ n: Int) -> [String] {
        (0..<n).map { i in
            let r: [String: Any] = ["question": "What is \(i) + 3?", "thinking_trajectories": [String(repeating: "reasoning ", count: 1 + i % 5)],
                                    "attempt": "\(i + 3)"]
            return String(decoding: try! JSONSerialization.data(withJSONObject: r, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    func testPrepareTrainTwoRanksResumeExportLoadsInTransformers() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        _ = try makeChatModelFolder(model)
        var prepared: [URL] = []
        for (name, lines) in [("messages", messagesRecords(40)), ("s1k", s1kRecords(24))] {
            let f = dir.appendingPathComponent("\(name).jsonl"), p = dir.appendingPathComponent("\(name)-prepared")
            try (lines.joined(separator: "\n") + "\n").write(to: f, atomically: true, encoding: .utf8)
            let r = try runGift(["data", "prepare", "--model", model.path, "--data", f.path, "--out", p.path, "--max-length", "96"])
            XCTAssertEqual(r.status, 0, r.stderr)
            prepared.append(p)
        }
        func train(_ data: URL, _ out: URL, _ extra: [String]) throws -> RunResult {
            try mpi(2, ["train", "--model", model.path, "--data", data.path, "--group-by-length", "--micro-batch", "4",
                        "--max-steps", "4", "--lr", "1e-3", "--max-length", "96", "--seed", "3", "--out", out.path] + extra)
        }
        // uninterrupted, then stopped after 2 steps and resumed: bit-identical losses
        let full = dir.appendingPathComponent("full"), part = dir.appendingPathComponent("part")
        let a = try train(prepared[0], full, [])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertTrue(a.stderr.contains("grouped by length"), a.stderr)
        let b1 = try train(prepared[0], part, ["--stop-at-step", "2"])
        XCTAssertEqual(b1.status, 0, b1.stderr)
        let b2 = try train(prepared[0], part, ["--resume", "auto"])
        XCTAssertEqual(b2.status, 0, b2.stderr)
        XCTAssertTrue(b2.stderr.contains("resumed from"), b2.stderr)
        let la = try stepLosses(full), lb = try stepLosses(part)
        XCTAssertEqual(la.count, 4)
        XCTAssertEqual(la, lb, "a resumed run continues bit-identically")
        // the s1K set trains too
        let s = try train(prepared[1], dir.appendingPathComponent("s1k-run"), ["--max-steps", "2"])
        XCTAssertEqual(s.status, 0, s.stderr)
        // gift export of the last checkpoint and the run's model/: tokenizer and config load in transformers
        let exported = dir.appendingPathComponent("exported")
        let e = try runGift(["export", full.path, "--out", exported.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        let py = #"""
        import json, sys
        from transformers import AutoTokenizer, AutoConfig, PretrainedConfig
        src, outs = sys.argv[1], sys.argv[2:]
        ref = AutoTokenizer.from_pretrained(src)
        conv = [{"role": "user", "content": "What is 2 + 3?"}]
        want = ref.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        for d in outs:
            tok = AutoTokenizer.from_pretrained(d)
            assert tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True) == want, d
            assert tok("It is 5. 🙂")["input_ids"] == ref("It is 5. 🙂")["input_ids"], d
            assert tok.eos_token == ref.eos_token and tok.bos_token == ref.bos_token, d
            # LLaDA's model_type is not one transformers knows: AutoConfig needs the remote code
            # (trust_remote_code=True, configuration_llada.py), which a tiny folder lacks; report what it does
            try:
                AutoConfig.from_pretrained(d, trust_remote_code=False); auto = "loaded"
            except Exception as e:
                auto = type(e).__name__ + ": " + str(e).split("\n")[0][:120]
            c = PretrainedConfig.from_pretrained(d)
            print(json.dumps({"dir": d, "auto_config": auto, "vocab_size": c.vocab_size, "model_type": PretrainedConfig.get_config_dict(d)[0].get("model_type"),
                              "tokenizer_class": type(tok).__name__}))
        """#
        let r = try runPython(py, [model.path, full.appendingPathComponent("model").path, exported.path])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python transformers missing")
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(rows.count, 2)
        let mc = try ModelConfig.parse(try Data(contentsOf: model.appendingPathComponent("config.json")), source: "config.json")
        for row in rows {
            XCTAssertEqual(row["vocab_size"] as? Int, mc.vocab, "\(row)")
            XCTAssertEqual(row["model_type"] as? String, "llada", "\(row)")
            print("transformers on \(row["dir"]!): AutoConfig(trust_remote_code=False): \(row["auto_config"]!), tokenizer \(row["tokenizer_class"]!)")
        }
    }

    /// A LoRA run folder (adapter/, no model/) samples with its base's tokenizer and chat template.
    func testGenerateOnALoRARunFolderUsesTheBasesTokenizer() throws {
        let dir = try temporaryDirectory(self)
        let base = dir.appendingPathComponent("base")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        _ = try makeChatModelFolder(base)
        let data = dir.appendingPathComponent("d.jsonl")
        try (0..<8).map { #"{"prompt": "What is \#($0) + 1?", "response": "It is \#($0 + 1)."}"# }.joined(separator: "\n")
            .write(to: data, atomically: true, encoding: .utf8)
        let run = dir.appendingPathComponent("run")
        let t = try runGift(["train", "--model", base.path, "--data", data.path, "--max-steps", "2", "--micro-batch", "4",
                             "--lora-r", "4", "--out", run.path])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("model").path))
        let g = try runGift(["generate", "--model", run.path, "--prompt", "What is 2 + 3?", "--gen-length", "8",
                             "--block-length", "8", "--json"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(o["prompt"] as? String, "What is 2 + 3?")
        XCTAssertGreaterThan((o["prompt_ids"] as? [Int])?.count ?? 0, 10, "the prompt went through the base's chat template")
    }

    /// gift generate with a tokenizer.json folder: the prompt is apply_chat_template's (generation prompt
    /// on), and the printed text is the tokenizer's decoding of the sampled ids up to the first EOS.
    func testGenerateUsesTheFoldersTemplateAndTokenizer() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeChatModelFolder(dir)
        let convs = dir.appendingPathComponent("convs.jsonl")
        try (#"[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 🙂"}]"# + "\n"
             + #"{"messages": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]}"# + "\n")
            .write(to: convs, atomically: true, encoding: .utf8)
        let args = ["generate", "--model", dir.path, "--prompt", "What is 2 + 3?", "--messages", convs.path,
                    "--gen-length", "12", "--block-length", "12", "--steps", "6", "--temperature", "1", "--seed", "5"]
        let j = try runGift(args + ["--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let plain = try runGift(args)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let outFile = dir.appendingPathComponent("out.jsonl")
        try j.stdout.write(to: outFile, atomically: true, encoding: .utf8)
        let py = #"""
        import json, sys
        from transformers import AutoTokenizer
        from tokenizers import Tokenizer
        tok = AutoTokenizer.from_pretrained(sys.argv[1])
        raw = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")   # decode without transformers' clean-up
        eos = json.load(open(sys.argv[1] + "/config.json"))["eos_token_id"]
        convs = [[{"role": "user", "content": "What is 2 + 3?"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 🙂"}],
                 [{"role": "user", "content": "What is 2 + 3?"}]]
        for conv, line in zip(convs, open(sys.argv[2])):
            o = json.loads(line)
            ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            out = o["output_ids"]
            cut = out[:out.index(eos)] if eos in out else out
            print(json.dumps({"prompt_ok": ids == o["prompt_ids"], "text": raw.decode(cut, skip_special_tokens=True)}))
        """#
        let r = try runPython(py, [dir.path, outFile.path])
        try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "python transformers missing")
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(rows.count, 3)
        let gift = j.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        for (i, (row, g)) in zip(rows, gift).enumerated() {
            XCTAssertEqual(row["prompt_ok"] as? Bool, true, "prompt \(i): ids of apply_chat_template")
            XCTAssertEqual(g["output"] as? String, row["text"] as? String, "prompt \(i)")
        }
        // the plain form prints the same texts, one a line (the texts hold no newline here, or we cannot split)
        let texts = gift.map { $0["output"] as! String }
        if !texts.contains(where: { $0.contains("\n") }) {
            XCTAssertEqual(plain.stdout, texts.map { $0 + "\n" }.joined())
        }
        XCTAssertTrue((gift[0]["output_ids"] as! [Int]).count == 12)
    }
}
