import Foundation
import XCTest
@testable import GiftCore

/// LoRA's math: adapter gradients against finite differences of the float64 reference (whose weights are
/// the merged W + scale·B·A, computed in float64), the B = 0 identity against the full model's weight
/// gradient, dropout's backward against differences of gift's own forward under the same draws, and
/// pass 1 with adapters against pass 1 of the merged model.
final class LoRATests: XCTestCase {
    let allTargets = LoRATarget.allCases

    func loraConfig(r: Int = 4, targets: [LoRATarget]? = nil, dropout: Double = 0, rslora: Bool = false) -> LoRAConfig {
        var l = LoRAConfig()
        l.r = r; l.alpha = 8; l.dropout = dropout; l.targets = targets ?? allTargets; l.rslora = rslora
        return l
    }

    /// PEFT's init (B = 0) plus a random B, so every path of the adapter carries signal.
    func adapters(_ layout: LoRALayout, seed: UInt64, bScale: Double = 0.3) -> FloatBuffer {
        let a = layout.initialize(seed: seed)
        for t in layout.tensors where t.name.hasSuffix("lora_B.weight") {
            let r = CounterRNG(seed, 77, UInt64(t.offset))
            for j in 0..<t.count { a[t.offset + j] = Float(bScale * r.normal(UInt64(j))) }
        }
        return a
    }

    /// The float64 reference with every adapter merged into its weights (in float64).
    func mergedReference(_ c: ModelConfig, base: FloatBuffer, layout: LoRALayout, adapters a: [Double]) -> Reference {
        var ref = Reference(config: c, params: base)
        let s = Double(layout.lora.scale), r = layout.lora.r
        for (l, mods) in layout.blocks.enumerated() {
            for m in mods {
                let name = "model.transformer.blocks.\(l).\(m.target.rawValue).weight"
                var w = ref.w[name]!
                for o in 0..<m.outDim {
                    for i in 0..<m.inDim {
                        var acc = 0.0
                        for k in 0..<r { acc += a[m.b + o * r + k] * a[m.a + k * m.inDim + i] }
                        w[o * m.inDim + i] += s * acc
                    }
                }
                ref.w[name] = w
            }
        }
        return ref
    }

    /// Tolerance as in ModelGradientTests (see its derivation): the adapter gradient adds two reductions
    /// of length ≤ max(in, out) and one of r to the same backward, still within (3n + 20)·u of the
    /// tensor's scale at these sizes.
    func testAdapterGradientsMatchFiniteDifferences() throws {
        for rslora in [false, true] {
            let c = try ModelConfig.preset("tiny")
            let model = Transformer(config: c, maxSeqLen: 64)
            let base = model.layout.initialize(seed: 5, std: 0.2)
            let layout = try LoRALayout(c, loraConfig(rslora: rslora))
            let a = adapters(layout, seed: 9)
            let seqs = ModelGradientTests.tinyBatch(c)
            let opts = ObjectiveOptions(kind: .sft)
            let runner = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
            runner.attachLoRA(layout, weights: a.pointer)
            let grads = FloatBuffer(count: layout.count)
            let (st, _) = runner.run(base.pointer, grads: grads.pointer, seqs, seed: 0, step: 0, normalizer: .of(seqs))
            var av = (0..<layout.count).map { Double(a[$0]) }
            let refLoss = mergedReference(c, base: base, layout: layout, adapters: av).objective(opts, seqs).loss
            let n = forwardReductionLength(c, seqLen: 10)
            XCTAssertEqual(st.loss, refLoss, accuracy: float32Bound(reduction: n, factor: 2) * abs(refLoss))
            let h = 1e-4
            for t in layout.tensors {
                let g = (0..<t.count).map { grads[t.offset + $0] }
                let gmax = g.map { Double(abs($0)) }.max()!
                XCTAssertGreaterThan(gmax, 0, "\(t.name): no gradient")
                let argmax = g.indices.max { abs(g[$0]) < abs(g[$1]) }!
                for j in Set([argmax, 0, t.count / 3, t.count - 1]) {
                    let x0 = av[t.offset + j]
                    av[t.offset + j] = x0 + h
                    let fp = mergedReference(c, base: base, layout: layout, adapters: av).objective(opts, seqs).loss
                    av[t.offset + j] = x0 - h
                    let fm = mergedReference(c, base: base, layout: layout, adapters: av).objective(opts, seqs).loss
                    av[t.offset + j] = x0
                    let num = (fp - fm) / (2 * h)
                    XCTAssertLessThanOrEqual(abs(Double(g[j]) - num), 2e-3 * abs(num) + float32Bound(reduction: 3 * n + 20, factor: 1) * gmax,
                                             "\(t.name)[\(j)] rslora \(rslora): analytic \(g[j]) numeric \(num)")
                }
            }
        }
    }

    /// With B = 0 (PEFT's initialisation) the adapter does not change the model, dA = 0 exactly (du = dy·B = 0),
    /// and dB = scale · G · Aᵀ where G is the full model's gradient of that weight: both from gift, the
    /// second a GEMM of its own. Bound: G·Aᵀ sums `in` products of float32 values, each side within
    /// (3n + 20)·u·max|G| of exact (ModelGradientTests), so 4·(3n + 20 + in)·u·max|G|·Σ|A| per entry is slack.
    func testZeroBGivesFullGradientTimesATransposed() throws {
        let c = try ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 64)
        let base = model.layout.initialize(seed: 5, std: 0.2)
        let layout = try LoRALayout(c, loraConfig())
        let a = layout.initialize(seed: 3)
        let seqs = ModelGradientTests.tinyBatch(c)
        let opts = ObjectiveOptions(kind: .sft)
        let full = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
        let G = FloatBuffer(count: model.layout.count)
        let (s0, _) = full.run(base.pointer, grads: G.pointer, seqs, seed: 0, step: 0, normalizer: .of(seqs))
        let runner = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
        runner.attachLoRA(layout, weights: a.pointer)
        let g = FloatBuffer(count: layout.count)
        let (s1, _) = runner.run(base.pointer, grads: g.pointer, seqs, seed: 0, step: 0, normalizer: .of(seqs))
        XCTAssertEqual(s0.loss, s1.loss, "B = 0: the adapters must not change the loss")
        let n = forwardReductionLength(c, seqLen: 10), r = layout.lora.r, s = Double(layout.lora.scale)
        for (l, mods) in layout.blocks.enumerated() {
            for m in mods {
                for j in 0..<(r * m.inDim) { XCTAssertEqual(g[m.a + j], 0, "block \(l) \(m.target) dA[\(j)]") }
                let w = layout.baseOffset(model.layout.blocks[l], m.target)
                let gmax = (0..<(m.outDim * m.inDim)).map { Double(abs(G[w + $0])) }.max()!
                for o in 0..<m.outDim {
                    for k in 0..<r {
                        var want = 0.0, mag = 0.0
                        for i in 0..<m.inDim {
                            want += Double(G[w + o * m.inDim + i]) * Double(a[m.a + k * m.inDim + i])
                            mag += abs(Double(a[m.a + k * m.inDim + i]))
                        }
                        want *= s
                        let tol = 4 * float32Bound(reduction: 3 * n + 20 + m.inDim, factor: 1) * gmax * mag * s
                        XCTAssertEqual(Double(g[m.b + o * r + k]), want, accuracy: tol, "block \(l) \(m.target) dB[\(o), \(k)]")
                    }
                }
            }
        }
    }

    /// Dropout's backward: central differences of gift's own float32 forward under the same draws (the
    /// mask depends only on seed, step, example, layer, target, position and feature). h = 1e-2 on A and
    /// B entries of size ~0.1-0.3: truncation h²·|f'''| is far below the float32 noise 2·n·u·|loss|/h ≈ 1e-4
    /// of the difference quotient; tolerance 1e-3·|g| + that noise + 2e-3·max|g|.
    func testDropoutGradientMatchesDifferencesUnderTheSameDraws() throws {
        let c = try ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 64)
        let base = model.layout.initialize(seed: 5, std: 0.2)
        let layout = try LoRALayout(c, loraConfig(targets: [.q, .v, .attnOut, .ffOut], dropout: 0.3))
        let a = adapters(layout, seed: 4)
        let seqs = ModelGradientTests.tinyBatch(c)
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .sft), capacityTokens: 64, maxSeqLen: 64)
        runner.attachLoRA(layout, weights: a.pointer)
        let g = FloatBuffer(count: layout.count), scratch = FloatBuffer(count: layout.count)
        func loss() -> Double {
            runner.run(base.pointer, grads: scratch.pointer, seqs, seed: 1, step: 2, normalizer: .of(seqs)).0.loss
        }
        let (st, _) = runner.run(base.pointer, grads: g.pointer, seqs, seed: 1, step: 2, normalizer: .of(seqs))
        // dropout changes the loss (else this test would not test it) and is the same on a rerun
        let noDrop = runner.run(base.pointer, grads: nil, seqs, seed: 1, step: 2, normalizer: .of(seqs)).0.loss
        XCTAssertNotEqual(st.loss, noDrop)
        XCTAssertEqual(loss(), st.loss)
        let h: Float = 1e-2
        let n = forwardReductionLength(c, seqLen: 10)
        let noise = 2 * float32Bound(reduction: n, factor: 2) * abs(st.loss) / Double(h)
        for t in layout.tensors {
            let gv = (0..<t.count).map { g[t.offset + $0] }
            let gmax = gv.map { Double(abs($0)) }.max()!
            let argmax = gv.indices.max { abs(gv[$0]) < abs(gv[$1]) }!
            for j in Set([argmax, t.count / 2]) {
                let x0 = a[t.offset + j]
                a[t.offset + j] = x0 + h; let fp = loss()
                a[t.offset + j] = x0 - h; let fm = loss()
                a[t.offset + j] = x0
                let num = (fp - fm) / (2 * Double(h))
                XCTAssertEqual(Double(gv[j]), num, accuracy: 1e-3 * abs(num) + noise + 2e-3 * gmax, "\(t.name)[\(j)]")
            }
        }
    }

    /// Pass 1 runs the current model (base + adapters, no dropout): its betas equal those of the merged
    /// model, through both of pass 1's shortcuts (block 0's distinct tokens, the last block's output rows).
    /// Tolerance: the two compute the same function with a different grouping of float32 products
    /// (x·W' vs x·W + s·(x·Aᵀ)·Bᵀ): 4·n·u of the entropy scale ln V.
    func testPassOneUsesTheAdaptersAndEqualsTheMergedModel() throws {
        let c = try ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 64)
        let base = model.layout.initialize(seed: 5, std: 0.2)
        let layout = try LoRALayout(c, loraConfig(dropout: 0.5))
        let a = adapters(layout, seed: 6, bScale: 0.5)
        let seqs = ModelGradientTests.tinyBatch(c)
        let opts = ObjectiveOptions(kind: .gift)
        let withLoRA = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
        withLoRA.attachLoRA(layout, weights: a.pointer)
        let merged = layout.merged(base: base.pointer, adapters: a.pointer)
        let plain = ObjectiveRunner(model: model, options: opts, capacityTokens: 64, maxSeqLen: 64)
        let b1 = withLoRA.pass1Betas(base.pointer, seqs), b2 = plain.pass1Betas(merged.pointer, seqs)
        let b0 = plain.pass1Betas(base.pointer, seqs)
        let n = forwardReductionLength(c, seqLen: 10)
        var differsFromBase = false
        for i in b1.indices {
            XCTAssertEqual(b1[i], b2[i], accuracy: 4 * float32Bound(reduction: n, factor: 1) * log(Double(c.vocab)), "beta \(i)")
            if abs(b1[i] - b0[i]) > 1e-3 { differsFromBase = true }
        }
        XCTAssertTrue(differsFromBase, "the adapters must change pass 1's betas")
    }

    /// Merging is W + scale·B·A per element in float64, rounded once.
    func testMergedWeightsAreBaseplusScaledBA() throws {
        let c = try ModelConfig.preset("tiny")
        let base = ParameterLayout(c).initialize(seed: 1)
        let layout = try LoRALayout(c, loraConfig(r: 2, targets: [.k, .upProj]))
        let a = adapters(layout, seed: 2)
        let m = layout.merged(base: base.pointer, adapters: a.pointer)
        let pl = ParameterLayout(c), s = Double(layout.lora.scale)
        let mod = layout.module(block: 1, .upProj)!, w = pl.blocks[1].upProj
        for (o, i) in [(0, 0), (5, 17), (mod.outDim - 1, mod.inDim - 1)] {
            let ba = Double(a[mod.b + o * 2]) * Double(a[mod.a + i]) + Double(a[mod.b + o * 2 + 1]) * Double(a[mod.a + mod.inDim + i])
            XCTAssertEqual(m[w + o * mod.inDim + i], Float(Double(base[w + o * mod.inDim + i]) + s * ba))
        }
        // untargeted weights are untouched
        XCTAssertEqual(m[pl.blocks[0].q], base[pl.blocks[0].q])
        XCTAssertEqual(m[pl.blocks[0].ffOut + 7], base[pl.blocks[0].ffOut + 7])
    }

    /// PEFT's init: A uniform in ±1/√in (kaiming_uniform with a = √5), B zero; PEFT's tensor names.
    func testInitialisationAndNamesArePEFTs() throws {
        let c = try ModelConfig.preset("tiny")
        let layout = try LoRALayout(c, loraConfig(r: 8, targets: [.q, .ffOut]))
        let a = layout.initialize(seed: 1)
        XCTAssertEqual(layout.tensors[0].name, "base_model.model.model.transformer.blocks.0.q_proj.lora_A.weight")
        XCTAssertEqual(layout.tensors[0].shape, [8, c.dModel])
        XCTAssertEqual(layout.tensors[3].name, "base_model.model.model.transformer.blocks.0.ff_out.lora_B.weight")
        XCTAssertEqual(layout.tensors[3].shape, [c.dModel, 8])
        for m in layout.blocks.joined() {
            let bound = Float(1 / Double(m.inDim).squareRoot())
            let av = (0..<(8 * m.inDim)).map { a[m.a + $0] }
            XCTAssertLessThanOrEqual(av.map(abs).max()!, bound)
            XCTAssertGreaterThan(av.map(abs).max()!, 0.9 * bound, "uniform over the whole range")
            XCTAssertEqual(abs(av.reduce(0, +) / Float(av.count)), 0, accuracy: bound * 0.1)
            XCTAssertTrue((0..<(m.outDim * 8)).allSatisfy { a[m.b + $0] == 0 })
        }
    }

    /// Bad input: a target the model lacks, r larger than the layer, an adapter for another shape, a PEFT
    /// target list that would also adapt the output head.
    func testBadInputIsRefusedClearly() throws {
        XCTAssertThrowsError(try LoRAConfig.parseTargets("q_proj,out_proj")) { e in
            XCTAssertTrue("\(e)".contains("'out_proj' is not a linear layer") && "\(e)".contains("Dream: q_proj, k_proj, v_proj, o_proj"), "\(e)")
        }
        let c = try ModelConfig.preset("tiny")
        XCTAssertThrowsError(try LoRALayout(c, loraConfig(r: 65, targets: [.q]))) { e in
            XCTAssertTrue("\(e)".contains("lora_r 65 is larger than q_proj"), "\(e)")
        }
        let dir = try temporaryDirectory(self)
        let layout = try LoRALayout(c, loraConfig(r: 4, targets: [.q, .v]))
        let initial = layout.initialize(seed: 1)
        try PEFTAdapter.save(dir.path, layout: layout, weights: initial.pointer, baseModel: "tiny")
        let (lc, w) = try PEFTAdapter.load(dir.path, model: c)
        XCTAssertEqual(lc.targets, [.q, .v]); XCTAssertEqual(lc.r, 4); XCTAssertEqual(w.count, layout.count)
        let mini = try ModelConfig.preset("mini")
        XCTAssertThrowsError(try PEFTAdapter.load(dir.path, model: mini)) { e in
            XCTAssertTrue("\(e)".contains("the adapter is for another base") || "\(e)".contains("unexpected tensor"), "\(e)")
        }
        // target_modules ["ff_out"] would wrap the output head too in PEFT
        let cfgPath = dir.appendingPathComponent(PEFTAdapter.configFile).path
        var text = try String(contentsOfFile: cfgPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"q_proj\",", with: "\"ff_out\",")
        try text.write(toFile: cfgPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PEFTAdapter.load(dir.path, model: c)) { e in
            XCTAssertTrue("\(e)".contains("also matches the output head"), "\(e)")
        }
    }
}
