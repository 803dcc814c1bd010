import Foundation

/// The matmul kernels a run uses: backend, precision and, in bf16, the kernel. `gift train --gemm auto`
/// measures the candidates on the model's own GEMM shapes once at the start (`KernelChoice`), rank 0
/// tells every rank, and the choice is recorded in RUN_DIR/kernels.json and in every checkpoint's
/// manifest ("kernels"), so a resumed run runs the same kernels (the same summation order: it continues
/// bit-identically) without measuring again.
///
/// Not a run setting (`RunSettings`): it is what the machine measured, not what the user asked for (that
/// is `gemm`, "auto" or a backend by name). As a setting it would enter `gift help train`, config.json's
/// reference and the checkpoint compatibility check, where another machine's choice must not stop a resume.
public struct GemmKernels: Hashable, Sendable {
    public var backend: GemmBackend
    public var precision: Precision
    /// The bf16 kernel (`.emulated` in fp32, where it plays no part).
    public var bf16Kernel: BF16Kernel

    public init(backend: GemmBackend, precision: Precision, bf16Kernel: BF16Kernel = .emulated) {
        self.backend = backend; self.precision = precision
        self.bf16Kernel = precision == .bf16 ? bf16Kernel : .emulated
    }

    /// What `Gemm` runs now.
    public static var current: GemmKernels { GemmKernels(backend: Gemm.backend, precision: Gemm.precision, bf16Kernel: Gemm.bf16Kernel) }

    /// As `Gemm.summary`: "openblas fp32", "onednn bf16 (native)", ...
    public var summary: String {
        precision == .bf16 ? "\(backend.rawValue) bf16 (\(bf16Kernel.rawValue))" : "\(backend.rawValue) fp32"
    }

    /// Makes `Gemm` run these kernels (`reason`: the bf16 kernel's reason in the log).
    public func configure(reason: String) throws {
        try Gemm.configure(gemm: backend.rawValue, precision: precision, bf16Kernel: precision == .bf16 ? bf16Kernel : nil,
                           reason: reason)
    }

    var json: [String: Any] {
        ["backend": backend.rawValue, "precision": precision.rawValue, "bf16_kernel": bf16Kernel.rawValue, "summary": summary]
    }

    init(json o: [String: StrictJSON], source: String) throws {
        func field(_ k: String) throws -> String {
            guard case .string(let s)? = o[k] else { throw GiftError(.format, "\(source): field '\(k)' must be a string") }
            return s
        }
        guard let b = GemmBackend(rawValue: try field("backend")), let p = Precision(rawValue: try field("precision")),
              let k = BF16Kernel(rawValue: try field("bf16_kernel")) else {
            throw GiftError(.format, "\(source): unknown backend, precision or bf16 kernel")
        }
        self.init(backend: b, precision: p, bf16Kernel: k)
    }

    /// Two integers for a broadcast.
    public var code: [Int64] {
        [Int64(GemmBackend.allCases.firstIndex(of: backend)!), Int64(Precision.allCases.firstIndex(of: precision)!),
         bf16Kernel == .native ? 1 : 0]
    }
    public init?(code c: [Int64]) {
        guard c.count == 3, GemmBackend.allCases.indices.contains(Int(c[0])), Precision.allCases.indices.contains(Int(c[1])) else { return nil }
        self.init(backend: GemmBackend.allCases[Int(c[0])], precision: Precision.allCases[Int(c[1])],
                  bf16Kernel: c[2] == 1 ? .native : .emulated)
    }
}

/// Chooses a run's matmul kernels by timing them (`--gemm auto`): the candidates this process can load
/// (OpenBLAS with the core in effect; oneDNN f32; in bf16 the emulation on either backend and, on a CPU
/// with bf16 instructions, oneDNN's native bf16 kernel) on the linear layers' GEMMs at the run's tokens
/// per micro-batch: forward (x·Wᵀ), weight gradient (dyᵀ·x) and input gradient (dy·W) of qkv, attn_out,
/// ff_proj, ff_out and the head. Attention's batched products (one small GEMM per thread and row block)
/// run on OpenBLAS whatever the choice (under `Gemm.defaultOnednnMinWork`) and are not timed.
/// One choice for the whole run: the candidate with the least predicted GEMM time per micro-batch.
public enum KernelChoice {
    public enum ShapeClass: String, CaseIterable, Sendable { case forward, weightGrad = "weight grad", inputGrad = "input grad" }

    /// One timed GEMM: a layer's product at the run's shape (`rows`×`inDim`→`outDim`, `count` times per
    /// micro-batch) and the scaled-down shape that is timed when the real one is too large to time quickly.
    public struct Shape: Sendable, Equatable {
        public var layer: String, shapeClass: ShapeClass
        public var rows: Int, inDim: Int, outDim: Int, count: Int
        public var timed: (rows: Int, inDim: Int, outDim: Int)
        public var flops: Double { 2 * Double(rows) * Double(inDim) * Double(outDim) }
        public var timedFlops: Double { 2 * Double(timed.rows) * Double(timed.inDim) * Double(timed.outDim) }
        public static func == (a: Shape, b: Shape) -> Bool {
            a.layer == b.layer && a.shapeClass == b.shapeClass && a.rows == b.rows && a.inDim == b.inDim && a.outDim == b.outDim
                && a.count == b.count && a.timed == b.timed
        }
    }

    /// At most this many multiply-adds per timed GEMM: larger ones are scaled down in all three
    /// dimensions alike (their proportions kept), never below `Gemm.onednnMinWork` when the real one is
    /// above it (so the timed GEMM takes the same path as the real one).
    public static let maxTimedWork = 1 << 27

    /// The linear layers' GEMMs of `model` at `tokens` rows (micro-batch × sequence length).
    /// `classes`: the products the command runs (sampling runs the forward alone).
    public static func shapes(model c: ModelConfig, tokens: Int, maxWork: Int = maxTimedWork,
                              classes: [ShapeClass] = ShapeClass.allCases) -> [Shape] {
        let d = c.dModel, f = c.mlpHiddenSize
        let layers = [("qkv", d, d + 2 * c.kvDim, c.nLayers), ("attn_out", d, d, c.nLayers), ("ff_proj", d, 2 * f, c.nLayers),
                      ("ff_out", f, d, c.nLayers), ("head", d, c.vocab, 1)]
        var out: [Shape] = []
        for (name, inDim, outDim, count) in layers {
            let work = Double(tokens) * Double(inDim) * Double(outDim)
            var t = (rows: tokens, inDim: inDim, outDim: outDim)
            if work > Double(maxWork) {
                let s = cbrt(Double(maxWork) / work)
                t = (max(1, Int(Double(tokens) * s)), max(1, Int(Double(inDim) * s)), max(1, Int(Double(outDim) * s)))
                while work >= Double(Gemm.onednnMinWork) && t.rows * t.inDim * t.outDim < Gemm.onednnMinWork { t.rows += 1 }
            }
            for cls in classes {
                out.append(Shape(layer: name, shapeClass: cls, rows: tokens, inDim: inDim, outDim: outDim, count: count, timed: t))
            }
        }
        return out
    }

    /// The candidates for `precision` this process can load, in order of preference on a near tie
    /// (`choose`). `forced`: GIFT_BF16_KERNEL's kernel (bf16 only). `shapes`: a oneDNN candidate that
    /// would run none of them on oneDNN (all under `Gemm.onednnMinWork`) runs exactly what OpenBLAS runs
    /// and is left out.
    public static func candidates(precision: Precision, forced: BF16Kernel?, shapes: [Shape],
                                  onednn: Bool = Gemm.onednnAvailable, nativeBF16: Bool = Gemm.nativeBF16) -> [GemmKernels] {
        let usesOnednn = onednn && shapes.contains { $0.rows * $0.inDim * $0.outDim >= Gemm.onednnMinWork }
        if precision == .fp32 {
            return [GemmKernels(backend: .openblas, precision: .fp32)] + (usesOnednn ? [GemmKernels(backend: .onednn, precision: .fp32)] : [])
        }
        var c: [GemmKernels] = []
        if forced != .native {
            c.append(GemmKernels(backend: .openblas, precision: .bf16, bf16Kernel: .emulated))
            if usesOnednn { c.append(GemmKernels(backend: .onednn, precision: .bf16, bf16Kernel: .emulated)) }
        }
        // forced native: the one candidate (on a CPU without bf16 instructions it runs, slowly: tests use it)
        if forced == .native || (forced == nil && usesOnednn && nativeBF16) {
            c.append(GemmKernels(backend: .onednn, precision: .bf16, bf16Kernel: .native))
        }
        return c
    }

    /// Timings of every candidate on every shape: `seconds[c][s]`, the best of the timed repetitions of
    /// candidate c on shape s's timed (scaled) GEMM.
    public struct Table: Sendable {
        public var candidates: [GemmKernels]
        public var shapes: [Shape]
        public var seconds: [[Double]]
        public var note = ""

        public init(candidates: [GemmKernels], shapes: [Shape], seconds: [[Double]], note: String = "") {
            self.candidates = candidates; self.shapes = shapes; self.seconds = seconds; self.note = note
        }

        /// Candidate c's rate on one shape class (all layers): timed FLOPs over timed seconds, GFLOP/s.
        public func gflops(_ c: Int, _ cls: ShapeClass) -> Double {
            var f = 0.0, t = 0.0
            for (i, s) in shapes.enumerated() where s.shapeClass == cls { f += s.timedFlops * Double(s.count); t += seconds[c][i] * Double(s.count) }
            return t > 0 ? f / t / 1e9 : 0
        }

        /// Candidate c's predicted GEMM seconds per micro-batch: each real shape at its timed rate, times its count.
        public func predictedSeconds(_ c: Int) -> Double {
            shapes.indices.reduce(0) { acc, i in
                let s = shapes[i]
                return acc + Double(s.count) * s.flops * seconds[c][i] / max(s.timedFlops, 1)
            }
        }

        /// The model's GEMM rate with candidate c: real FLOPs over predicted seconds, GFLOP/s.
        public func overallGFlops(_ c: Int) -> Double {
            let f = shapes.reduce(0) { $0 + Double($1.count) * $1.flops }
            return f / max(predictedSeconds(c), 1e-30) / 1e9
        }

        /// Candidate c's predicted seconds per micro-batch on one shape class.
        public func predictedSeconds(_ c: Int, _ cls: ShapeClass) -> Double {
            shapes.indices.reduce(0) { acc, i in
                let s = shapes[i]
                return s.shapeClass == cls ? acc + Double(s.count) * s.flops * seconds[c][i] / max(s.timedFlops, 1) : acc
            }
        }

        /// The shape classes timed, in `ShapeClass` order.
        public var classes: [ShapeClass] { ShapeClass.allCases.filter { c in shapes.contains { $0.shapeClass == c } } }

        /// The fastest candidate of each shape class and the model's GEMM rate with that mix: what a choice
        /// per shape class would give (the log reports it; the run takes one candidate for all).
        public var perClass: (picks: [Int], gflops: Double) {
            var picks: [Int] = [], t = 0.0
            for cls in classes {
                let p = candidates.indices.map { predictedSeconds($0, cls) }
                let b = p.indices.min { p[$0] < p[$1] }!
                picks.append(b); t += p[b]
            }
            let f = shapes.reduce(0) { $0 + Double($1.count) * $1.flops }
            return (picks, f / max(t, 1e-30) / 1e9)
        }

        /// The table for the log: one line per candidate (GFLOP/s per shape class and overall), the chosen
        /// marked, and when the fastest differs by shape class, what choosing per class would give.
        public func lines(chosen: Int) -> [String] {
            let w = max(24, candidates.map { $0.summary.count }.max() ?? 0)
            var out = ["candidate".padding(toLength: w, withPad: " ", startingAt: 0) + "   GFLOP/s: "
                       + classes.map(\.rawValue).joined(separator: " | ") + " | model"]
            for (c, k) in candidates.enumerated() {
                out.append(k.summary.padding(toLength: w, withPad: " ", startingAt: 0) + "   "
                           + classes.map { String(format: "%.1f", gflops(c, $0)) }.joined(separator: " | ")
                           + String(format: " | %.1f", overallGFlops(c)) + (c == chosen ? "   <- chosen" : ""))
            }
            let pc = perClass
            if Set(pc.picks).count > 1 {
                out.append("per shape class the fastest are " + zip(classes, pc.picks).map { "\($0.rawValue) \(candidates[$1].summary)" }
                    .joined(separator: ", ") + String(format: ": %.1f GFLOP/s for the model, %+.0f%% over the chosen (one choice per run: not used)",
                                                       pc.gflops, 100 * (pc.gflops / overallGFlops(chosen) - 1)))
            }
            return out
        }

        var json: [String: Any] {
            ["candidates": candidates.enumerated().map { c, k -> [String: Any] in
                var o: [String: Any] = ["kernels": k.summary, "model_gflops": overallGFlops(c), "predicted_seconds_per_micro_batch": predictedSeconds(c)]
                for cls in classes { o[cls.rawValue.replacingOccurrences(of: " ", with: "_") + "_gflops"] = gflops(c, cls) }
                return o
            },
             "shapes": shapes.map { ["layer": $0.layer, "class": $0.shapeClass.rawValue, "rows": $0.rows, "in": $0.inDim, "out": $0.outDim,
                                     "count": $0.count, "timed": [$0.timed.rows, $0.timed.inDim, $0.timed.outDim]] }]
        }
    }

    /// Candidates whose predicted time is within this fraction of the fastest count as a tie, broken by
    /// the order of `candidates` (OpenBLAS, then the emulation, first): a near tie is no reason to change
    /// kernels, and a noise-level difference then changes nothing.
    public static let tieFraction = 0.02

    /// The chosen candidate's index: the least predicted GEMM time per micro-batch, ties (within
    /// `tieFraction`) to the earliest. A pure function of the table.
    public static func choose(_ t: Table) -> Int {
        precondition(!t.candidates.isEmpty)
        let p = t.candidates.indices.map { t.predictedSeconds($0) }
        let best = p.min()!
        return p.firstIndex { $0 <= best * (1 + tieFraction) }!
    }

    /// Times every candidate on every shape, one candidate after the other: an untimed round first
    /// (oneDNN prepares its primitives, and the previous library's worker threads, which spin for a while
    /// after their last task, go to sleep: at least `settle` seconds pass before the first timed GEMM;
    /// interleaving the candidates GEMM by GEMM would time each against the other's spinning threads),
    /// then up to `rounds` timed rounds within its share of `budget` (at least one); each time is the best
    /// of its rounds. Weights come from the bf16 mirror as in training. Leaves `Gemm` configured as the
    /// last candidate: callers configure the chosen one.
    public static func measure(candidates: [GemmKernels], shapes: [Shape], rounds: Int = 3, budget: Double = 1.0,
                               settle: Double = 0.15) throws -> Table {
        let maxX = shapes.map { $0.timed.rows * max($0.timed.inDim, $0.timed.outDim) }.max() ?? 0
        let maxW = shapes.map { $0.timed.inDim * $0.timed.outDim }.max() ?? 0
        let x = FloatBuffer(count: maxX), dy = FloatBuffer(count: maxX), y = FloatBuffer(count: maxX), dx = FloatBuffer(count: maxX)
        let w = FloatBuffer(count: maxW), dw = FloatBuffer(count: maxW)
        for i in 0..<maxX { x.pointer[i] = Float(i % 7) * 0.01 - 0.03; dy.pointer[i] = Float(i % 5) * 0.01 - 0.02 }
        for i in 0..<maxW { w.pointer[i] = Float(i % 11) * 0.01 - 0.05 }
        var seconds = [[Double]](repeating: [Double](repeating: .infinity, count: shapes.count), count: candidates.count)
        let t0 = Date()
        func round(_ c: Int, timed: Bool) {
            for (i, s) in shapes.enumerated() {
                let (r, n, o) = s.timed
                let start = DispatchTime.now().uptimeNanoseconds
                switch s.shapeClass {
                case .forward: Gemm.linear(x.pointer, w.pointer, y.pointer, rows: r, inDim: n, outDim: o)
                case .weightGrad: Gemm.linearBackward(x: x.pointer, w: w.pointer, dy: dy.pointer, dx: nil, dw: dw.pointer,
                                                      rows: r, inDim: n, outDim: o)
                case .inputGrad: Gemm.linearBackward(x: x.pointer, w: w.pointer, dy: dy.pointer, dx: dx.pointer, dw: nil,
                                                     rows: r, inDim: n, outDim: o)
                }
                if timed { seconds[c][i] = min(seconds[c][i], Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
        }
        let share = budget / Double(max(1, candidates.count))
        for (c, k) in candidates.enumerated() {
            try k.configure(reason: "timed")
            Gemm.withWeightMirror(w.pointer, count: maxW) {
                let switched = Date()
                round(c, timed: false)
                let wait = settle - Date().timeIntervalSince(switched)
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                let start = Date()
                for r in 0..<max(1, rounds) {
                    if r > 0 && Date().timeIntervalSince(start) > share { break }
                    round(c, timed: true)
                }
            }
        }
        return Table(candidates: candidates, shapes: shapes, seconds: seconds,
                     note: String(format: "measured in %.2f s", Date().timeIntervalSince(t0)))
    }

    /// A measured choice: the kernels, the table it was made from, and the lines the log shows.
    public struct Choice {
        public var kernels: GemmKernels, table: Table, lines: [String]
        /// Where the choice came from, for the record: "the only candidate", "measured", ...
        public var source: String {
            table.candidates.count == 1 ? "the only candidate"
                : table.note.hasPrefix("injected") ? "injected timings"
                : table.note.hasPrefix("measured in") ? "measured" : "measured earlier on this machine"
        }
    }

    /// Chooses the kernels for `model` at `tokens` rows per GEMM (`what` names them in the log, e.g.
    /// "micro-batch 4 × 512"), without configuring them. Every command that runs a model under `--gemm auto`
    /// goes through here (train broadcasts and records the result: `Trainer.chooseKernels`).
    public static func choose(model: ModelConfig, tokens: Int, what: String, precision: Precision,
                              classes: [ShapeClass] = ShapeClass.allCases) throws -> Choice {
        let forced = try Gemm.environmentBF16Kernel(precision: precision)
        let t = try table(model: model, tokens: tokens, precision: precision, forced: forced, classes: classes)
        let c = choose(t)
        let k = t.candidates[c]
        var lines: [String]
        if t.candidates.count == 1 {
            lines = ["kernels: \(k.summary), the only candidate here (\(whyOneCandidate(forced: forced)))"]
        } else {
            let products = classes == ShapeClass.allCases ? "" : " (" + classes.map(\.rawValue).joined(separator: ", ") + ")"
            lines = ["kernels: timed at \(tokens) tokens (\(what)) on the linear layers' GEMMs\(products) (\(t.note)); attention's per-thread products stay on OpenBLAS:"]
            lines += t.lines(chosen: c).map { "  " + $0 }
            lines.append("kernels: \(k.summary) chosen" + (forced.map { " (GIFT_BF16_KERNEL=\($0.rawValue))" } ?? ""))
        }
        return Choice(kernels: k, table: t, lines: lines)
    }

    static func whyOneCandidate(forced: BF16Kernel?) -> String {
        if forced == .native { return "GIFT_BF16_KERNEL=native" }
        if !Gemm.onednnAvailable { return "oneDNN: \(Gemm.onednnDescription)" }
        return "every GEMM of this model is under \(Gemm.onednnMinWork) multiply-adds, where oneDNN's backend runs OpenBLAS too"
            + (forced == .emulated ? "; GIFT_BF16_KERNEL=emulated" : "")
    }

    /// Test aid: GIFT_KERNEL_TIMINGS="onednn fp32=200;openblas fp32=100" (kernels summary = GFLOP/s on
    /// every shape) replaces the measurement, so tests can make any candidate win whatever the machine.
    /// Candidates it does not name are left out.
    static func injected(_ spec: String, candidates: [GemmKernels], shapes: [Shape]) throws -> Table {
        var rate: [String: Double] = [:]
        for part in spec.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let r = Double(kv[1].trimmingCharacters(in: .whitespaces)), r > 0 else {
                throw GiftError(.usage, "GIFT_KERNEL_TIMINGS: '\(part)' is not KERNELS=GFLOPS")
            }
            rate[kv[0].trimmingCharacters(in: .whitespaces)] = r
        }
        let named = candidates.filter { rate[$0.summary] != nil }
        guard !named.isEmpty else { throw GiftError(.usage, "GIFT_KERNEL_TIMINGS names none of the candidates (\(candidates.map(\.summary).joined(separator: ", ")))") }
        return Table(candidates: named, shapes: shapes,
                     seconds: named.map { k in shapes.map { $0.timedFlops / (rate[k.summary]! * 1e9) } }, note: "injected by GIFT_KERNEL_TIMINGS")
    }

    nonisolated(unsafe) private static var cache: [String: Table] = [:]
    private static let cacheLock = NSLock()

    /// The table for a run: measured once per process for the same shapes, candidates and threads (a
    /// second run in the same process, as `gift compare` makes, reuses it) and once per machine
    /// (`KernelCache`: a later run with the same key takes the stored timings, so it chooses as the last
    /// one did), or injected (GIFT_KERNEL_TIMINGS). `warning` gets the cache's complaints.
    public static func table(model: ModelConfig, tokens: Int, precision: Precision, forced: BF16Kernel?,
                             classes: [ShapeClass] = ShapeClass.allCases, warning: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) }) throws -> Table {
        let s = shapes(model: model, tokens: tokens, classes: classes)
        let c = candidates(precision: precision, forced: forced, shapes: s)
        if let spec = ProcessInfo.processInfo.environment["GIFT_KERNEL_TIMINGS"], !spec.isEmpty {
            return try injected(spec, candidates: c, shapes: s)
        }
        if c.count == 1 {
            return Table(candidates: c, shapes: s, seconds: [s.map { _ in 0 }], note: "the only candidate")
        }
        let key = KernelCache.key(candidates: c, shapes: s)
        cacheLock.lock(); defer { cacheLock.unlock() }
        if let t = cache[key] { return t }
        let file = KernelCache.path
        var t: Table
        if let file, let hit = KernelCache.lookup(key: key, candidates: c, shapes: s.count, at: file, warning: warning) {
            t = Table(candidates: c, shapes: s, seconds: hit.seconds,
                      note: "measured \(hit.measured) on this machine, kept in \(file); delete it or set GIFT_KERNEL_CACHE=off to measure again")
        } else {
            t = try measure(candidates: c, shapes: s)
            if let file {
                KernelCache.store(key: key, table: t, at: file, warning: warning)
                t.note += ", kept in \(file) for the next runs"
            } else {
                t.note += ", GIFT_KERNEL_CACHE=off: not kept"
            }
        }
        cache[key] = t
        return t
    }
}

extension KernelChoice {
    /// Rank 0's kernels on every rank: `decide` runs on rank 0 alone (a measurement on every rank at once
    /// would time each against the others, and could choose differently), its choice is broadcast, and
    /// every rank configures it (`reason`: why, for the log; other ranks say "rank 0's choice"). A rank that
    /// cannot load the kernels stops the job with one message.
    public static func agree(comm: Communicator, reason: () -> String, decide: () throws -> GemmKernels) throws -> GemmKernels {
        var code: [Int64] = comm.rank == 0 ? try decide().code : [0, 0, 0]
        if comm.size > 1 {
            try code.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        }
        guard let k = GemmKernels(code: code) else { throw GiftError(.mismatch, "kernels: rank 0 sent an unknown choice \(code)") }
        var failure: String?
        do { try k.configure(reason: comm.rank == 0 ? reason() : "rank 0's choice") } catch { failure = "\(error)" }
        if comm.size > 1 {
            var bad = [failure == nil ? 0.0 : 1.0]
            try comm.allreduceSum(&bad)
            if bad[0] > 0 {
                throw GiftError(.mismatch, "kernels: \(Int(bad[0])) of \(comm.size) ranks cannot run the \(k.summary) rank 0 chose"
                                + (failure.map { " (this rank: \($0))" } ?? "") + "; every rank must be able to load the same libraries")
            }
        } else if let failure { throw GiftError(.usage, failure) }
        return k
    }

    /// `choose` on rank 0 and `agree` on every rank: the commands that need no record (generate, eval,
    /// inspect, bench). Returns rank 0's log lines (empty on the others).
    public static func settle(comm: Communicator, model: ModelConfig, tokens: Int, what: String, precision: Precision,
                              classes: [ShapeClass] = ShapeClass.allCases) throws -> [String] {
        var chosen: Choice?
        _ = try agree(comm: comm, reason: { chosen?.source ?? "" }) {
            let c = try choose(model: model, tokens: tokens, what: what, precision: precision, classes: classes)
            chosen = c
            return c.kernels
        }
        return chosen?.lines ?? []
    }
}
