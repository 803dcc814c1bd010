import Foundation
import XCTest
@testable import GiftCore

/// `gift plan` against the peak resident memory of the training run it describes (GNU time's maximum RSS:
/// of the process, or under mpirun of the largest rank), tiny and small on 1 and 2 ranks, within 15%.
/// --max-length 16 cuts every Countdown example (16-25 characters), so the run's longest padded sequence
/// is the plan's --seq.
final class PlanTests: XCTestCase {
    let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun"), time = URL(fileURLWithPath: "/usr/bin/time")
    let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
               "OPENBLAS_NUM_THREADS": "1"]

    func launch(_ ranks: Int, _ args: [String]) -> (URL, [String]) {
        ranks == 1 ? (giftBinary, args) : (mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path] + args)
    }

    /// With checkpoints only at the end, the checkpoint's snapshot and a step's communication temporaries
    /// are never held at once (ZeRO-1's reduce-scatter staging here): the smaller is left out of the peak;
    /// with checkpoints during the run both count.
    func testSnapshotAndCommunicationNotAtOnceWithoutCheckpointsDuringTheRun() throws {
        var s = Plan.Settings(); s.ranks = 2; s.zero = 1; s.microBatch = 2; s.seqLen = 64
        let c = try ModelConfig.preset("small")
        let atEnd = try Plan(config: c, s)
        s.checkpointEvery = 10
        let during = try Plan(config: c, s)
        let sum = during.parts.reduce(0) { $0 + $1.bytes }
        XCTAssertEqual(during.totalBytes, sum)
        XCTAssertEqual(atEnd.totalBytes, sum - min(atEnd.bytes("communication"),
                                                    atEnd.bytes("checkpoint_snapshot") + atEnd.bytes("checkpoint_compression")))
        XCTAssertGreaterThan(atEnd.notHeldAtOnce, 0)
        XCTAssertTrue(atEnd.report(gflops: nil).contains { $0.contains("not held at once") })
        // ZeRO 0 in fp32 has no communication temporary: nothing to leave out
        s.zero = 0; s.checkpointEvery = 0
        XCTAssertEqual(try Plan(config: c, s).notHeldAtOnce, 0)
    }

    /// LoRA over a bf16 base (LLaDA-8B's shape, r 128 on q/k/v, ZeRO-2 on 8 ranks): the base is 2 bytes a
    /// block parameter + the embedding, ln_f and head in fp32 + the running block decoded to fp32; the
    /// load peak is the store plus the 16 MiB piece buffer and the reader's 4 MiB scratch, not the fp32
    /// model; the stage shards the adapters. Sizes written out from the config, not from the layout.
    func testLoRAWithABF16BaseCountsTheStoreAndItsLoad() throws {
        let c = try ModelConfig.preset("llada-8b")
        let d = c.dModel, L = c.nLayers, kv = c.kvDim
        let block = 2 * d + d * (d + 2 * kv) + d * d + 3 * d * c.mlpHiddenSize   // norms, q k v, attn_out, ff_proj up_proj ff_out
        let outer = 2 * c.vocab * d + d                                              // embedding, head, ln_f
        let n = L * block + outer
        XCTAssertEqual(ParameterLayout(c).count, n)
        let r = 128, adapters = L * r * ((d + d) + 2 * (d + kv))                      // A [r, in] and B [out, r] of q, k, v
        var s = Plan.Settings(); s.ranks = 8; s.zero = 2; s.seqLen = 512; s.runtimeBytes = 1 << 20
        var l = LoRAConfig(); l.r = r; l.targets = [.q, .k, .v]; s.lora = l; s.baseBF16 = true
        let p = try Plan(config: c, s)
        XCTAssertEqual(p.bytes("base"), 2 * L * block + 4 * outer + 4 * block)
        XCTAssertEqual(p.loadPeakBytes, 2 * L * block + 4 * outer + 4 * (1 << 22) + 4 * (1 << 20) + s.runtimeBytes)
        XCTAssertLessThan(Double(p.loadPeakBytes), 0.6 * Double(4 * n), "LLaDA-8B's bf16 load stays far below its fp32 size")
        XCTAssertEqual(p.bytes("adapters"), 4 * adapters)
        XCTAssertEqual(p.bytes("moments"), 8 * ((adapters + 7) / 8))
        XCTAssertNil(p.parts.first { $0.name == "parameters" }, "the frozen base is not a trained parameter")
        XCTAssertEqual(p.bytes("last_good_copy"), 4 * adapters)
        XCTAssertEqual(p.bytes("checkpoint_snapshot"), 12 * ((adapters + 7) / 8))
        XCTAssertEqual(p.peakBytes, max(p.totalBytes, p.loadPeakBytes))
        XCTAssertTrue(p.report(gflops: 1).contains { $0.contains("load peak") && $0.contains("never held") })
        XCTAssertTrue(p.report(gflops: 1).last!.contains("\"load_peak_bytes\": \(p.loadPeakBytes)"))
        // no bf16 weight copy over the store; an fp32 base is 4 bytes a parameter, loaded as such, with the copy
        s.precision = .bf16; s.nativeBF16 = true
        XCTAssertEqual(try Plan(config: c, s).parts.first { $0.name == "bf16_weights" }?.bytes, 0)
        s.baseBF16 = false
        let f = try Plan(config: c, s)
        XCTAssertEqual(f.bytes("base"), 4 * n)
        XCTAssertEqual(f.loadPeakBytes, 4 * n + s.runtimeBytes)
        XCTAssertEqual(f.bytes("bf16_weights"), 2 * n)
        XCTAssertEqual(f.totalBytes - p.totalBytes, 4 * n - p.bytes("base") + 2 * n, "the bf16 base saves its half and the copy")
        // LoRA has no ZeRO-3; a bf16 base needs LoRA
        s.zero = 3
        XCTAssertThrowsError(try Plan(config: c, s))
        var full = Plan.Settings(); full.baseBF16 = true
        XCTAssertThrowsError(try Plan(config: c, full))
    }

    /// `gift plan --lora-r --base-dtype bf16` prints the same plan: the base part and the load peak (the
    /// JSON's, the runtime this process measured included).
    func testPlanCommandTakesLoRAAndTheBaseDtype() throws {
        let r = try runGift(["plan", "--model", "small", "--lora-r", "8", "--lora-targets", "q_proj,v_proj", "--base-dtype", "bf16", "--gflops", "10"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("LoRA r 8 on q_proj,v_proj (131072 adapter parameters, base bf16 frozen)"), r.stdout)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        let bytes = json["bytes_per_rank"] as! [String: Int]
        var s = Plan.Settings(); var l = LoRAConfig(); l.r = 8; l.targets = [.q, .v]; s.lora = l; s.baseBF16 = true; s.runtimeBytes = bytes["runtime"]!
        let p = try Plan(config: try ModelConfig.preset("small"), s)
        XCTAssertEqual(json["load_peak_bytes"] as? Int, p.loadPeakBytes)
        XCTAssertEqual(bytes["base"], p.bytes("base"))
        XCTAssertEqual(bytes["total"], p.totalBytes)
        let bad = try runGift(["plan", "--model", "small", "--base-dtype", "bf16"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("it needs LoRA (--lora-r)"), bad.stderr)
    }

    func testPlanMatchesPeakRSS() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: time.path), "GNU time not installed")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        for preset in ["tiny", "small"] {
            for ranks in [1, 2] {
                let dir = try temporaryDirectory(self)
                let (pexe, pargs) = launch(ranks, ["plan", "--model", preset, "--micro-batch", "8", "--seq", "16"])
                let p = try runProcess(pexe, pargs, env: env)
                XCTAssertEqual(p.status, 0, p.stderr)
                let last = p.stdout.split(separator: "\n").last.map(String.init) ?? ""
                let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as! [String: Any]
                let planned = ((json["bytes_per_rank"] as! [String: Any])["total"] as! NSNumber).doubleValue
                XCTAssertGreaterThan((json["flops_per_step"] as! NSNumber).doubleValue, 0)
                let (texe, targs) = launch(ranks, ["train", "--model", preset, "--data", "countdown", "--task-examples", "600",
                                                   "--max-steps", "3", "--max-length", "16", "--micro-batch", "8",
                                                   "--out", dir.appendingPathComponent("run").path])
                let t = try runProcess(time, ["-v", texe.path] + targs, env: env)
                XCTAssertEqual(t.status, 0, t.stderr)
                let line = t.stderr.split(separator: "\n").first { $0.contains("Maximum resident set size") }!
                let measured = Double(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))! * 1024
                print(String(format: "plan %@ on %d ranks: %.1f MiB planned, %.1f MiB peak RSS measured (%+.1f%%)", preset, ranks,
                             planned / 1048576, measured / 1048576, 100 * (planned / measured - 1)))
                XCTAssertEqual(planned, measured, accuracy: 0.15 * measured, "\(preset) on \(ranks) ranks\n" + p.stdout)
            }
        }
    }

    /// Every ZeRO stage on 2 and 4 ranks: the plan against the largest rank's peak RSS, within 15%.
    /// GIFT_PLAN_MODELS lists the models (presets or `wide`: d 768, 16 layers, ff 2048, vocab 4096, made
    /// here); default `small`, which keeps the test short on 2 cores (`base` takes minutes a run here).
    /// A combination whose ranks together would need over half the node's available memory
    /// (GIFT_PLAN_MEMORY_SHARE: another fraction) is skipped, and says so.
    func testPlanMatchesPeakRSSForEveryStage() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: time.path), "GNU time not installed")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirun.path), "mpirun not installed")
        let models = (ProcessInfo.processInfo.environment["GIFT_PLAN_MODELS"] ?? "small").split(separator: ",").map(String.init)
        let share = Double(ProcessInfo.processInfo.environment["GIFT_PLAN_MEMORY_SHARE"] ?? "") ?? 0.5
        let root = try temporaryDirectory(self)
        var measuredAny = false
        for name in models {
            var model = name
            if name == "wide" {
                model = root.appendingPathComponent("wide").path
                let r = try runGift(["init", "--preset", "small", "--d-model", "768", "--layers", "16", "--heads", "12", "--ff", "2048",
                                     "--vocab", "4096", "--out", model])
                XCTAssertEqual(r.status, 0, r.stderr)
            }
            let config = try Plan.modelConfig(model)
            for ranks in [2, 4] {
                for zero in 0...3 {
                    var s = Plan.Settings()
                    s.ranks = ranks; s.zero = zero; s.microBatch = 8; s.seqLen = 16
                    let need = try Plan(config: config, s).totalBytes * ranks
                    if let avail = MemoryInfo.available(), Double(need) > share * Double(avail) {
                        print(String(format: "skipped %@ ZeRO %d on %d ranks: %.1f GiB for all ranks, over %.0f%% of the %.1f GiB available", name, zero,
                                     ranks, Double(need) / 0x1p30, 100 * share, Double(avail) / 0x1p30))
                        continue
                    }
                    let (pexe, pargs) = launch(ranks, ["plan", "--model", model, "--zero", "\(zero)", "--micro-batch", "8", "--seq", "16"])
                    let p = try runProcess(pexe, pargs, env: env)
                    XCTAssertEqual(p.status, 0, p.stderr)
                    let last = p.stdout.split(separator: "\n").last.map(String.init) ?? ""
                    let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as! [String: Any]
                    let planned = ((json["bytes_per_rank"] as! [String: Any])["total"] as! NSNumber).doubleValue
                    let (texe, targs) = launch(ranks, ["train", "--model", model, "--data", "countdown", "--task-examples", "600",
                                                       "--max-steps", "1", "--max-length", "16", "--micro-batch", "8", "--zero", "\(zero)",
                                                       "--out", root.appendingPathComponent("run-\(name)-\(ranks)-\(zero)").path])
                    let t = try runProcess(time, ["-v", texe.path] + targs, env: env)
                    XCTAssertEqual(t.status, 0, t.stderr)
                    guard let line = t.stderr.split(separator: "\n").first(where: { $0.contains("Maximum resident set size") }) else { continue }
                    let measured = Double(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))! * 1024
                    print(String(format: "plan %@ ZeRO %d on %d ranks: %.1f MiB planned, %.1f MiB peak RSS measured (%+.1f%%)", name, zero, ranks,
                                 planned / 1048576, measured / 1048576, 100 * (planned / measured - 1)))
                    XCTAssertEqual(planned, measured, accuracy: 0.15 * measured, "\(name) ZeRO \(zero) on \(ranks) ranks\n" + p.stdout)
                    measuredAny = true
                }
            }
        }
        XCTAssertTrue(measuredAny, "no combination fitted this node's memory")
    }

    func testPlanRefusesStagesItDoesNotKnow() throws {
        let r = try runGift(["plan", "--model", "tiny", "--zero", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("ZeRO stages are 0, 1, 2 and 3"), r.stderr)
    }

    func testPlanPartsFollowTheSizes() throws {
        let c = try ModelConfig.preset("small")
        let n = ParameterLayout(c).count
        let p0 = try Plan(config: c, ranks: 2, zero: 0, microBatch: 2, gradAccum: 1, seqLen: 64, precision: .fp32,
                          objective: .gift, nativeBF16: false, runtimeBytes: 0)
        let p1 = try Plan(config: c, ranks: 2, zero: 1, microBatch: 2, gradAccum: 1, seqLen: 64, precision: .fp32,
                          objective: .sft, nativeBF16: false, runtimeBytes: 0)
        func part(_ p: Plan, _ name: String) -> Int { p.parts.first { $0.name == name }!.bytes }
        XCTAssertEqual(part(p0, "moments"), 8 * n)
        XCTAssertEqual(part(p1, "moments"), 8 * shardRanges(count: n, parts: 2)[0].count)
        XCTAssertEqual(part(p0, "activations"), Activations(config: c, capacityTokens: 128, maxSeqLen: 64, training: true).bytes
                       + Activations(config: c, capacityTokens: 128, maxSeqLen: 64, training: false).bytes)
        // sft has no pass 1: fewer FLOPs than gift on the same batch
        XCTAssertLessThan(p1.flopsPerStep, p0.flopsPerStep)
    }

    /// LoRA on Dream-7B's shape against sizes computed here from its config: the stage's parts hold the
    /// adapters exactly (r·(in+out) per target per layer), the base is one frozen part (fp32 4·N, or bf16
    /// blocks 2·(N − O) + fp32 outer units 4·O) with no gradients or moments, the activations add the
    /// adapters' kept products, and the FLOPs drop the frozen matrices' weight gradients.
    func testLoRAPlanCountsAdaptersAndFreezesTheBase() throws {
        let c = try ModelConfig.preset("dream-7b")
        let d = 3584, kv = 512, ff = 18944, V = 152064, layers = 28, r = 128
        let B = 2 * d + 2 * d * d + 2 * kv * d + (d + 2 * kv) + 3 * ff * d, O = 2 * V * d + d
        XCTAssertEqual(O + layers * B, ParameterLayout(c).count)
        let perLayer: [String: Int] = ["q_proj": d + d, "k_proj": d + kv, "v_proj": d + kv, "o_proj": d + d,
                                       "gate_proj": d + ff, "up_proj": d + ff, "down_proj": ff + d]
        func plan(_ targets: String, zero: Int = 0, ranks: Int = 1, bf16Base: Bool = false, lora: Bool = true) throws -> Plan {
            var s = Plan.Settings()
            s.ranks = ranks; s.zero = zero; s.seqLen = 1024; s.objective = .sft; s.baseBF16 = bf16Base
            if lora { var l = LoRAConfig(); l.r = r; try l.setTargets(targets); s.lora = l }
            return try Plan(config: c, s)
        }
        for targets in ["q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "o_proj,gate_proj,down_proj"] {
            let names = targets.split(separator: ",").map(String.init)
            let A = layers * names.reduce(0) { $0 + r * perLayer[$1]! }
            let p = try plan(targets)
            XCTAssertEqual(p.lora?.count, A, targets)
            XCTAssertEqual(p.bytes("adapters"), 4 * A)
            XCTAssertEqual(p.bytes("gradients"), 4 * A)
            XCTAssertEqual(p.bytes("moments"), 8 * A)
            XCTAssertEqual(p.bytes("last_good_copy"), 4 * A)
            XCTAssertEqual(p.bytes("checkpoint_snapshot"), 12 * A)
            XCTAssertEqual(p.bytes("base"), 4 * (O + layers * B))
            // bf16: the blocks at 2 bytes, the outer parameters in fp32, and the running block decoded to fp32
            XCTAssertEqual(try plan(targets, bf16Base: true).bytes("base"), 2 * layers * B + 4 * O + 4 * B)
            XCTAssertEqual(try plan(targets, zero: 1, ranks: 2).bytes("moments"), 8 * shardRanges(count: A, parts: 2).map(\.count).max()!)
            // the adapters' products: u [T, r] per target and layer kept, and a [T, r] + [T, max in] scratch in
            // each of the training and inference runs (T = 1024 tokens)
            let full = try plan(targets, lora: false), T = 1024
            let maxIn = names.contains("down_proj") ? ff : d
            XCTAssertEqual(p.bytes("activations") - full.bytes("activations"), 4 * (layers * names.count * T * r + 2 * (T * r + T * maxIn)))
            // FLOPs: full − LoRA = the frozen matrices' weight gradients (2·T per weight, the head at the
            // masked rows) − the adapters' forward and backward (6·T·A)
            let masked = Double(T * 3 / 4 / 2)
            let weightGrads = 2 * Double(T) * Double(layers * (B - 2 * d - (d + 2 * kv))) + 2 * masked * Double(V * d)
            XCTAssertEqual(full.flopsPerStep - p.flopsPerStep, weightGrads - 6 * Double(T) * Double(A), accuracy: 1e-9 * full.flopsPerStep)
        }
        XCTAssertThrowsError(try plan("q_proj", zero: 3, ranks: 2)) { e in XCTAssertTrue("\(e)".contains("under LoRA only the adapters train"), "\(e)") }
        // the command: Dream's names, a LoRA summary line and the JSON's frozen base; LLaDA's names refused
        let ok = try runGift(["plan", "--model", "dream-7b", "--lora-r", "128", "--lora-targets", "o_proj,gate_proj,down_proj",
                              "--base-dtype", "bf16", "--seq", "1024", "--gflops", "100"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("LoRA r 128 on o_proj,gate_proj,down_proj"), ok.stdout)
        let json = try JSONSerialization.jsonObject(with: Data(ok.stdout.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual(((json["bytes_per_rank"] as! [String: Any])["base"] as! NSNumber).intValue, 2 * layers * B + 4 * O + 4 * B)
        let bad = try runGift(["plan", "--model", "dream-7b", "--lora-r", "8", "--lora-targets", "attn_out"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("this model is Dream: its targets are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"), bad.stderr)
    }

    /// ZeRO 2 and 3, recompute and bf16 reduction against the sizes computed here from the model's shape
    /// (N, the largest shard S, one block B, the bucket U, the outer units O), not from the plan's own code.
    func testShardedStagesFollowTheSizes() throws {
        let c = try ModelConfig.preset("small")
        let d = c.dModel, ff = c.mlpHiddenSize, kv = c.kvDim, V = c.vocab
        let B = 2 * d + 2 * d * d + 2 * kv * d + 3 * ff * d, O = 2 * V * d + d
        let N = O + c.nLayers * B
        XCTAssertEqual(N, ParameterLayout(c).count)
        let R = 3, S = (N + R - 1) / R, U = 4 * 262_144, G = max(B, V * d + d)   // the head's gradient is written whole
        func plan(_ zero: Int, recompute: Bool = false, bf16: Bool = false, accum: Int = 1, objective: ObjectiveKind = .gift) throws -> Plan {
            var s = Plan.Settings()
            s.ranks = R; s.zero = zero; s.microBatch = 2; s.seqLen = 64; s.recompute = recompute; s.gradReduceBF16 = bf16
            s.gradAccum = accum; s.objective = objective
            return try Plan(config: c, s)
        }
        let p2 = try plan(2), p3 = try plan(3)
        XCTAssertEqual(p2.bytes("parameters"), 4 * N)
        XCTAssertEqual(p3.bytes("parameters"), 4 * S + 4 * (O + 2 * B))
        for p in [p2, p3] {
            XCTAssertEqual(p.bytes("gradients"), 4 * S + 4 * (G + 2 * U))
            XCTAssertEqual(p.bytes("moments"), 8 * S)
            XCTAssertEqual(p.bytes("checkpoint_snapshot"), 12 * S)
            XCTAssertEqual(p.bytes("communication"), 0)
        }
        XCTAssertEqual(p2.bytes("last_good_copy"), 4 * N)
        XCTAssertEqual(p3.bytes("last_good_copy"), 4 * S)
        XCTAssertEqual(p3.bytes("export"), 4 * max(B, V * d + d))   // one unit at a time: the head (with ln_f) here
        XCTAssertEqual(try plan(3, bf16: true).bytes("communication"), 4 * U)
        XCTAssertEqual(try plan(0, bf16: true).bytes("communication"), 8 * U)
        XCTAssertEqual(try plan(1, bf16: true).bytes("communication"), 4 * min(N, R << 22))
        XCTAssertEqual(try plan(1).bytes("communication"), 4 * N)
        // recompute: the training arena of Activations built with recompute, and one more block forward
        let r = try plan(2, recompute: true)
        XCTAssertEqual(r.bytes("activations"), Activations(config: c, capacityTokens: 128, maxSeqLen: 64, training: true, recompute: true).bytes
                       + Activations(config: c, capacityTokens: 128, maxSeqLen: 64, training: false).bytes)
        XCTAssertLessThan(r.bytes("activations"), p2.bytes("activations"))
        let blockForward = Double(128) * Double(c.nLayers) * (2 * Double(B - 2 * d) + 4 * 64 * Double(d))
        XCTAssertEqual(r.flopsPerStep - p2.flopsPerStep, blockForward, accuracy: 1e-9 * blockForward)
        // bytes moved: ring volumes V·(R−1)/R
        func ring(_ v: Int) -> Int { v * (R - 1) / R }
        XCTAssertEqual(try plan(0).bytesMovedPerStep, ring(8 * N))
        XCTAssertEqual(try plan(0, bf16: true).bytesMovedPerStep, ring(6 * N))
        XCTAssertEqual(try plan(1).bytesMovedPerStep, ring(8 * N))
        XCTAssertEqual(try plan(2, accum: 3).bytesMovedPerStep, ring(3 * 4 * N + 4 * N))
        XCTAssertEqual(try plan(3, accum: 2).bytesMovedPerStep, ring(2 * (4 * N + 3 * 4 * (N - O)) + 4 * O))
        XCTAssertEqual(try plan(3, bf16: true, objective: .sft).bytesMovedPerStep, ring(2 * N + 2 * 4 * (N - O) + 4 * O))
        // --precision bf16: blocks and head gathered as bf16, the embedding in fp32
        var b16 = Plan.Settings(); b16.ranks = R; b16.zero = 3; b16.microBatch = 2; b16.seqLen = 64; b16.precision = .bf16
        XCTAssertEqual(try Plan(config: c, b16).bytesMovedPerStep, ring(4 * N + 2 * 3 * (N - O) + 4 * V * d + 2 * (V * d + d)))
        // the JSON line carries 64-bit figures (LLaDA-8B on 8 ranks moves ~56 GB a step)
        var big = Plan.Settings(); big.ranks = 8; big.zero = 1; big.seqLen = 64
        let b = try Plan(config: try ModelConfig.preset("llada-8b"), big)
        let json = try JSONSerialization.jsonObject(with: Data(b.report(gflops: 1).last!.utf8)) as! [String: Any]
        XCTAssertGreaterThan(b.bytesMovedPerStep, Int(Int32.max))
        XCTAssertEqual((json["bytes_moved_per_step"] as! NSNumber).intValue, b.bytesMovedPerStep)
        XCTAssertEqual((json["ranks"] as! NSNumber).intValue, 8)
        // one rank moves nothing
        var one = Plan.Settings(); one.zero = 3
        XCTAssertEqual(try Plan(config: c, one).bytesMovedPerStep, 0)
    }
}
