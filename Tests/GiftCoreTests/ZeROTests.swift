import Foundation
import XCTest
@testable import GiftCore

/// ZeRO-2 (gradients reduce-scattered bucket by bucket during backward into a shard) and ZeRO-3
/// (parameters sharded, each block gathered before it runs) train the same model as ZeRO-0.
/// In one process with one micro-batch per step the arithmetic is the same operations in the same
/// order (a gather copies exact values, a one-rank reduce-scatter copies the sum), so the runs are
/// bit-identical; across ranks the sums' order changes and the trajectory bound applies (MPITests).
final class ZeROTests: XCTestCase {
    func run(_ c: RunConfig, steps: Int) throws -> ([Double], [Float], Trainer) {
        let t = try makeTrainer(c)
        var losses: [Double] = []
        for s in 0..<steps { losses.append(try t.step(s).stats.loss) }
        let p = t.sharded.map { try! $0.materialize().array } ?? t.trainable.array
        return (losses, p, t)
    }

    /// ZeRO-2 and ZeRO-3, each with and without recompute, against ZeRO-0 on one rank (`stages`: which).
    func checkOneRankStagesBitIdentical(model: String, stages: [(Int, Recompute)]) throws {
        let d = try temporaryDirectory(self)
        var base = tinyTrainConfig(.gift, dir: d, steps: 4)
        base.model = model
        base.microBatch = 8; base.bucketMB = 0.01   // many buckets, cut through tensors
        let (l0, p0, _) = try run(base, steps: 4)
        for (zero, recompute) in stages {
            var c = base; c.zero = zero; c.recompute = recompute
            let (l, p, t) = try run(c, steps: 4)
            XCTAssertEqual(l, l0, "ZeRO-\(zero) recompute \(recompute): losses")
            let differing = zip(p, p0).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(differing, 0, "ZeRO-\(zero) recompute \(recompute): \(differing) of \(p.count) parameters differ")
            if zero == 3 {
                // after a step nothing stays gathered: the view's pages are given back
                XCTAssertLessThan(t.sharded!.view.residentBytes, 4 * 4096, "gathered weights left resident")
            }
            XCTAssertLessThan((t.stage as! ShardedGradientsStage).gradientPages.residentBytes, 4 * 4096, "gradient pages left resident")
        }
    }

    func testOneRankStagesAreBitIdentical() throws {
        try checkOneRankStagesBitIdentical(model: "tiny", stages: [2, 3].flatMap { z in [Recompute.none, .blocks].map { (z, $0) } })
    }

    /// Dream's biases and gathered units through ZeRO-3's gathers and recompute: ZeRO-0's bits.
    func testDreamZeroThreeRecomputeIsBitIdentical() throws {
        try checkOneRankStagesBitIdentical(model: "dream-tiny", stages: [(3, .blocks)])
    }

    /// With micro-batches accumulated, ZeRO-2/3 reduce each micro-batch into the shard (ZeRO-0 sums the
    /// micro-batches in the gradient buffer first): the same sums in another order.
    func testAccumulatedMicroBatchesAgree() throws {
        let d = try temporaryDirectory(self)
        var base = tinyTrainConfig(.gift, dir: d, steps: 3)
        base.microBatch = 4; base.gradAccum = 2
        let (l0, p0, _) = try run(base, steps: 3)
        var c = base; c.zero = 3
        let (l3, p3, _) = try run(c, steps: 3)
        let mc = try ModelConfig.preset(base.model)
        // one step's gradients differ by reassociation of a sum of two micro-batches: the loss of step 1
        // is computed before any update (equal), later ones within the trajectory model's bound
        XCTAssertEqual(l0[0], l3[0])
        let traj = SummationOrderTrajectory(config: mc, seqLen: base.maxLength, globalTokens: 8 * base.maxLength)
        let lrs = (0..<3).map { base.schedule.lr(step: $0, total: 3, warmup: LRSchedule.warmupSteps(ratio: base.warmupRatio, total: 3), base: base.lr, minRatio: 0) }
        let bound = traj.maxParameterDifference(lrs: lrs).last!
        var worst: Float = 0
        for i in 0..<p0.count { worst = max(worst, abs(p0[i] - p3[i])) }
        XCTAssertLessThan(Double(worst), bound, "max|Δp| \(worst)")
        XCTAssertGreaterThan(bound, 0)
    }

    /// --precision bf16: ZeRO-3 gathers the matrices as bf16 (which their GEMMs would round to anyway) and
    /// the embedding and norms in fp32, so the run is bit-identical to ZeRO-0's bf16 run, in half the bytes.
    func testBF16GatherIsExactUnderBF16Precision() throws {
        let d = try temporaryDirectory(self)
        var base = tinyTrainConfig(.gift, dir: d, steps: 3)
        base.microBatch = 8; base.precision = .bf16; base.gemm = .openblas
        defer { resetBackend() }
        let (l0, p0, _) = try run(base, steps: 3)
        var c = base; c.zero = 3
        let (l3, p3, t) = try run(c, steps: 3)
        XCTAssertEqual(l3, l0)
        XCTAssertEqual(zip(p3, p0).filter { $0.0.bitPattern != $0.1.bitPattern }.count, 0, "parameters differ")
        XCTAssertTrue(t.sharded!.bf16Matrices)
        // the gathered block matrices were bf16 values, the norms exact fp32 (not bf16-representable here)
        var fp32Norms = false
        for n in t.model.layout.tensors where n.isNorm { fp32Norms = fp32Norms || (0..<n.count).contains { p3[n.offset + $0] != BFloat16.round(p3[n.offset + $0]) } }
        XCTAssertTrue(fp32Norms, "the norms stayed fp32 in the master weights")
    }

    func testZeroThreeRefusesLoRA() throws {
        let d = try temporaryDirectory(self)
        var c = tinyTrainConfig(.sft, dir: d, steps: 1); c.zero = 3; c.lora.r = 2
        XCTAssertThrowsError(try makeTrainer(c)) { e in
            XCTAssertTrue("\(e)".contains("--zero 3"), "\(e)")
        }
    }

    func testPiecesOfShards() {
        let shards = shardRanges(count: 10, parts: 3)   // 0..<3, 3..<6, 6..<10
        XCTAssertEqual(piecesOf(2..<7, shards: shards), [0..<1, 1..<4, 4..<5])
        XCTAssertEqual(piecesOf(7..<9, shards: shards), [0..<0, 0..<0, 0..<2])
        XCTAssertEqual(piecesOf(0..<3, shards: shards), [0..<3, 3..<3, 3..<3])
    }

    func testReservedFloatsDiscardZeroesExactlyTheRange() throws {
        let r = try ReservedFloats(count: 5000, what: "test")
        for i in 0..<5000 { r.pointer[i] = Float(i + 1) }
        r.discard(1000..<4500)
        // pages 1-3 are inside the range and given back; 0 and 4 hold kept floats (measured before the
        // reads below, which map the zero page back in)
        XCTAssertEqual(r.residentBytes, 2 * 4096)
        for i in [0, 999, 4500, 4999] { XCTAssertEqual(r.pointer[i], Float(i + 1)) }
        for i in [1000, 1023, 1024, 2047, 4095, 4096, 4499] { XCTAssertEqual(r.pointer[i], 0, "\(i)") }
    }
}

/// Real `mpirun` jobs: every stage, with and without recomputation, on 1, 2 and 4 ranks trains the
/// model of ZeRO-0 on one rank (losses within the summation-order trajectory bound and 1e-5 relative,
/// final parameters within 1e-5), and a ZeRO-3 checkpoint resumes on another rank count and stage.
final class ZeROMPITests: XCTestCase {
    let mpirun = mpirunURL, env = mpiTestEnvironment

    override func setUpWithError() throws { try skipUnlessMPI() }

    func args(out: URL, ranks: Int, steps: Int = 12, model: String = "tiny", extra: [String] = []) -> [String] {
        ["train", "--model", model, "--data", "countdown", "--task-examples", "600", "--max-steps", "\(steps)",
         "--lr", "3e-3", "--seed", "5", "--objective", "gift", "--max-length", "48", "--eval-every", "6",
         "--micro-batch", "\(16 / ranks)", "--bucket-mb", "0.05", "--out", out.path] + extra
    }

    func train(_ ranks: Int, _ a: [String]) throws -> RunResult {
        let r = ranks == 1 ? try runGift(a, env: env)
            : try runProcess(mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path] + a, env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r
    }

    func parameters(_ run: URL) throws -> FloatBuffer { try ModelFolder.load(run.appendingPathComponent("model").path).1 }

    /// `cap`: a fixed bound on the final parameters' difference besides the trajectory model's (the issue's
    /// 1e-5 for tiny); nil: the trajectory model's alone.
    func assertSameModel(_ reference: URL, _ other: URL, what: String, preset: String = "tiny", cap: Double? = 1e-5,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        try assertSamePresetTraining(reference, other, preset: preset, file: file, line: line)
        let a = try MetricsWriter.read(reference.appendingPathComponent("metrics.jsonl").path)
        let b = try MetricsWriter.read(other.appendingPathComponent("metrics.jsonl").path)
        for (x, y) in zip(a, b) {
            let u = (x["loss"] as! NSNumber).doubleValue, v = (y["loss"] as! NSNumber).doubleValue
            XCTAssertLessThanOrEqual(abs(u - v), 1e-5 * abs(u), "\(what): step \(x["step"]!) loss \(u) vs \(v)", file: file, line: line)
        }
        let p = try parameters(reference), q = try parameters(other)
        XCTAssertEqual(p.count, q.count, file: file, line: line)
        var worst: Float = 0
        for i in 0..<p.count { worst = max(worst, abs(p[i] - q[i])) }
        let lrs = a.map { ($0["lr"] as! NSNumber).doubleValue }
        let bound = try MPITests.trajectory(preset: preset).maxParameterDifference(lrs: lrs).last!
        print(String(format: "%@: max|Δp| %.3g (trajectory bound %.3g)", what, Double(worst), bound))
        XCTAssertLessThan(Double(worst), min(bound, cap ?? bound), "\(what): final parameters", file: file, line: line)
    }

    func testEveryStageAndRecomputeOnOneTwoFourRanks() throws {
        let ref = try temporaryDirectory(self)
        _ = try train(1, args(out: ref, ranks: 1))
        for ranks in [1, 2, 4] {
            for zero in 0...3 {
                for recompute in ["none", "blocks"] where !(ranks == 1 && zero == 0 && recompute == "none") {
                    // the matrix without its most redundant corners: on 1 rank ZeRO-1 is ZeRO-0
                    if ranks == 1 && zero == 1 { continue }
                    let out = try temporaryDirectory(self)
                    let r = try train(ranks, args(out: out, ranks: ranks, extra: ["--zero", "\(zero)", "--recompute", recompute]))
                    try assertSameModel(ref, out, what: "\(ranks) ranks ZeRO-\(zero) recompute \(recompute)")
                    if ranks > 1 && zero == 3 { XCTAssertTrue(r.stderr.contains("parameter bytes gathered"), r.stderr) }
                }
            }
        }
    }

    /// Dream on 2 ranks with ZeRO-3 and recompute trains ZeRO-0's model of 1 rank, as LLaDA does.
    func testDreamZeroThreeRecomputeOnTwoRanks() throws {
        let ref = try temporaryDirectory(self), out = try temporaryDirectory(self)
        _ = try train(1, args(out: ref, ranks: 1, steps: 6, model: "dream-tiny"))
        let r = try train(2, args(out: out, ranks: 2, steps: 6, model: "dream-tiny", extra: ["--zero", "3", "--recompute", "blocks"]))
        XCTAssertTrue(r.stderr.contains("parameter bytes gathered"), r.stderr)
        // the bound derived for dream-tiny's shape and this run's lrs (LLaDA's fixed 1e-5 is a figure for tiny;
        // measured here 1.1e-5 against a bound of 2.6e-5)
        try assertSameModel(ref, out, what: "Dream: 2 ranks ZeRO-3 recompute blocks", preset: "dream-tiny", cap: nil)
    }

    /// A ZeRO-3 checkpoint of 2 ranks: resumed on 2 ranks ZeRO-3 it continues bit-identically; on 4 ranks
    /// ZeRO-2 and on 1 rank ZeRO-0 it continues the same training (summation order from step 7 on).
    func testResumeZeroThreeCheckpointElsewhere() throws {
        let full = try temporaryDirectory(self)
        _ = try train(2, args(out: full, ranks: 2, extra: ["--zero", "3"]))
        func part(_ ranks: Int, _ zero: Int) throws -> URL {
            let d = try temporaryDirectory(self)
            _ = try train(2, args(out: d, ranks: 2, extra: ["--zero", "3", "--checkpoint-every", "6", "--stop-at-step", "6"]))
            let r = try train(ranks, args(out: d, ranks: ranks, extra: ["--zero", "\(zero)", "--resume", "auto"]))
            XCTAssertTrue(r.stderr.contains("written by 2 ranks, now \(ranks)"), r.stderr)
            return d
        }
        let same = try part(2, 3)
        XCTAssertEqual(try stepLosses(same), try stepLosses(full), "resumed ZeRO-3 run on 2 ranks")
        let p = try parameters(full), q = try parameters(same)
        XCTAssertEqual((0..<p.count).filter { p[$0].bitPattern != q[$0].bitPattern }.count, 0, "bit-identical parameters")
        for (ranks, zero) in [(4, 2), (1, 0)] {
            let d = try part(ranks, zero)
            try assertSameModel(full, d, what: "ZeRO-3 checkpoint resumed on \(ranks) ranks ZeRO-\(zero)")
        }
    }

    /// ZeRO-3 from a sharded bf16 folder: each rank reads its shard's byte ranges; the model written at the
    /// end (streamed unit by unit by rank 0) is like the source (bf16, the same shards and index) and holds
    /// ZeRO-0's model, up to one bf16 rounding step where summation order moved a value across a boundary.
    func testShardedFolderInAndOut() throws {
        let dir = try temporaryDirectory(self)
        let src = dir.appendingPathComponent("src")
        XCTAssertEqual(try runGift(["init", "--preset", "tiny", "--dtype", "bf16", "--max-shard-bytes", "60000", "--out", src.path]).status, 0)
        let ref = dir.appendingPathComponent("ref"), z3 = dir.appendingPathComponent("z3")
        func a(_ out: URL, _ ranks: Int) -> [String] {
            ["train", "--model", src.path, "--data", "countdown", "--task-examples", "600", "--max-steps", "6", "--lr", "3e-3",
             "--seed", "5", "--max-length", "48", "--micro-batch", "\(16 / ranks)", "--eval-every", "0", "--out", out.path]
        }
        _ = try train(1, a(ref, 1))
        _ = try train(2, a(z3, 2) + ["--zero", "3"])
        let files = { (u: URL) in try FileManager.default.contentsOfDirectory(atPath: u.appendingPathComponent("model").path).sorted() }
        XCTAssertEqual(try files(z3), try files(ref))
        XCTAssertGreaterThan(try files(z3).filter { $0.hasSuffix(".safetensors") }.count, 2)
        XCTAssertEqual(try Data(contentsOf: z3.appendingPathComponent("model/model.safetensors.index.json")),
                       try Data(contentsOf: ref.appendingPathComponent("model/model.safetensors.index.json")))
        let p = try parameters(ref), q = try parameters(z3)
        // the fp32 trajectories differ by at most the summation-order bound; rounding both to bf16 adds at
        // most one bf16 step (at most 2⁻⁷ of the larger: 8 significant bits) on top
        let lrs = try MetricsWriter.read(ref.appendingPathComponent("metrics.jsonl").path).map { ($0["lr"] as! NSNumber).doubleValue }
        let bound = try MPITests.trajectory().maxParameterDifference(lrs: lrs).last!
        var moved = 0
        for i in 0..<p.count where p[i] != q[i] {
            moved += 1
            let tol = Double(max(abs(p[i]), abs(q[i]))) / 128 + bound
            if Double(abs(p[i] - q[i])) > tol { XCTFail("entry \(i): \(p[i]) vs \(q[i]), more than \(tol) apart"); break }
        }
        XCTAssertLessThan(moved, p.count / 100, "\(moved) of \(p.count) entries differ")
        XCTAssertEqual(try stepLosses(ref).count, try stepLosses(z3).count)
    }

    /// --grad-reduce-dtype bf16: half the gradient bytes on the wire; the training follows the fp32 one
    /// to bf16's precision (each rank's contribution rounded: relative 2⁻⁹ per gradient entry).
    func testBF16GradientReduce() throws {
        let ref = try temporaryDirectory(self), a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        let r32 = try train(2, args(out: ref, ranks: 2, extra: ["--zero", "2"]))
        let r16 = try train(2, args(out: a, ranks: 2, extra: ["--zero", "2", "--grad-reduce-dtype", "bf16"]))
        _ = try train(2, args(out: b, ranks: 2, extra: ["--grad-reduce-dtype", "bf16"]))
        func reduced(_ s: String) -> Int? {
            s.range(of: #"gradient bytes reduced by this rank: (\d+)"#, options: .regularExpression)
                .flatMap { Int(s[$0].split(separator: " ").last!) }
        }
        XCTAssertEqual(reduced(r16.stderr).map(Double.init), reduced(r32.stderr).map { Double($0) / 2 })
        let l32 = try stepLosses(ref), l16 = try stepLosses(a), l0 = try stepLosses(b)
        // step 1 is before any update: the same loss; later steps follow within a loose behavioural band
        XCTAssertEqual(l16[0], l32[0])
        for (x, y) in zip(l32, l16) { XCTAssertEqual(x, y, accuracy: 0.02 * x) }
        for (x, y) in zip(l32, l0) { XCTAssertEqual(x, y, accuracy: 0.02 * x) }
        XCTAssertNotEqual(l16, l32, "bf16 on the wire changed nothing: not applied?")
    }
}

/// ZeRO-3's gathers are collective, so a rank whose batch has nothing to compute (no response row for
/// pass 1, no masked row for pass 2) must still walk the blocks the others' forward gathers.
final class CollectivePassTests: XCTestCase {
    final class Recorder: BlockWeightSource {
        var events: [String] = []
        func acquire(block: Int) { events.append("a\(block)") }
        func release(block: Int) { events.append("r\(block)") }
        func begin(_ pass: WeightPass) { events.append(pass == .forward ? "F" : "B") }
        var isCollective: Bool { true }
    }

    func testAnEmptyBatchAsksForTheSameBlocks() throws {
        let c = try ModelConfig.preset("tiny")
        let model = Transformer(config: c, maxSeqLen: 16)
        let params = model.layout.initialize(seed: 1)
        let rec = Recorder()
        model.weightSource = rec
        let runner = ObjectiveRunner(model: model, options: ObjectiveOptions(kind: .gift), capacityTokens: 32, maxSeqLen: 16)
        func events(_ seqs: [TrainSequence]) -> [String] {
            rec.events = []
            runner.run(params.pointer, grads: nil, seqs, seed: 1, step: 0, normalizer: .of(seqs))
            return rec.events
        }
        let tokens = (0..<12).map { Int32($0 % 40) }
        let normal = [TrainSequence(tokens: tokens, promptLength: 4, exampleIndex: 0)]
        let empty = [TrainSequence(tokens: tokens, promptLength: 12, exampleIndex: 1)]   // no response at all
        let a = events(normal), b = events(empty)
        XCTAssertEqual(a.filter { $0 == "F" }.count, 2, "pass 1 and pass 2 forwards: \(a)")
        XCTAssertEqual(b, a)
    }
}
