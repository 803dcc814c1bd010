import Foundation
import XCTest
@testable import GiftCore

/// Issue 26, point 4: every file gift reads from an untrusted folder, mutated (FuzzSupport: truncation, bit
/// flips, huge numbers, deep nesting, random insertion, duplicated and removed keys, checksums recomputed
/// so that the checks behind them are reached), must load harmlessly or fail with a GiftError whose
/// message names the file, within a time bound; never a crash, a signal or a hang.
///
/// Most cases call the loaders in this process (a crash fails the whole run, and a signal handler first
/// prints the case); a few run the `gift` binary and check exit status 1 with one error line.
///
/// The seed corpus: the golden llada-tiny folder and the golden safetensors files, a `gift init --preset
/// tiny` folder, a sharded bf16 folder, PEFT adapters, a checkpoint (full and LoRA), a prepared data set,
/// the chat-template fixtures, a hand-written SentencePiece-style tokenizer.json, a hand-written Qwen2 slow
/// tokenizer folder (vocab.json + merges.txt + tokenizer_config.json), and (with GIFT_PYTHON's
/// `tokenizers`) a trained byte-level tokenizer.json with LLaDA's tokenizer_config.json.
///
/// GIFT_FUZZ_CASES=N: about N in-process cases over all the targets (default 3000); the CLI cases scale
/// with it. GIFT_FUZZ_ONLY=target:case replays one case (as each failure message says).
final class FuzzTests: XCTestCase {
    static let seed: UInt64 = 0x26_0004
    static let env = ProcessInfo.processInfo.environment
    static var totalCases: Int { env["GIFT_FUZZ_CASES"].flatMap { Int($0) } ?? 3000 }
    /// Seconds a case may take (a case over it fails); a case still running after `hangSeconds` is a hang.
    static let caseSeconds = env["GIFT_FUZZ_CASE_SECONDS"].flatMap { Double($0) } ?? 5
    static let hangSeconds = 30.0
    static var only: (String, Int)? {
        guard let s = env["GIFT_FUZZ_ONLY"], let colon = s.lastIndex(of: ":"), let k = Int(s[s.index(after: colon)...]) else { return nil }
        return (String(s[..<colon]), k)
    }
    /// Weights of all in-process targets together (each target's share of `totalCases`).
    static let totalWeight = 119

    /// One file (or a few related files) of a folder to mutate, and what loads it.
    struct Target {
        /// Short name, used for replay: GIFT_FUZZ_ONLY=id:case.
        var id: String
        /// The folder the loader is given.
        var dir: URL
        /// Files the mutator may change (relative to `dir`), restored after each case.
        var files: [String]
        /// Where the seed came from, for messages.
        var seed: String
        /// Share of the in-process cases (out of `totalWeight`).
        var weight: Int
        var mutate: (inout FuzzRNG) -> FuzzCase
        var load: (String) throws -> Void
    }

    /// Errors of several loaders run on the same case.
    struct Several: Error { var errors: [Error] }

    /// Runs each loader even when an earlier one threw; throws what they threw.
    static func all(_ loaders: [() throws -> Void]) throws {
        var errors: [Error] = []
        for l in loaders { do { try l() } catch { errors.append(error) } }
        if !errors.isEmpty { throw Several(errors: errors) }
    }

    /// Phrases of Foundation's errors, which name no file and no place.
    static let foundationPhrases = ["correct format", "NSCocoaErrorDomain", "Error Domain="]

    /// 1 to 3 stacked mutations of one file (picked from `files`).
    static func stacked(_ pristine: [String: [UInt8]], _ m: @escaping (inout [UInt8], inout FuzzRNG) -> String) -> (inout FuzzRNG) -> FuzzCase {
        let names = pristine.keys.sorted()
        return { r in
            let f = r.pick(names)
            var b = pristine[f]!
            let n = r.chance(0.75) ? 1 : r.chance(0.8) ? 2 : 3
            var steps: [String] = []
            for _ in 0..<n { steps.append("\(f): " + m(&b, &r)) }
            return FuzzCase(edit: [f: b], steps: steps)
        }
    }

    static func read(_ dir: URL, _ files: [String]) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for f in files { out[f] = [UInt8](try Data(contentsOf: dir.appendingPathComponent(f))) }
        return out
    }

    static func write(_ dir: URL, _ edit: FuzzEdit) throws {
        for (f, b) in edit {
            let u = dir.appendingPathComponent(f)
            if let b { try Data(b).write(to: u) } else { try? FileManager.default.removeItem(at: u) }
        }
    }

    static func caseCount(_ weight: Int) -> Int { max(4, totalCases * weight / totalWeight) }

    /// Runs `t`'s cases; returns a one-line summary.
    @discardableResult
    func fuzz(_ t: Target, cases: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let n = cases ?? Self.caseCount(t.weight)
        let pristine = try Self.read(t.dir, t.files)
        let only = Self.only
        if let only, only.0 != t.id { return "" }
        let worker = FuzzWorker()
        defer { worker.stop() }
        FuzzCrashReport.install()
        var accepted = 0, refused = 0, failures = 0, slowest = 0.0, slowestCase = -1
        var h = FNV1a(); h.add(t.id)
        let targetKey = h.value
        let range = only.map { $0.1..<($0.1 + 1) } ?? 0..<n
        for k in range {
            var r = FuzzRNG(Self.seed, targetKey, UInt64(k))
            let c = t.mutate(&r)
            try Self.write(t.dir, c.edit)
            let what = "GIFT_FUZZ_ONLY=\(t.id):\(k) (seed \(t.seed)): \(c.description)"
            FuzzCrashReport.set(what)
            let start = Date()
            let outcome = worker.run(timeout: Self.hangSeconds) { try t.load(t.dir.path) }
            let secs = Date().timeIntervalSince(start)
            FuzzCrashReport.clear()
            if case .hung = outcome {
                XCTFail("\(what): still running after \(Self.hangSeconds) s (a hang); fuzzing of \(t.id) stopped", file: file, line: line)
                return "\(t.id): hung"
            }
            try Self.write(t.dir, pristine.mapValues { Optional($0) })
            var problems: [String] = []
            if secs > Self.caseSeconds { problems.append(String(format: "took %.2f s (limit %.0f s)", secs, Self.caseSeconds)) }
            if secs > slowest { slowest = secs; slowestCase = k }
            switch outcome {
            case .returned: accepted += 1
            case .threw(let e):
                refused += 1
                let errors = (e as? Several)?.errors ?? [e]
                for e in errors {
                    guard let g = e as? GiftError else {
                        problems.append("threw \(type(of: e)), not a GiftError: \(e)")
                        continue
                    }
                    let m = g.message
                    if m.isEmpty { problems.append("an empty error message") }
                    if let p = Self.foundationPhrases.first(where: { m.contains($0) }) {
                        problems.append("an unclear error (Foundation's \"\(p)\"): \(m.prefix(500))")
                    }
                    let names = [t.dir.path] + t.files
                    if !names.contains(where: { m.contains($0) }) {
                        problems.append("an error naming no file of the folder: \(m.prefix(500))")
                    }
                }
            case .hung: break
            }
            if !problems.isEmpty {
                failures += 1
                XCTFail("\(what): \(problems.joined(separator: "; "))", file: file, line: line)
                if failures >= 10 { XCTFail("\(t.id): 10 failing cases, the rest skipped", file: file, line: line); break }
            }
        }
        let s = String(format: "fuzz %@: %d cases, %d loaded, %d refused, slowest %.3f s (case %d)",
                       t.id, range.count, accepted, refused, slowest, slowestCase)
        print(s)
        return s
    }

    // MARK: seeds

    static let conversation: [StrictJSON] = [
        .object(["role": .string("system"), "content": .string("You are helpful.")]),
        .object(["role": .string("user"), "content": .string("What is 2 + 3? Ünïcödé 🙂 x = f(y)\n\tz")]),
        .object(["role": .string("assistant"), "content": .string("It is 5.")]),
        .object(["role": .string("user"), "content": .string("And 12 times 7?")]),
    ]
    static let texts = ["The quick brown fox jumps over the lazy dog.", "What is 2 + 3? It is 5.",
                        "Ünïcödé 日本語 🙂 code: x = f(y)\n\tz 12345", "<s>a<|user|>b</s>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", ""]

    /// A SentencePiece-style tokenizer.json using most components gift implements (no Python needed).
    static let handTokenizer = #"""
    {"version":"1.0","truncation":null,"padding":null,
     "added_tokens":[{"id":0,"content":"<unk>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
      {"id":1,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
      {"id":2,"content":"</s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
      {"id":20,"content":"<|user|>","single_word":true,"lstrip":true,"rstrip":true,"normalized":true,"special":false}],
     "normalizer":{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Prepend","prepend":"▁"},
      {"type":"Replace","pattern":{"String":" "},"content":"▁"},{"type":"Strip","strip_left":false,"strip_right":true}]},
     "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\d+|[^\\s\\d]+|\\s+"},"behavior":"Isolated","invert":false},
      {"type":"Digits","individual_digits":true},{"type":"Punctuation","behavior":"Isolated"},
      {"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}]},
     "post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false},
      {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
      "pair":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],
      "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}]},
     "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},
      {"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
     "model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,
      "fuse_unk":true,"byte_fallback":true,"ignore_merges":false,
      "vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0x41>":3,"<0xC3>":4,"<0xBC>":5,"▁":6,"a":7,"b":8,"ab":9,"▁a":10,"▁ab":11,"1":12,"2":13,
       "c":14,".":15,"?":16,"T":17,"h":18,"e":19,"th":21,"he":22,"▁the":23,"▁t":24,"t":25},
      "merges":["a b","▁ a","▁a b",["t","h"],"h e","▁ t","▁t he"]}}
    """#

    static let handTokenizerConfig = #"""
    {"bos_token":"<s>","eos_token":{"content":"</s>","__type":"AddedToken"},"pad_token":null,"unk_token":"<unk>",
     "chat_template":"{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>> {{ m['content'] | trim }}\n{% elif m['role'] == 'user' %}<|user|> {{ m['content'] }}\n{% else %}{{ m['content'] ~ eos_token }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"}
    """#

    /// A tiny model folder by `gift init`.
    func initFolder(_ dir: URL) throws {
        let r = try runGift(["init", "--preset", "tiny", "--out", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// A PEFT adapter for the tiny model: q and v as a list, or with ff_out (written as PEFT's regex).
    func makeAdapter(_ dir: URL, targets: [LoRATarget]) throws {
        var l = LoRAConfig()
        l.r = 4; l.alpha = 8; l.targets = targets
        let layout = try LoRALayout(try ModelConfig.preset("tiny"), l)
        let w = layout.initialize(seed: 3)
        for i in stride(from: 0, to: layout.count, by: 7) { w[i] = Float(i % 13) * 0.01 }
        try PEFTAdapter.save(dir.path, layout: layout, weights: w.pointer, baseModel: "tiny")
    }

    /// A run folder with one checkpoint (step 4) of the tiny model, or of LoRA adapters on it; returns the
    /// checkpoint folder.
    func makeCheckpoint(_ run: URL, lora: Bool) throws -> URL {
        let mc = try ModelConfig.preset("tiny")
        let layout = ParameterLayout(mc)
        var opts = CheckpointOptions()
        opts.async = false; opts.workers = 0
        let w = CheckpointWriter(runDir: run.path, comm: SingleProcess(), options: opts, layout: layout,
                                 runConfig: ["model": "tiny", "init_seed": 0, "micro_batch": 2, "grad_accum": 1, "lr": 0.001],
                                 dataFingerprint: 0x1234)
        var n = layout.count
        var buffer = layout.initialize(seed: 5)
        if lora {
            var l = LoRAConfig()
            l.r = 2; l.alpha = 4; l.targets = [.q, .ffOut]
            let ll = try LoRALayout(mc, l)
            let base = layout.initialize(seed: 0)
            w.trainable = ll.table
            w.lora = LoRAIdentity(config: l, baseFingerprint: LoRAIdentity.fingerprint(base.pointer, count: base.count), baseModel: "tiny")
            n = ll.count
            buffer = ll.initialize(seed: 5)
        }
        let m = FloatBuffer(randomFloats(n, seed: 1, scale: 0.01)), v = FloatBuffer(randomFloats(n, seed: 2, scale: 1e-4))
        try w.save(state: TrainState(step: 4, adamStep: 4, consecutiveBadSteps: 0), epoch: 0.25, examplesSeen: 8,
                   params: buffer.pointer, m: m.pointer, v: v.pointer, momentShard: 0..<n)
        try w.finish()
        return run.appendingPathComponent("checkpoints/" + Checkpoint.folderName(step: 4))
    }

    /// A prepared set of 12 examples of ids below 64, made with no tokenizer (provenance "none").
    func makePrepared(_ dir: URL) throws {
        let ex = (0..<12).map { i in
            Example(prompt: (0..<(3 + i % 4)).map { Int32(($0 * 7 + i) % 60) }, response: (0..<(1 + i % 3)).map { Int32(($0 + i) % 60) }, line: i + 1)
        }
        let prov = PreparedDataset.Provenance(tokenizerHash: "none", templateHash: "none", tokenizerFile: "none", templateFile: "")
        try PreparedDataset.write(ex, to: dir.path, provenance: prov, source: "fuzz.jsonl", options: ["max_length": 0],
                                  report: DatasetReport(examples: ex.count))
    }

    /// The LLaDA-layout chat folder trained by Python `tokenizers` (nil, with the reason printed, without it).
    func pythonChatFolder(_ dir: URL) throws -> URL? {
        do {
            _ = try makeChatModelFolder(dir)
            return dir
        } catch is XCTSkip {
            print("fuzz: the byte-level tokenizer.json seed is skipped: python tokenizers missing (set GIFT_PYTHON; launch/test.sh installs it)")
            return nil
        }
    }

    // MARK: loaders

    static func loadModelFolder(_ dir: String) throws {
        try all([
            { _ = try ModelFolder.load(dir) },
            { _ = try ModelFolder.loadRange(dir, range: 1000..<5000) },
            { _ = try ModelCompanions.weightFormat(of: dir) },
        ])
    }

    static func loadTokenizer(_ dir: String) throws {
        let t = try HFTokenizer(path: dir + "/tokenizer.json")
        for s in texts {
            let ids = try t.encode(s)
            _ = try t.encode(s, addSpecialTokens: false)
            _ = try t.decode(ids)
            _ = try t.decode(ids, skipSpecialTokens: true)
        }
        _ = try t.decode([0, 1, 2, 3, 4, 5, 300, 100_000, -1, Int32.max, Int32.min])
    }

    static func loadTextModel(_ dir: String) throws {
        let tm = try TextModel.load(dir)
        guard let tpl = tm.template else { return }
        for gen in [true, false] {
            let s = try tpl.render(messages: conversation, addGenerationPrompt: gen, variables: tm.variables)
            _ = try tm.tokenizer.encode(s, addSpecialTokens: false)
        }
    }

    // MARK: in-process targets

    func testModelFolders() throws {
        let root = try temporaryDirectory(self)
        let fm = FileManager.default
        let golden = root.appendingPathComponent("golden-llada-tiny")
        try fm.copyItem(at: goldenDir.appendingPathComponent("llada-tiny"), to: golden)
        let initDir = root.appendingPathComponent("init-tiny")
        try initFolder(initDir)
        let sharded = root.appendingPathComponent("sharded")
        let mc = try ModelConfig.preset("tiny")
        try ModelFolder.save(sharded.path, config: mc, parameters: ParameterLayout(mc).initialize(seed: 9), dtype: .BF16, maxShardBytes: 60_000)
        let shards = ModelFolder.existingShards(sharded.path).sorted()
        XCTAssertGreaterThan(shards.count, 2)
        for d in [golden, initDir, sharded] { XCTAssertNoThrow(try Self.loadModelFolder(d.path), d.path) }

        func target(_ id: String, _ dir: URL, _ files: [String], seed: String, weight: Int,
                    _ m: @escaping (inout [UInt8], inout FuzzRNG) -> String) throws -> Target {
            Target(id: id, dir: dir, files: files, seed: seed, weight: weight,
                   mutate: Self.stacked(try Self.read(dir, files), m), load: Self.loadModelFolder)
        }
        let g = "Tests/GiftCoreTests/Fixtures/golden/llada-tiny"
        try fuzz(target("golden-config", golden, ["config.json"], seed: g + "/config.json", weight: 7, FuzzMutator.jsonFile))
        try fuzz(target("golden-weights", golden, ["model.safetensors"], seed: g + "/model.safetensors", weight: 9, FuzzMutator.safetensors))
        try fuzz(target("init-config", initDir, ["config.json"], seed: "gift init --preset tiny: config.json", weight: 3, FuzzMutator.jsonFile))
        try fuzz(target("init-weights", initDir, ["model.safetensors"], seed: "gift init --preset tiny: model.safetensors", weight: 3, FuzzMutator.safetensors))
        try fuzz(target("sharded-index", sharded, [ModelFolder.indexFile], seed: "ModelFolder.save(bf16, 60 kB shards): index", weight: 7, FuzzMutator.jsonFile))
        try fuzz(target("sharded-shards", sharded, shards, seed: "ModelFolder.save(bf16, 60 kB shards): shards", weight: 4, FuzzMutator.safetensors))
    }

    func testSafetensorsFixtures() throws {
        let root = try temporaryDirectory(self)
        let names = try FileManager.default.contentsOfDirectory(atPath: goldenDir.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertFalse(names.isEmpty)
        for n in names { try FileManager.default.copyItem(at: goldenDir.appendingPathComponent(n), to: root.appendingPathComponent(n)) }
        let load: (String) throws -> Void = { dir in
            try Self.all(names.map { n -> () throws -> Void in {
                let f = try SafetensorsFile.read(path: dir + "/" + n)
                for t in f.names where [SafetensorsDType.F32, .BF16, .F16].contains(f.tensors[t]!.dtype) { _ = try f.floats(t) }
                for t in f.names { _ = try f.bytes(t) }
                _ = try SafetensorsHeader(path: dir + "/" + n)
            } })
        }
        XCTAssertNoThrow(try load(root.path))
        try fuzz(Target(id: "golden-safetensors", dir: root, files: names, seed: "Tests/GiftCoreTests/Fixtures/golden/*.safetensors",
                        weight: 6, mutate: Self.stacked(try Self.read(root, names), FuzzMutator.safetensors), load: load))
    }

    func testPEFTAdapters() throws {
        let root = try temporaryDirectory(self)
        let base = root.appendingPathComponent("base")
        try initFolder(base)
        let tiny = try ModelConfig.preset("tiny")
        for (name, targets) in [("adapter-qv", [LoRATarget.q, .v]), ("adapter-ffout", [LoRATarget.k, .ffOut, .upProj])] {
            let dir = root.appendingPathComponent(name)
            try makeAdapter(dir, targets: targets)
            let load: (String) throws -> Void = { d in
                try Self.all([{ _ = try PEFTAdapter.load(d, model: tiny) }, { _ = try PEFTAdapter.merged(base: base.path, adapter: d) }])
            }
            XCTAssertNoThrow(try load(dir.path))
            try fuzz(Target(id: name + "-config", dir: dir, files: [PEFTAdapter.configFile], seed: "PEFTAdapter.save (\(name)): adapter_config.json",
                            weight: 4, mutate: Self.stacked(try Self.read(dir, [PEFTAdapter.configFile]), FuzzMutator.jsonFile), load: load))
            try fuzz(Target(id: name + "-weights", dir: dir, files: [PEFTAdapter.weightsFile], seed: "PEFTAdapter.save (\(name)): adapter_model.safetensors",
                            weight: 2, mutate: Self.stacked(try Self.read(dir, [PEFTAdapter.weightsFile]), FuzzMutator.safetensors), load: load))
        }
    }

    func testCheckpoints() throws {
        let root = try temporaryDirectory(self)
        let n = ParameterLayout(try ModelConfig.preset("tiny")).count
        let p = FloatBuffer(count: n), m = FloatBuffer(count: n), v = FloatBuffer(count: n)
        for lora in [false, true] {
            let ck = try makeCheckpoint(root.appendingPathComponent(lora ? "lora-run" : "run"), lora: lora)
            let shard = Checkpoint.shardName(rank: 0, of: 1)
            let load: (String) throws -> Void = { d in
                try Self.all([
                    { _ = try Manifest.read(d + "/manifest.json") },
                    { _ = try ShardFile.read(path: d + "/" + shard) },
                    { _ = try Resume.load(d, params: p.pointer, m: m.pointer, v: v.pointer, within: Resume.Within(params: 0..<n, moments: 0..<n)) },
                    { _ = try Resume.loadModel(d) },
                    { if lora { _ = try Resume.readAdapters(d) } },
                ])
            }
            XCTAssertNoThrow(try load(ck.path))
            let id = lora ? "lora-checkpoint" : "checkpoint"
            try fuzz(Target(id: id + "-manifest", dir: ck, files: ["manifest.json"], seed: "CheckpointWriter (tiny\(lora ? ", LoRA" : "")): manifest.json",
                            weight: lora ? 4 : 6, mutate: Self.stacked(try Self.read(ck, ["manifest.json"]), FuzzMutator.manifest), load: load))
            try fuzz(Target(id: id + "-shard", dir: ck, files: [shard], seed: "CheckpointWriter (tiny\(lora ? ", LoRA" : "")): \(shard)",
                            weight: lora ? 3 : 6, mutate: Self.stacked(try Self.read(ck, [shard]), FuzzMutator.shard), load: load))
        }
    }

    func testPreparedSets() throws {
        let root = try temporaryDirectory(self)
        let prep = root.appendingPathComponent("prepared"), model = root.appendingPathComponent("model")
        try makePrepared(prep)
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let load: (String) throws -> Void = { d in
            try Self.all([
                { let s = try PreparedDataset.open(d); for i in 0..<s.count { _ = s.example(i).prompt + s.example(i).response } },
                { let s = try PreparedDataset.open(d, verify: false); for i in 0..<s.count { _ = s.example(i).prompt + s.example(i).response } },
                { let (ex, _, _) = try PreparedDataset.load(d, modelDir: model.path, vocabSize: 64); for e in ex { _ = e.prompt + e.response } },
            ])
        }
        XCTAssertNoThrow(try load(prep.path))
        let files = [PreparedDataset.manifestFile, PreparedDataset.indexFile, PreparedDataset.tokensFile]
        let pristine = try Self.read(prep, files)
        let manifestText = String(decoding: pristine[PreparedDataset.manifestFile]!, as: UTF8.self)
        /// The manifest with `field`'s checksum set to that of `bytes`.
        func resealed(_ field: String, _ bytes: [UInt8]) -> [UInt8] {
            let old = try! JSONSerialization.jsonObject(with: Data(pristine[PreparedDataset.manifestFile]!)) as! [String: Any]
            let hex = String(format: "%016llx", XXH64.hash(bytes))
            return Array(manifestText.replacingOccurrences(of: old[field] as! String, with: hex).utf8)
        }
        try fuzz(Target(id: "prepared-manifest", dir: prep, files: files, seed: "PreparedDataset.write: manifest.json", weight: 5,
                        mutate: Self.stacked([PreparedDataset.manifestFile: pristine[PreparedDataset.manifestFile]!], FuzzMutator.jsonFile), load: load))
        for (file, field, width) in [(PreparedDataset.indexFile, "index_xxh64", 8), (PreparedDataset.tokensFile, "tokens_xxh64", 4)] {
            let mutate: (inout FuzzRNG) -> FuzzCase = { r in
                var b = pristine[file]!
                var steps: [String] = []
                for _ in 0..<(r.chance(0.75) ? 1 : 2) {
                    if r.chance(0.7), b.count >= width {
                        let at = width * r.below(b.count / width)
                        var v = FuzzMutator.readLE(b, at, width)
                        let cands: [UInt64] = width == 8 ? [0, 1, 2, 27, 28, 29, 60, 1 << 31, 1 << 32, 1 << 62, (1 << 63) - 1, 1 << 63, .max, .max - 3, v &+ 1, v &- 1, v &* 2]
                            : [0, 63, 64, 65, 1 << 31 - 1, 0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF, v &+ 1]
                        let old = v
                        v = r.pick(cands)
                        FuzzMutator.writeLE(&b, at, width, v)
                        steps.append("\(file): \(width)-byte field at \(at): \(old) -> \(v)")
                    } else {
                        steps.append("\(file): " + FuzzMutator.bytes(&b, &r))
                    }
                }
                var edit: FuzzEdit = [file: b]
                if r.chance(0.9) {
                    edit[PreparedDataset.manifestFile] = resealed(field, b)
                    steps.append("\(field) recomputed")
                }
                return FuzzCase(edit: edit, steps: steps)
            }
            try fuzz(Target(id: "prepared-" + (file as NSString).deletingPathExtension, dir: prep, files: files,
                            seed: "PreparedDataset.write: \(file)", weight: 4, mutate: mutate, load: load))
        }
    }

    func testTokenizers() throws {
        let root = try temporaryDirectory(self)
        var seeds: [(String, URL, String)] = []
        let hand = root.appendingPathComponent("hand")
        try FileManager.default.createDirectory(at: hand, withIntermediateDirectories: true)
        try Self.handTokenizer.write(to: hand.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        try Self.handTokenizerConfig.write(to: hand.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        seeds.append(("hand", hand, "FuzzTests.handTokenizer (SentencePiece-style)"))
        let py = root.appendingPathComponent("python")
        try FileManager.default.createDirectory(at: py, withIntermediateDirectories: true)
        if let d = try pythonChatFolder(py) { seeds.append(("bytelevel", d, "makeChatModelFolder (tokenizers' byte-level BPE, LLaDA's template)")) }
        for (id, dir, seed) in seeds {
            XCTAssertNoThrow(try Self.loadTokenizer(dir.path), id)
            XCTAssertNoThrow(try Self.loadTextModel(dir.path), id)
            let both: (String) throws -> Void = { d in try Self.all([{ try Self.loadTokenizer(d) }, { try Self.loadTextModel(d) }]) }
            try fuzz(Target(id: id + "-tokenizer", dir: dir, files: ["tokenizer.json"], seed: seed + ": tokenizer.json", weight: 6,
                            mutate: Self.stacked(try Self.read(dir, ["tokenizer.json"]), FuzzMutator.jsonFile), load: both))
            // tokenizer_config.json: its chat template changed as a template, or the file as JSON
            let cfgBytes = try Self.read(dir, ["tokenizer_config.json"])["tokenizer_config.json"]!
            let cfg = try JSONSerialization.jsonObject(with: Data(cfgBytes)) as! [String: Any]
            let template = cfg["chat_template"] as! String
            let mutate: (inout FuzzRNG) -> FuzzCase = { r in
                if r.chance(0.5) { return Self.stacked(["tokenizer_config.json": cfgBytes], FuzzMutator.jsonFile)(&r) }
                var s = Array(template.unicodeScalars)
                var steps: [String] = []
                for _ in 0..<(r.chance(0.7) ? 1 : r.chance(0.7) ? 2 : 4) { steps.append("chat_template: " + FuzzMutator.template(&s, &r)) }
                var o = cfg
                var text = ""
                text.unicodeScalars.append(contentsOf: s)
                o["chat_template"] = text
                let b = [UInt8]((try? JSONSerialization.data(withJSONObject: o)) ?? Data())
                return FuzzCase(edit: ["tokenizer_config.json": b], steps: steps)
            }
            try fuzz(Target(id: id + "-tokenizer-config", dir: dir, files: ["tokenizer_config.json"], seed: seed + ": tokenizer_config.json",
                            weight: 5, mutate: mutate, load: Self.loadTextModel))
        }
    }

    /// Qwen2/Dream slow tokenizer files (SlowBPEFiles): vocab.json and tokenizer_config.json changed as
    /// JSON, merges.txt as bytes.
    func testSlowTokenizerFiles() throws {
        let dir = try temporaryDirectory(self)
        try SlowTokenizerTests.writeFolder(dir)
        let load: (String) throws -> Void = { d in
            let t = try TextModel.load(d).tokenizer
            for s in Self.texts { _ = try t.decode(try t.encode(s), skipSpecialTokens: true) }
            _ = try t.decode([0, 1, 2, 3, 4, 5, 6, 300, -1, Int32.max, Int32.min])
        }
        XCTAssertNoThrow(try load(dir.path))
        let files = ["vocab.json", "merges.txt", "tokenizer_config.json"]
        let pristine = try Self.read(dir, files)
        let mutate: (inout FuzzRNG) -> FuzzCase = { r in
            let f = r.pick(files)
            if f == "merges.txt" { return Self.stacked([f: pristine[f]!], { (b: inout [UInt8], r: inout FuzzRNG) in FuzzMutator.bytes(&b, &r) })(&r) }
            return Self.stacked([f: pristine[f]!], FuzzMutator.jsonFile)(&r)
        }
        try fuzz(Target(id: "slow-tokenizer", dir: dir, files: files, seed: "SlowTokenizerTests' hand-made Qwen2 folder",
                        weight: 4, mutate: mutate, load: load))
    }

    func testChatTemplates() throws {
        let src = goldenDir.deletingLastPathComponent().appendingPathComponent("chat-templates")
        let names = try FileManager.default.contentsOfDirectory(atPath: src.path).filter { $0.hasSuffix(".jinja") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 8)
        let root = try temporaryDirectory(self)
        for n in names { try FileManager.default.copyItem(at: src.appendingPathComponent(n), to: root.appendingPathComponent(n)) }
        let vars: [String: StrictJSON] = ["bos_token": .string("<s>"), "eos_token": .string("</s>")]
        let load: (String) throws -> Void = { dir in
            try Self.all(names.map { n -> () throws -> Void in {
                let path = dir + "/" + n
                let t = try ChatTemplate(source: String(decoding: try TextModel.readBytes(path), as: UTF8.self), name: path)
                for gen in [true, false] { _ = try t.render(messages: Self.conversation, addGenerationPrompt: gen, variables: vars) }
            } })
        }
        // the fixtures themselves render (some refuse a system message by raise_exception: that is a GiftError too)
        do { try load(root.path) } catch let e as Several { XCTAssertTrue(e.errors.allSatisfy { $0 is GiftError }, "\(e.errors)") }
        let pristine = try Self.read(root, names)
        let mutate: (inout FuzzRNG) -> FuzzCase = { r in
            if r.chance(0.15) { return Self.stacked(pristine, { b, r in FuzzMutator.bytes(&b, &r) })(&r) }
            let f = r.pick(names)
            var s = Array(String(decoding: pristine[f]!, as: UTF8.self).unicodeScalars)
            var steps: [String] = []
            for _ in 0..<(r.chance(0.6) ? 1 : r.chance(0.6) ? 2 : 5) { steps.append("\(f): " + FuzzMutator.template(&s, &r)) }
            var text = ""
            text.unicodeScalars.append(contentsOf: s)
            return FuzzCase(edit: [f: Array(text.utf8)], steps: steps)
        }
        try fuzz(Target(id: "chat-templates", dir: root, files: names, seed: "Tests/GiftCoreTests/Fixtures/chat-templates/*.jinja",
                        weight: 10, mutate: mutate, load: load))
    }

    // MARK: through the CLI

    typealias Outcome = GuardedRun
    func gift(_ args: [String], stdin: String? = nil) throws -> GuardedRun { try runGiftGuarded(args, stdin: stdin) }

    /// The CLI on mutated folders: exit status 0 (harmless) or 1 with one error line, never a signal, in
    /// a few seconds. Counts: `totalCases / 100` cases per command (30 at the default).
    func testCLIRefusesCleanly() throws {
        let root = try temporaryDirectory(self)
        let base = root.appendingPathComponent("base"), adapter = root.appendingPathComponent("adapter")
        try initFolder(base)
        try makeAdapter(adapter, targets: [.q, .v])
        let ck = try makeCheckpoint(root.appendingPathComponent("run"), lora: false)
        let tok = root.appendingPathComponent("tok")
        try FileManager.default.createDirectory(at: tok, withIntermediateDirectories: true)
        if try pythonChatFolder(tok) == nil {
            try Self.handTokenizer.write(to: tok.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
            try Self.handTokenizerConfig.write(to: tok.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        }
        let conversation = #"[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello 12 ü"}]"# + "\n"
        var outIndex = 0
        func out() -> String { outIndex += 1; return root.appendingPathComponent("out-\(outIndex)").path }
        let shard = Checkpoint.shardName(rank: 0, of: 1)
        let groups: [(id: String, dir: URL, files: [String: (inout [UInt8], inout FuzzRNG) -> String], run: () throws -> Outcome)] = [
            ("cli-export-adapter-base", base, ["config.json": FuzzMutator.jsonFile, "model.safetensors": FuzzMutator.safetensors],
             { try self.gift(["export", "--model", base.path, "--adapter", adapter.path, "--out", out()]) }),
            ("cli-export-adapter", adapter, [PEFTAdapter.configFile: FuzzMutator.jsonFile, PEFTAdapter.weightsFile: FuzzMutator.safetensors],
             { try self.gift(["export", "--model", base.path, "--adapter", adapter.path, "--out", out()]) }),
            ("cli-export-checkpoint", ck, ["manifest.json": FuzzMutator.manifest, shard: FuzzMutator.shard],
             { try self.gift(["export", ck.path, "--out", out()]) }),
            ("cli-tokenize-chat", tok, ["tokenizer.json": FuzzMutator.jsonFile, "tokenizer_config.json": FuzzMutator.jsonFile],
             { try self.gift(["tokenize", "--model", tok.path, "--chat"], stdin: conversation) }),
        ]
        let perGroup = max(2, Self.totalCases / 100 / groups.count)
        let only = Self.only
        for g in groups {
            if let only, only.0 != g.id { continue }
            let pristine = try Self.read(g.dir, Array(g.files.keys))
            // the unmutated folder works
            let ok = try g.run()
            XCTAssertEqual(ok.status, 0, "\(g.id) on the seed: \(ok.stderr)")
            var h = FNV1a(); h.add(g.id)
            var refused = 0
            let range = only.map { $0.1..<($0.1 + 1) } ?? 0..<perGroup
            for k in range {
                var r = FuzzRNG(Self.seed, h.value, UInt64(k))
                let f = r.pick(g.files.keys.sorted())
                var b = pristine[f]!
                let d = g.files[f]!(&b, &r)
                try Self.write(g.dir, [f: b])
                let what = "GIFT_FUZZ_ONLY=\(g.id):\(k) (seed \(g.dir.lastPathComponent)/\(f)): \(d)"
                let o = try g.run()
                try Self.write(g.dir, pristine.mapValues { Optional($0) })
                XCTAssertFalse(o.signaled, "\(what): killed by signal \(o.status): \(o.stderr.suffix(1000))")
                XCTAssertTrue(o.status == 0 || o.status == 1, "\(what): exit status \(o.status): \(o.stderr.suffix(1000))")
                XCTAssertLessThan(o.seconds, UntrustedInputTests.timeLimit, "\(what): took \(o.seconds) s")
                if o.status == 1 {
                    refused += 1
                    let lines = o.stderr.split(separator: "\n", omittingEmptySubsequences: true)
                    XCTAssertEqual(lines.count, 1, "\(what): expected a one-line error, got: \(o.stderr.prefix(2000))")
                    XCTAssertTrue(o.stderr.hasPrefix("Error: "), "\(what): \(o.stderr.prefix(500))")
                    if let p = Self.foundationPhrases.first(where: { o.stderr.contains($0) }) {
                        XCTFail("\(what): an unclear error (Foundation's \"\(p)\"): \(o.stderr.prefix(500))")
                    }
                }
            }
            print("fuzz \(g.id): \(range.count) cases through the CLI, \(refused) refused with exit status 1")
        }
    }
}
