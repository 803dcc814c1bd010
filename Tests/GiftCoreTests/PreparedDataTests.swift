import Foundation
import XCTest
@testable import GiftCore

/// `gift data prepare`: the ids of transformers' pipeline, the same examples and data fingerprint as
/// reading the JSONL on the fly, and every fault of a prepared folder named by file and field.
final class PreparedDataTests: XCTestCase {
    func writeRecords(_ dir: URL, _ lines: [String], name: String = "data.jsonl") throws -> URL {
        let f = dir.appendingPathComponent(name)
        try (lines.joined(separator: "\n") + "\n").write(to: f, atomically: true, encoding: .utf8)
        return f
    }

    func prepare(_ model: URL, _ data: URL, _ out: URL, _ extra: [String] = []) throws -> RunResult {
        try runGift(["data", "prepare", "--model", model.path, "--data", data.path, "--out", out.path] + extra)
    }

    func testPreparedIdsMatchTransformersAndOnTheFlyReading() throws {
        let dir = try temporaryDirectory(self)
        let (vocab, _, _) = try makeChatModelFolder(dir)
        let data = try writeRecords(dir, Array(repeating: ChatDataTests.records, count: 3).flatMap { $0 })
        let prep = dir.appendingPathComponent("prepared"), ids = dir.appendingPathComponent("ids.jsonl")
        let r = try prepare(dir, data, prep, ["--jsonl-out", ids.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("15 examples"), r.stdout)
        // --jsonl-out against transformers' apply_chat_template + dllm's split
        let ref = try runPython(ChatDataTests.reference, [dir.path, data.path])
        try XCTSkipIf(ref.status != 0 && ref.stderr.contains("No module named"), "python transformers missing")
        XCTAssertEqual(ref.status, 0, ref.stderr)
        let parse = { (s: String) in s.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: [Int]] } }
        XCTAssertEqual(parse(try String(contentsOf: ids, encoding: .utf8)), parse(ref.stdout))
        // train's view: the same examples, split and fingerprint as the JSONL read on the fly
        var cfg = RunConfig()
        cfg.model = dir.path; cfg.maxLength = 40; cfg.validationFraction = 0.2; cfg.seed = 7
        let mc = try ModelConfig.parse(try Data(contentsOf: dir.appendingPathComponent("config.json")), source: "config.json")
        XCTAssertEqual(mc.vocab, vocab)
        cfg.data = data.path
        let onTheFly = try TrainData.load(cfg, model: mc)
        cfg.data = prep.path
        let mapped = try TrainData.load(cfg, model: mc)
        XCTAssertGreaterThan(onTheFly.report.truncated, 0, "max length 40 must cut the s1K records")
        XCTAssertEqual(mapped.train, onTheFly.train)
        XCTAssertEqual(mapped.validation, onTheFly.validation)
        XCTAssertEqual(mapped.report.truncated, onTheFly.report.truncated)
        XCTAssertEqual(TrainBatches.fingerprint(mapped.train), TrainBatches.fingerprint(onTheFly.train))
        // the mapped examples stay mapped through truncation and the split: their ids are read when trained on
        XCTAssertTrue(mapped.train.allSatisfy { if case .mapped = $0.storage { return true } else { return false } })
        // and train to the same losses
        cfg.microBatch = 2; cfg.maxSteps = 2; cfg.lr = 1e-3; cfg.out = dir.appendingPathComponent("run").path
        var losses: [[Double]] = []
        for d in [onTheFly, mapped] {
            let (_, params) = try ModelFolder.load(dir.path)
            let t = try Trainer(config: cfg, modelConfig: mc, params: params, data: d)
            losses.append(try (0..<2).map { try t.step($0).stats.loss })
        }
        XCTAssertEqual(losses[0], losses[1])
        // the manifest's tokenizer hash is the XXH64 of the folder's tokenizer.json
        let man = try JSONSerialization.jsonObject(with: Data(contentsOf: prep.appendingPathComponent("manifest.json"))) as! [String: Any]
        let tokBytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent("tokenizer.json")))
        XCTAssertEqual(man["tokenizer_xxh64"] as? String, String(format: "%016llx", XXH64.hash(tokBytes)))
        XCTAssertEqual(man["examples"] as? Int, 15)
    }

    func testFaultsOfAPreparedFolderAreNamed() throws {
        let dir = try temporaryDirectory(self)
        _ = try makeChatModelFolder(dir)
        let data = try writeRecords(dir, ChatDataTests.records)
        let prep = dir.appendingPathComponent("prepared")
        XCTAssertEqual(try prepare(dir, data, prep).status, 0)
        let fm = FileManager.default
        func variant(_ name: String, _ change: (URL) throws -> Void) throws -> URL {
            let v = dir.appendingPathComponent(name)
            try fm.copyItem(at: prep, to: v)
            try change(v)
            return v
        }
        func expectOpenError(_ v: URL, _ parts: [String], line: UInt = #line) {
            XCTAssertThrowsError(try PreparedDataset.open(v.path), line: line) { e in
                for p in parts { XCTAssertTrue("\(e)".contains(p), "\(e) lacks \(p)", line: line) }
            }
        }
        func rewrite(_ f: URL, _ body: (inout [UInt8]) -> Void) throws {
            var b = [UInt8](try Data(contentsOf: f)); body(&b); try Data(b).write(to: f)
        }
        func setManifest(_ v: URL, _ key: String, _ value: Any?) throws {
            let mf = v.appendingPathComponent("manifest.json")
            var m = try JSONSerialization.jsonObject(with: Data(contentsOf: mf)) as! [String: Any]
            m[key] = value
            try JSONSerialization.data(withJSONObject: m).write(to: mf)
        }
        // a truncated token file
        expectOpenError(try variant("short", { try rewrite($0.appendingPathComponent("tokens.bin")) { $0.removeLast(4) } }),
                        ["tokens.bin", "truncated", "manifest.json"])
        // one changed byte
        expectOpenError(try variant("flipped", { try rewrite($0.appendingPathComponent("tokens.bin")) { $0[5] ^= 1 } }),
                        ["tokens.bin", "XXH64", "tokens_xxh64"])
        // an index entry past the end (its checksum updated, so only the bounds check can catch it)
        expectOpenError(try variant("index", { v in
            let f = v.appendingPathComponent("index.bin")
            try rewrite(f) { b in for k in 0..<8 { b[32 + 8 + k] = 0xFF } }   // example 1's prompt length: 2^64 - 1
            try setManifest(v, "index_xxh64", String(format: "%016llx", XXH64.hash([UInt8](try Data(contentsOf: f)))))
        }), ["index.bin", "example 1", "prompt_length"])
        // a missing manifest field
        expectOpenError(try variant("nofield", { try setManifest($0, "tokens", nil) }), ["manifest.json", "\"tokens\""])
        // another tokenizer: refused naming both hashes and both files
        let other = dir.appendingPathComponent("other-model")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        _ = try makeChatModelFolder(other, vocabSize: 300)   // fewer merges: another tokenizer
        let theirs = try PreparedDataset.Provenance.of(modelDir: dir.path), mine = try PreparedDataset.Provenance.of(modelDir: other.path)
        XCTAssertNotEqual(theirs.tokenizerHash, mine.tokenizerHash)
        let t = try runGift(["train", "--model", other.path, "--data", prep.path, "--max-steps", "1", "--micro-batch", "2",
                             "--out", dir.appendingPathComponent("run").path])
        XCTAssertNotEqual(t.status, 0)
        for p in [theirs.tokenizerHash, mine.tokenizerHash, dir.path + "/tokenizer.json", other.path + "/tokenizer.json"] {
            XCTAssertTrue(t.stderr.contains(p), "\(t.stderr) lacks \(p)")
        }
        // the same tokenizer with another chat template
        let cfgFile = other.appendingPathComponent("tokenizer_config.json")
        try fm.removeItem(at: other.appendingPathComponent("tokenizer.json"))
        try fm.copyItem(at: dir.appendingPathComponent("tokenizer.json"), to: other.appendingPathComponent("tokenizer.json"))
        var tc = try JSONSerialization.jsonObject(with: Data(contentsOf: cfgFile)) as! [String: Any]
        tc["chat_template"] = (tc["chat_template"] as! String) + " "
        try JSONSerialization.data(withJSONObject: tc).write(to: cfgFile)
        XCTAssertThrowsError(try PreparedDataset.load(prep.path, modelDir: other.path, vocabSize: 1000)) { e in
            XCTAssertTrue("\(e)".contains("chat template") && "\(e)".contains("tokenizer_config.json"), "\(e)")
        }
        // bad input at prepare time: too long with --refuse-long, a conversation without an assistant turn
        let long = try prepare(dir, data, dir.appendingPathComponent("p2"), ["--max-length", "8", "--refuse-long"])
        XCTAssertNotEqual(long.status, 0)
        XCTAssertTrue(long.stderr.contains("data.jsonl:1") && long.stderr.contains("--max-length 8"), long.stderr)
        let bad = try writeRecords(dir, [ChatDataTests.records[0], #"{"messages": [{"role": "user", "content": "no answer"}]}"#], name: "bad.jsonl")
        let noAnswer = try prepare(dir, bad, dir.appendingPathComponent("p3"))
        XCTAssertNotEqual(noAnswer.status, 0)
        XCTAssertTrue(noAnswer.stderr.contains("bad.jsonl:2") && noAnswer.stderr.contains("assistant turn"), noAnswer.stderr)
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("p3/manifest.json").path))
    }

    /// Ranks other than 0 open a prepared set without reading its whole token file: no checksum of it, no
    /// id scan (a changed byte goes unseen there: rank 0, which verifies, catches it), and the ids of each
    /// example are checked when the rank uses it. The data fingerprint checkpoints record is the one every
    /// rank would compute, and a 2-rank job (rank 1 unverified) trains as the 1-rank one and resumes it.
    func testRanksReadOnlyTheirOwnExamples() throws {
        let dir = try temporaryDirectory(self)
        let (vocab, _, _) = try makeChatModelFolder(dir)
        let data = try writeRecords(dir, ChatDataTests.records + ChatDataTests.records)
        let prep = dir.appendingPathComponent("prepared")
        XCTAssertEqual(try prepare(dir, data, prep).status, 0)
        // an id outside the vocabulary in example 0's response, the file's size unchanged
        let bad = dir.appendingPathComponent("bad")
        try FileManager.default.copyItem(at: prep, to: bad)
        let tf = bad.appendingPathComponent("tokens.bin")
        let m = try PreparedDataset.open(prep.path)
        var b = [UInt8](try Data(contentsOf: tf))
        let at = 4 * (m.example(0).promptCount)   // example 0 starts at offset 0
        for k in 0..<4 { b[at + k] = [0xFF, 0xFF, 0xFF, 0x7F][k] }
        try Data(b).write(to: tf)
        XCTAssertThrowsError(try PreparedDataset.open(bad.path)) { XCTAssertTrue("\($0)".contains("XXH64"), "\($0)") }
        let unverified = try PreparedDataset.open(bad.path, verify: false)
        XCTAssertNil(unverified.idRange)
        var c = RunConfig(); c.model = dir.path; c.data = bad.path; c.microBatch = 2; c.maxSteps = 1
        c.validationFraction = 0; c.out = dir.appendingPathComponent("r").path; c.maxLength = 512
        let mc = try ModelConfig.parse(try Data(contentsOf: dir.appendingPathComponent("config.json")), source: "config.json")
        XCTAssertEqual(mc.vocab, vocab)
        let td = try TrainData.load(c, model: mc, verify: false)
        XCTAssertTrue(td.idsUnchecked)
        let t = try Trainer(config: c, modelConfig: mc, params: ParameterLayout(mc).initialize(seed: 1), data: td)
        let line = m.example(0).line
        XCTAssertThrowsError(try t.batches.checkIDs(Array(td.train.indices), of: td.train)) { e in
            XCTAssertTrue("\(e)".contains("line \(line)") && "\(e)".contains("2147483647"), "\(e)")
        }
        // the fingerprint of an unverified open equals the verified one's (the same ids)
        var cg = c; cg.data = prep.path
        let full = try Trainer(config: cg, modelConfig: mc, params: ParameterLayout(mc).initialize(seed: 1), data: try TrainData.load(cg, model: mc))
        let part = try Trainer(config: cg, modelConfig: mc, params: ParameterLayout(mc).initialize(seed: 1), data: try TrainData.load(cg, model: mc, verify: false))
        XCTAssertEqual(full.dataFingerprint, part.dataFingerprint)
        XCTAssertEqual(full.data.identity, part.data.identity)
        XCTAssertNotNil(full.data.identity)
        // 2 ranks (rank 1 unverified) against 1 rank, and a resume across them
        let mpirun = "/usr/bin/mpirun"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun), "mpirun not installed")
        let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1", "OPENBLAS_NUM_THREADS": "1"]
        func args(_ out: URL, micro: Int, _ extra: [String] = []) -> [String] {
            ["train", "--model", dir.path, "--data", prep.path, "--max-steps", "4", "--micro-batch", "\(micro)", "--lr", "1e-3",
             "--validation-fraction", "0", "--out", out.path] + extra
        }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let r1 = try runGift(args(one, micro: 4), env: env)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try runProcess(URL(fileURLWithPath: mpirun), ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path]
                                + args(two, micro: 2, ["--stop-at-step", "2", "--checkpoint-every", "2"]), env: env)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let r3 = try runGift(args(two, micro: 4, ["--resume", "auto"]), env: env)
        XCTAssertEqual(r3.status, 0, r3.stderr)
        let a = try stepLosses(one), z = try stepLosses(two)
        XCTAssertEqual(a.count, z.count)
        for (x, y) in zip(a, z) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x)) }
    }
}
