import Foundation
import XCTest
@testable import GiftCore

/// The Dream family (issue 25): Qwen2 blocks with q/k/v biases and shifted predictions (row i−1
/// predicts token i, row 0 token 0), through the same Transformer as LLaDA.
final class DreamTests: XCTestCase {
    override func tearDown() {
        resetBackend()
        super.tearDown()
    }

    /// dream-tiny with std-0.2 weights and random (non-zero) biases: every path matters.
    static func tinyDream(seed: UInt64 = 5) throws -> (ModelConfig, FloatBuffer) {
        let c = try ModelConfig.preset("dream-tiny")
        let layout = ParameterLayout(c)
        let p = layout.initialize(seed: seed, std: 0.2)
        for t in layout.tensors where t.isBias {
            let r = CounterRNG(seed, 0xB1A5, UInt64(t.offset))
            for j in 0..<t.count { p[t.offset + j] = Float(0.2 * r.normal(UInt64(j))) }
        }
        return (c, p)
    }

    // MARK: the family seam

    func testLayoutNamesShapesAndConfigRoundTrip() throws {
        let c = try ModelConfig.preset("dream-tiny")
        let l = ParameterLayout(c)
        let names = l.tensors.map(\.name)
        XCTAssertEqual(names.first, "model.embed_tokens.weight")
        XCTAssertEqual(Array(names.suffix(2)), ["model.norm.weight", "lm_head.weight"])
        XCTAssertEqual(Array(names[1...12]), [
            "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
            "model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias",
            "model.layers.0.self_attn.v_proj.bias", "model.layers.0.self_attn.o_proj.weight",
            "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"])
        XCTAssertEqual(l.tensor(named: "model.layers.1.self_attn.k_proj.bias")?.shape, [c.kvDim])
        XCTAssertEqual(l.tensor(named: "model.layers.1.self_attn.q_proj.bias")?.shape, [c.dModel])
        let b = l.blocks[0]
        XCTAssertEqual(b.qkvBias, b.v + c.kvDim * c.dModel, "the biases follow v_proj's weight")
        XCTAssertEqual(b.attnOut, b.qkvBias! + c.dModel + 2 * c.kvDim)
        // norms get 1, biases 0, neither decays
        let p = l.initialize(seed: 1)
        for t in l.tensors {
            if t.isNorm { XCTAssertEqual(p[t.offset], 1, t.name) }
            if t.isBias { XCTAssertEqual(p[t.offset], 0, t.name) }
            XCTAssertEqual(t.decays, !t.isNorm && !t.isBias, t.name)
        }
        XCTAssertEqual(l.tensors.filter(\.isNorm).count, 2 * c.nLayers + 1)
        XCTAssertEqual(l.tensors.filter(\.isBias).count, 3 * c.nLayers)
        // config.json: Dream's own keys, read back to the same config; the family from model_type
        let o = c.jsonObject()
        XCTAssertEqual(o["model_type"] as? String, "Dream")
        XCTAssertEqual(o["architectures"] as? [String], ["DreamModel"])
        XCTAssertEqual(o["hidden_size"] as? Int, 64)
        XCTAssertEqual(o["num_key_value_heads"] as? Int, 2)
        XCTAssertNil(o["d_model"])
        XCTAssertEqual(try ModelConfig.parse(c.jsonData(), source: "t"), c)
        var lower = o; lower["model_type"] = "dream"
        XCTAssertEqual(try ModelConfig.parse(JSONSerialization.data(withJSONObject: lower), source: "t"), c)
        // LLaDA keeps its names and config
        let ll = try ModelConfig.preset("tiny")
        XCTAssertEqual(ll.family, .llada)
        XCTAssertEqual(ParameterLayout(ll).tensors[1].name, "model.transformer.blocks.0.attn_norm.weight")
        XCTAssertNil(ParameterLayout(ll).blocks[0].qkvBias)
        XCTAssertEqual(try ModelConfig.parse(ll.jsonData(), source: "t"), ll)
        // Dream-7B: the published parameter count
        let big = try ModelConfig.preset("dream-7b")
        XCTAssertEqual(ParameterLayout.checkedCount(big), 7_615_616_512)
        XCTAssertEqual(ParameterLayout.checkedCount(big), ParameterLayout(big).count)
    }

    func testDreamConfigRefusals() throws {
        let base = try ModelConfig.preset("dream-tiny").jsonObject()
        for (k, v, says) in [("tie_word_embeddings", true as Any, "tie_word_embeddings"), ("hidden_act", "gelu" as Any, "hidden_act"),
                             ("use_sliding_window", true as Any, "use_sliding_window"),
                             ("rope_scaling", ["type": "yarn"] as Any, "rope_scaling"), ("model_type", "qwen2" as Any, "model_type")] {
            var o = base; o[k] = v
            XCTAssertThrowsError(try ModelConfig.parse(JSONSerialization.data(withJSONObject: o), source: "cfg")) { e in
                XCTAssertTrue("\(e)".contains(says), "\(k): \(e)")
            }
        }
        var o = base; o["num_attention_heads"] = 5
        XCTAssertThrowsError(try ModelConfig.parse(JSONSerialization.data(withJSONObject: o), source: "cfg")) { e in
            XCTAssertTrue("\(e)".contains("hidden_size"), "Dream's field names in the message: \(e)")
        }
    }

    // MARK: the shift rule

    /// gift's head for token i is the model's row i−1 (token 0: row 0), against the float64 reference's
    /// unshifted rows; and the SFT loss of one masked token i is its CE under row i−1.
    func testTokenIUsesRowIMinus1() throws {
        let (c, params) = try Self.tinyDream()
        let model = Transformer(config: c, maxSeqLen: 64)
        let L = 8, tokens: [Int32] = [5, 17, 3, 42, 8, 61, 2, 97]
        let acts = Activations(config: c, capacityTokens: 64, maxSeqLen: 64, training: true)
        model.forward(params.pointer, tokens: tokens, batch: 1, seqLen: L, acts: acts)
        let logits = model.head(params.pointer, rows: (0..<Int32(L)).map { $0 }, acts: acts)
        let ref = Reference(config: c, params: params)
        let raw = ref.rawLogits(tokens.map(Int.init))
        XCTAssertEqual(acts.headRows, [0, 0, 1, 2, 3, 4, 5, 6])
        let n = forwardReductionLength(c, seqLen: L)
        let scale = raw.flatMap { $0 }.map(abs).max()!
        for i in 0..<L {
            let src = max(i - 1, 0)
            let diff = (0..<c.vocab).map { abs(Double(logits[i * c.vocab + $0]) - raw[src][$0]) }.max()!
            XCTAssertLessThanOrEqual(diff, float32Bound(reduction: n, factor: 2) * scale, "token \(i) from row \(src)")
            if i >= 2 {   // and not from its own row
                let own = (0..<c.vocab).map { abs(Double(logits[i * c.vocab + $0]) - raw[i][$0]) }.max()!
                XCTAssertGreaterThan(own, 100 * float32Bound(reduction: n, factor: 2) * scale)
            }
        }
        // the loss: one masked token at i = 5 (prompt 3), sft with t = 0.5: w = 2, N = 5 response tokens
        var mask = [Bool](repeating: false, count: L); mask[5] = true
        let seq = TrainSequence(tokens: tokens, promptLength: 3, exampleIndex: 0, fixedT: 0.5, fixedMask: mask)
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .sft), capacityTokens: 64, maxSeqLen: 64)
        let grads = FloatBuffer(count: model.layout.count)
        let (st, _) = runner.run(params.pointer, grads: grads.pointer, [seq], seed: 0, step: 0, normalizer: .of([seq]))
        var noisy = tokens.map(Int.init); noisy[5] = c.maskTokenId
        let z = ref.rawLogits(noisy)
        let want = 2 * -Reference.logSoftmax(z[4])[Int(tokens[5])] / 5
        let ownRow = 2 * -Reference.logSoftmax(z[5])[Int(tokens[5])] / 5
        XCTAssertEqual(st.loss, want, accuracy: float32Bound(reduction: n, factor: 2) * abs(want))
        XCTAssertGreaterThan(abs(ownRow - want), 1e-3, "the test can tell rows i and i−1 apart")
        // the gradient reaches the head only through row 4's final state: lm_head's gradient is
        // dlogits ⊗ hf[4], so its rows are multiples of one vector
        let head = model.layout.tensor(named: "lm_head.weight")!
        XCTAssertGreaterThan((0..<head.count).map { abs(grads[head.offset + $0]) }.max()!, 0)
    }

    /// Pass 1's betas (GIFT's entropies with the response masked) come from the shifted rows, and with
    /// two tokens sharing a row (token 0 and 1, no prompt) the trimmed forward still serves both.
    func testPass1BetasFollowTheShift() throws {
        let (c, params) = try Self.tinyDream()
        let model = Transformer(config: c, maxSeqLen: 64)
        let seqs = ModelGradientTests.tinyBatch(c) + [TrainSequence(tokens: [4, 9, 11, 13, 97, 97, 97, 97, 97, 97],
                                                                    promptLength: 0, exampleIndex: 2, fixedT: 0.5,
                                                                    fixedMask: [Bool](repeating: true, count: 10))]
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .gift), capacityTokens: 64, maxSeqLen: 64)
        let betas = runner.pass1Betas(params.pointer, seqs)
        let ref = Reference(config: c, params: params).objective(ObjectiveOptions(kind: .gift), seqs)
        let n = forwardReductionLength(c, seqLen: 10)
        for (b, s) in seqs.enumerated() {
            for i in s.promptLength..<10 {
                XCTAssertEqual(betas[b * 10 + i], ref.betas[b][i], accuracy: float32Bound(reduction: n, factor: 4) * max(1, ref.betas[b][i]),
                               "sequence \(b) token \(i)")
            }
        }
        XCTAssertEqual(betas[2 * 10 + 0], betas[2 * 10 + 1], "tokens 0 and 1 share row 0")
    }

    // MARK: gradients

    /// The model's gradient (q/k/v biases included) against finite differences of the float64 reference,
    /// as ModelGradientTests does for LLaDA.
    func testGradientSFT() throws {
        for gemm in fp32Backends {
            try useBackend(gemm, precision: .fp32)
            try ModelGradientTests.runCheckOnce(ObjectiveOptions(kind: .sft), preset: "dream-tiny")
        }
    }
    func testGradientGIFT() throws {
        try useBackend(fp32Backends[0], precision: .fp32)
        try ModelGradientTests.runCheckOnce(ObjectiveOptions(kind: .gift), preset: "dream-tiny")
    }
    func testGradientDreamCART() throws {
        try useBackend(fp32Backends[0], precision: .fp32)
        try ModelGradientTests.runCheckOnce(ObjectiveOptions(kind: .dream), preset: "dream-tiny")
    }

    /// Recompute gives the same bits (the biases are added again in the recomputed forward).
    func testRecomputeBitIdentical() throws {
        let (c, params) = try Self.tinyDream()
        let model = Transformer(config: c, maxSeqLen: 64)
        let seqs = ModelGradientTests.tinyBatch(c)
        var out: [[Float]] = []
        for rc in [false, true] {
            let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .gift), capacityTokens: 64, maxSeqLen: 64,
                                         recompute: rc)
            let g = FloatBuffer(count: model.layout.count)
            _ = runner.run(params.pointer, grads: g.pointer, seqs, seed: 3, step: 1, normalizer: .of(seqs))
            out.append((0..<g.count).map { g[$0] })
        }
        XCTAssertEqual(out[0], out[1])
    }

    // MARK: gift inspect, training and resume through the CLI

    /// `gift inspect` on a Dream folder: every objective's loss, betas, weights and (shifted) logits equal
    /// the float64 reference's; the gradients carry Dream's names, and the q/k/v biases' match central
    /// differences of the reference.
    func testInspectMatchesTheReference() throws {
        let (c, params) = try Self.tinyDream(seed: 11)
        let dir = try temporaryDirectory(self)
        let model = dir.appendingPathComponent("m").path
        try ModelFolder.save(model, config: c, parameters: params)
        let batch = dir.appendingPathComponent("batch.json")
        try """
        {"sequences": [
          {"input_ids": [5, 9, 13, 20, 21, 22, 23, 97, 97], "prompt_length": 3, "t": 0.3, "mask": [0,0,0,1,0,1,1,0,1]},
          {"input_ids": [7, 8, 30, 31, 32, 33, 34, 35, 97], "prompt_length": 2, "t": 0.7, "mask": [0,0,1,1,1,0,0,1,1]}
        ]}
        """.write(to: batch, atomically: true, encoding: .utf8)
        let seqs = try Inspect.readBatch(path: batch.path, config: c)
        let n = forwardReductionLength(c, seqLen: 9)
        for objective in [ObjectiveKind.sft, .gift, .dream, .nll] {
            let out = dir.appendingPathComponent("\(objective.rawValue).safetensors").path
            let r = try runGift(["inspect", "--model", model, "--batch", batch.path, "--objective", objective.rawValue, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            let printed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            var ref = Reference(config: c, params: params)
            let o = ref.objective(ObjectiveOptions(kind: objective), seqs)
            XCTAssertEqual((printed["loss"] as! NSNumber).doubleValue, o.loss, accuracy: float32Bound(reduction: n, factor: 2) * abs(o.loss),
                           "\(objective)")
            let f = try SafetensorsFile.read(path: out)
            let logits = try f.floats("logits"), refLogits = o.logits.flatMap { $0.flatMap { $0 } }
            let scale = refLogits.map(abs).max()!
            XCTAssertEqual(logits.count, refLogits.count)
            for i in logits.indices {
                XCTAssertEqual(Double(logits[i]), refLogits[i], accuracy: float32Bound(reduction: n, factor: 2) * scale)
            }
            let betas = try f.floats("betas"), refB = o.betas.flatMap { $0 }
            for i in betas.indices { XCTAssertEqual(Double(betas[i]), refB[i], accuracy: float32Bound(reduction: n, factor: 4) * max(1, refB[i])) }
            for t in ParameterLayout(c).tensors { XCTAssertEqual(try f.tensor("grad/" + t.name).shape, t.shape) }
            guard objective == .sft || objective == .gift else { continue }
            // the bias gradients against central differences (betas held at the reference's own)
            let frozen = o.betas, h = 1e-4
            for name in ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.self_attn.k_proj.bias",
                         "model.layers.0.self_attn.v_proj.bias"] {
                let g = try f.floats("grad/" + name), gmax = g.map { Double(abs($0)) }.max()!
                XCTAssertGreaterThan(gmax, 0, name)
                for j in [0, g.count / 2, g.count - 1] {
                    let x0 = ref.w[name]![j]
                    ref.w[name]![j] = x0 + h; let fp = ref.objective(ObjectiveOptions(kind: objective), seqs, frozenBetas: frozen).loss
                    ref.w[name]![j] = x0 - h; let fm = ref.objective(ObjectiveOptions(kind: objective), seqs, frozenBetas: frozen).loss
                    ref.w[name]![j] = x0
                    let num = (fp - fm) / (2 * h)
                    XCTAssertLessThanOrEqual(abs(Double(g[j]) - num), 2e-3 * abs(num) + float32Bound(reduction: 3 * n + 18, factor: 1) * gmax,
                                             "\(objective) \(name)[\(j)]: inspect \(g[j]) numeric \(num)")
                }
            }
        }
    }

    /// Dream trains through `gift train` (preset dream-tiny): stopped and resumed, bit-identical to the
    /// straight run; a LLaDA checkpoint is refused on a Dream run, and the reverse, by family name.
    func testResumeBitIdenticalAndCheckpointsOfTheOtherFamilyRefused() throws {
        let common = ["--data", "countdown", "--task-examples", "48", "--max-steps", "4", "--micro-batch", "2", "--max-length", "32",
                      "--seed", "3", "--lr", "1e-3", "--compression-workers", "0", "--checkpoint-every", "2"]
        func train(_ model: String, _ out: URL, _ extra: [String] = []) throws -> RunResult {
            try runGift(["train", "--model", model] + common + extra + ["--out", out.path])
        }
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        let ra = try train("dream-tiny", a)
        XCTAssertEqual(ra.status, 0, ra.stderr)
        XCTAssertEqual(try train("dream-tiny", b, ["--stop-at-step", "2"]).status, 0)
        let rb = try train("dream-tiny", b, ["--resume", "auto"])
        XCTAssertEqual(rb.status, 0, rb.stderr)
        XCTAssertTrue(rb.stderr.contains("resumed from"), rb.stderr)
        let la = try MetricsWriter.read(a.appendingPathComponent("metrics.jsonl").path).map { ($0["loss"] as! NSNumber).doubleValue }
        let lb = try MetricsWriter.read(b.appendingPathComponent("metrics.jsonl").path).map { ($0["loss"] as! NSNumber).doubleValue }
        XCTAssertEqual(la.count, 4)
        XCTAssertEqual(la.map(\.bitPattern), lb.map(\.bitPattern))
        let wa = try Data(contentsOf: a.appendingPathComponent("model/model.safetensors"))
        XCTAssertEqual(wa, try Data(contentsOf: b.appendingPathComponent("model/model.safetensors")))
        // the trained folder is a Dream folder (Qwen2 names)
        let (tc, _) = try ModelFolder.load(a.appendingPathComponent("model").path)
        XCTAssertEqual(tc.family, .dream)
        // the other family's checkpoint, by name
        let l = try temporaryDirectory(self)
        XCTAssertEqual(try train("tiny", l, ["--stop-at-step", "2"]).status, 0)
        for (model, dirOut, says) in [("dream-tiny", l, "of a LLaDA model; this run's model is Dream"),
                                      ("tiny", b, "of a Dream model; this run's model is LLaDA")] {
            let r = try train(model, dirOut, ["--resume", "auto"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(says), r.stderr)
        }
    }

    // MARK: against transformers' Qwen2

    /// Where the scripts find Fixtures/dream/dream_reference.py (the float64 Qwen2 reading a Dream folder).
    static let referencePath = ["PYTHONPATH": DreamSamplerTests.fixtures.path]

    /// A tiny random Dream folder written by gift, read by transformers' Qwen2Model + lm_head (float64,
    /// bidirectional: an all-zero additive mask for every layer; softmax in float64 too), logits shifted
    /// as Dream's code does: they equal gift's within the float32 forward bound.
    func testLogitsEqualQwen2WithShift() throws {
        let (c, params) = try Self.tinyDream(seed: 9)
        let dir = try temporaryDirectory(self)
        let folder = dir.appendingPathComponent("dream").path
        try ModelFolder.save(folder, config: c, parameters: params)
        let (c2, p2) = try ModelFolder.load(folder)
        XCTAssertEqual(c2, c)
        XCTAssertEqual((0..<p2.count).allSatisfy { p2[$0] == params[$0] }, true, "the folder reads back bit for bit")
        let L = loraLogitsSeqLen
        let (lpath, tpath) = try writeLogits(config: c, weights: params, lora: nil, dir: dir)
        let o = try runPythonCheck("Qwen2 check", Self.qwen2Script, [folder, tpath.path, lpath.path], env: Self.referencePath)
        let n = forwardReductionLength(c, seqLen: L) + 2 * c.nLayers   // + the bias adds
        XCTAssertLessThanOrEqual(o["max_diff"]!, float32Bound(reduction: n, factor: 2) * o["scale"]!, "\(o)")
        XCTAssertGreaterThan(o["scale"]!, 0.1)
        // the unshifted comparison fails by far: the test sees the shift
        XCTAssertGreaterThan(o["unshifted_diff"]!, 100 * float32Bound(reduction: n, factor: 2) * o["scale"]!, "\(o)")
        print("Qwen2 check: \(o)")
    }

    /// gift's Dream LoRA adapter in PEFT itself, its targets given as `--lora-targets` would (Qwen2's names):
    /// transformers' Qwen2ForCausalLM loads gift's folder (its names are Qwen2's), PeftModel.from_pretrained
    /// loads gift's adapter folder (adapter_config.json's target_modules are the same Qwen2 names, tensors
    /// PEFT's paths for Qwen2 modules, biases untouched), and its float64 logits, shifted as Dream's code
    /// does, equal gift's; merge_and_unload() equals `gift export --adapter --merge`.
    func checkLoRAAdapterAgainstPEFT(targets: String) throws {
        let (c, base) = try Self.tinyDream(seed: 13)
        let dir = try temporaryDirectory(self)
        let modelDir = dir.appendingPathComponent("model").path, adapterDir = dir.appendingPathComponent("adapter").path
        try ModelFolder.save(modelDir, config: c, parameters: base)
        var lc = LoRAConfig()
        lc.r = 4; lc.alpha = 8
        try lc.setTargets(targets)
        let layout = try LoRALayout(c, lc)
        for name in ["base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight", "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight",
                     "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"] {
            XCTAssertTrue(layout.tensors.contains { $0.name == name }, name)
        }
        let a = layout.initialize(seed: 2)
        for t in layout.tensors where t.name.hasSuffix("lora_B.weight") {
            let r = CounterRNG(5, UInt64(t.offset))
            for j in 0..<t.count { a[t.offset + j] = Float(0.4 * r.normal(UInt64(j))) }
        }
        try PEFTAdapter.save(adapterDir, layout: layout, weights: a.pointer, baseModel: "model")
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: adapterDir + "/" + PEFTAdapter.configFile))) as! [String: Any]
        XCTAssertEqual(written["target_modules"] as? [String], targets.split(separator: ",").map(String.init))
        let (lc2, a2) = try PEFTAdapter.load(adapterDir, model: c)
        XCTAssertEqual(lc2.targets, lc.targets, "gift reads its Dream adapter back")
        XCTAssertTrue((0..<a.count).allSatisfy { a2[$0] == a[$0] })
        let (lpath, tpath) = try writeLogits(config: c, weights: base, lora: (layout, a), dir: dir)
        let merged = dir.appendingPathComponent("merged").path
        let ex = try runGift(["export", "--model", modelDir, "--adapter", adapterDir, "--merge", "--out", merged])
        XCTAssertEqual(ex.status, 0, ex.stderr)
        let o = try runPythonCheck("PEFT check", Self.peftScript, [modelDir, adapterDir, tpath.path, lpath.path, merged], env: Self.referencePath)
        let n = forwardReductionLength(c, seqLen: loraLogitsSeqLen) + 2 * c.nLayers
        XCTAssertLessThanOrEqual(o["logit_max_diff"]!, float32Bound(reduction: n, factor: 2) * o["logit_scale"]!, "\(o)")
        XCTAssertGreaterThan(o["logit_scale"]!, 0.1)
        XCTAssertLessThanOrEqual(o["merged_max_rel_diff"]!, 1.2e-7, "\(o)")
        XCTAssertEqual(Int(o["lora_modules"]!), c.nLayers * lc.targets.count, "\(o)")
        print("Dream PEFT check (\(targets)): \(o)")
    }

    func testLoRAAdapterAgreesWithPEFTOnQwen2() throws {
        try checkLoRAAdapterAgainstPEFT(targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    }

    /// The layers whose Dream names differ from LLaDA's alone.
    func testOutputAndMLPAdapterAgreesWithPEFTOnQwen2() throws {
        try checkLoRAAdapterAgainstPEFT(targets: "o_proj,gate_proj,down_proj")
    }

    /// --lora-targets takes the model family's module names (PEFT's target_modules): Qwen2's on Dream,
    /// LLaDA's own on LLaDA; the other family's names are refused with this family's listed, and a list
    /// mixing both families is refused before any model is read. The setting reads back as given.
    func testLoRATargetNamesFollowTheFamily() throws {
        let dream = try ModelConfig.preset("dream-tiny"), llada = try ModelConfig.preset("tiny")
        func config(_ s: String) throws -> LoRAConfig { var l = LoRAConfig(); l.r = 2; try l.setTargets(s); return l }
        let qwen = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
        let lq = try config(qwen)
        XCTAssertEqual(lq.targets, LoRATarget.allCases)
        XCTAssertEqual(lq.targetsNamedFor, .dream)
        XCTAssertEqual(lq.targetsText, qwen)
        XCTAssertNoThrow(try LoRALayout(dream, lq))
        XCTAssertEqual(try config("q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out").targets, LoRATarget.allCases)
        let shared = try config("v_proj,up_proj")
        XCTAssertNil(shared.targetsNamedFor)
        for c in [dream, llada] { XCTAssertNoThrow(try LoRALayout(c, shared)) }
        for (c, given, says) in [
            (llada, "q_proj,o_proj,down_proj", "lora_targets names o_proj, down_proj, Dream's layer names; this model is LLaDA: its targets are q_proj, k_proj, v_proj, attn_out, ff_proj, up_proj, ff_out"),
            (dream, "attn_out,ff_proj", "lora_targets names attn_out, ff_proj, LLaDA's layer names; this model is Dream: its targets are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
        ] {
            XCTAssertThrowsError(try LoRALayout(c, try config(given))) { e in XCTAssertTrue("\(e)".contains(says), "\(e)") }
        }
        XCTAssertThrowsError(try config("o_proj,attn_out")) { e in XCTAssertTrue("\(e)".contains("mixes the two families"), "\(e)") }
        // through gift train: a LLaDA name on dream-tiny fails before training, naming Dream's targets
        let out = try temporaryDirectory(self)
        let r = try runGift(["train", "--model", "dream-tiny", "--data", "countdown", "--task-examples", "8", "--max-steps", "1",
                             "--lora-r", "2", "--lora-targets", "q_proj,ff_out", "--out", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("its targets are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"), r.stderr)
        // a PEFT adapter_config naming the other family's layer is refused with this family's names
        let ad = out.appendingPathComponent("adapter").path
        let layout = try LoRALayout(dream, shared)
        try PEFTAdapter.save(ad, layout: layout, weights: layout.initialize(seed: 1).pointer, baseModel: "m")
        let cfg = ad + "/" + PEFTAdapter.configFile
        try (try String(contentsOfFile: cfg, encoding: .utf8)).replacingOccurrences(of: "\"up_proj\"", with: "\"ff_proj\"")
            .write(toFile: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PEFTAdapter.load(ad, model: dream)) { e in
            XCTAssertTrue("\(e)".contains("names 'ff_proj', which is not a linear layer of a Dream block (q_proj, k_proj, v_proj, o_proj, gate_proj"), "\(e)")
        }
    }

    /// A LLaDA adapter offered to a Dream model (and the reverse) is refused by family name.
    func testAdapterOfTheOtherFamilyRefused() throws {
        let dir = try temporaryDirectory(self)
        var lc = LoRAConfig()
        lc.r = 2; lc.targets = [.q, .v]
        let dream = try ModelConfig.preset("dream-tiny"), llada = try ModelConfig.preset("tiny")
        for (from, to, says) in [(llada, dream, "is for a LLaDA model"), (dream, llada, "is for a Dream model")] {
            let layout = try LoRALayout(from, lc)
            let out = dir.appendingPathComponent(from.family.rawValue).path
            try PEFTAdapter.save(out, layout: layout, weights: layout.initialize(seed: 1).pointer, baseModel: "m")
            XCTAssertNoThrow(try PEFTAdapter.load(out, model: from))
            XCTAssertThrowsError(try PEFTAdapter.load(out, model: to)) { e in
                XCTAssertTrue("\(e)".contains(says) && "\(e)".contains("this model is \(to.family.displayName)"), "\(e)")
            }
        }
    }

    /// Dream folders in and out as they ship: bf16 shards with an index, read back to the bf16 values;
    /// `saveLike` keeps the source's dtype, sharding, remote code and config keys (auto_map, bos_token_id).
    func testBF16ShardedFolderAndDropInCopy() throws {
        let (c, params) = try Self.tinyDream()
        let dir = try temporaryDirectory(self)
        let src = dir.appendingPathComponent("src").path
        try ModelFolder.save(src, config: c, parameters: params, dtype: .BF16, maxShardBytes: 60_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: src + "/" + ModelFolder.indexFile))
        XCTAssertGreaterThan(ModelFolder.existingShards(src).count, 1)
        // Dream's remote-code keys and files, as the published folder has them
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: src + "/config.json"))) as! [String: Any]
        cfg["auto_map"] = ["AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"]
        cfg["bos_token_id"] = 97
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: src + "/config.json"))
        try "# Dream's modeling code\n".write(toFile: src + "/modeling_dream.py", atomically: true, encoding: .utf8)
        let (c2, p2) = try ModelFolder.load(src)
        XCTAssertEqual(c2, c)
        for i in 0..<p2.count { XCTAssertEqual(p2[i], BFloat16.round(params[i]), "parameter \(i)") }
        let dst = dir.appendingPathComponent("dst").path
        let (dt, copied) = try ModelCompanions.saveLike(src, dst: dst, config: c2, parameters: p2)
        XCTAssertEqual(dt, .BF16)
        XCTAssertEqual(copied, ["modeling_dream.py"])
        XCTAssertEqual(ModelFolder.existingShards(dst).count, ModelFolder.existingShards(src).count)
        let out = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dst + "/config.json"))) as! [String: Any]
        XCTAssertEqual(out["model_type"] as? String, "Dream")
        XCTAssertEqual(out["bos_token_id"] as? Int, 97)
        XCTAssertEqual((out["auto_map"] as? [String: String])?["AutoModel"], "modeling_dream.DreamModel")
        XCTAssertEqual(out["torch_dtype"] as? String, "bfloat16")
        let (c3, p3) = try ModelFolder.load(dst)
        XCTAssertEqual(c3, c)
        XCTAssertTrue((0..<p3.count).allSatisfy { p3[$0] == p2[$0] })
    }

    static let peftScript = #"""
import json, sys
import numpy as np
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM
from dream_reference import qwen2_config, use_float64_eager_attention

model_dir, adapter_dir, tokens_path, logits_path, merged_dir = sys.argv[1:6]
use_float64_eager_attention()
base = Qwen2ForCausalLM(qwen2_config(json.load(open(model_dir + "/config.json"))))
base.load_state_dict(load_file(model_dir + "/model.safetensors"), strict=True)
base = base.double().eval()
peft_model = PeftModel.from_pretrained(base, adapter_dir).double().eval()
ids = torch.tensor(json.load(open(tokens_path)), dtype=torch.long)
B, L = ids.shape
mask = {"full_attention": torch.zeros(B, 1, L, L, dtype=torch.float64)}
with torch.no_grad():
    raw = peft_model(input_ids=ids, attention_mask=mask).logits
    logits = torch.cat([raw[:, :1], raw[:, :-1]], dim=1).numpy()
gift = np.fromfile(logits_path, dtype=np.float32).reshape(logits.shape).astype(np.float64)
lora_modules = sum(1 for n, _ in peft_model.named_modules() if n.endswith(".lora_A"))
merged = peft_model.merge_and_unload().state_dict()
gm = load_file(merged_dir + "/model.safetensors")
worst = 0.0
for name, w in merged.items():
    g = gm[name].double()
    worst = max(worst, float(((w - g).abs() / (w.abs() + 1e-6)).max()))
if set(merged) != set(gm):
    worst = float("inf")
print(json.dumps({"logit_max_diff": float(np.abs(logits - gift).max()), "logit_scale": float(np.abs(logits).max()),
                  "merged_max_rel_diff": worst, "lora_modules": lora_modules}))
"""#

    static let qwen2Script = #"""
import json, sys
import numpy as np
import torch
from dream_reference import DreamReference

folder, tokens_path, logits_path = sys.argv[1:4]
ref = DreamReference(folder)   # float64 Qwen2Model + lm_head, bidirectional (nothing masked)
toks = torch.tensor(json.load(open(tokens_path)))
raw = ref.raw_logits(toks)
shifted = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)   # Dream: row i-1 predicts token i
B, L, V = raw.shape
gift = torch.from_numpy(np.fromfile(logits_path, dtype=np.float32).astype(np.float64)).reshape(B, L, V)
print(json.dumps({"max_diff": (gift - shifted).abs().max().item(), "scale": shifted.abs().max().item(),
                  "unshifted_diff": (gift - raw).abs().max().item()}))
"""#
}
