import Foundation

/// The run's matmul kernels (`GemmKernels`), settled before the first step: `--gemm auto` takes the
/// kernels a checkpoint being resumed recorded, else rank 0 measures the candidates on the model's GEMM
/// shapes (`KernelChoice`) and broadcasts its choice, so every rank runs the same kernels (the handshake
/// then checks it). `--gemm openblas|onednn` is used as given (no measurement). The choice goes to
/// RUN_DIR/kernels.json (with the table) and into every checkpoint's manifest.
extension Trainer {
    /// What a resumed checkpoint says about its kernels.
    enum RecordedKernels {
        case none                              // not resuming, or no checkpoint to resume
        case older(path: String)               // a checkpoint without the record (written before it existed)
        case recorded(GemmKernels, path: String)
    }

    /// The kernels recorded in the checkpoint `spec` names ("auto": the run's newest one whose manifest
    /// reads; the resume proper verifies the shards and falls back further if they are damaged).
    static func recordedKernels(resumeSpec spec: String?, runDir: String) -> RecordedKernels {
        guard let spec else { return .none }
        let paths = spec == "auto" ? Checkpoint.candidates(in: runDir + "/checkpoints").map(\.path) : [spec]
        for p in paths {
            guard let m = try? Manifest.read(p + "/manifest.json") else { continue }
            return m.kernels.map { .recorded($0, path: p) } ?? .older(path: p)
        }
        return .none
    }

    /// Settles the kernels (collective) and returns the lines rank 0 logs about them.
    @discardableResult
    func chooseKernels(outDir: String) throws -> [String] {
        let isRoot = comm.rank == 0
        var lines: [String] = []
        var table: KernelChoice.Table?
        var source = ""
        let env = ProcessInfo.processInfo.environment["GIFT_BF16_KERNEL"] ?? ""
        let forced: BF16Kernel?
        if cfg.precision == .bf16 && !env.isEmpty {
            guard let k = BF16Kernel(rawValue: env) else { throw GiftError(.usage, "GIFT_BF16_KERNEL must be native or emulated, not '\(env)'") }
            forced = k
        } else { forced = nil }
        let recorded = isRoot ? Self.recordedKernels(resumeSpec: resumeSpec, runDir: outDir) : .none
        if cfg.gemm != .auto {
            // as given (configured in init); a resume that changes the recorded kernels is told so
            source = "--gemm \(cfg.gemm.rawValue)"
            if case .recorded(let k, let p) = recorded, k != GemmKernels.current {
                lines.append("kernels: \(Gemm.summary) (--gemm \(cfg.gemm.rawValue)) in place of the \(k.summary) recorded in \(p): the resumed run is no longer bit-identical to an uninterrupted one")
            }
        } else {
            var code: [Int64] = [0, 0, 0]
            if isRoot {
                var chosen: GemmKernels?
                switch recorded {
                case .recorded(let k, let p):
                    if k.precision != cfg.precision {
                        lines.append("kernels: \(p) recorded \(k.summary), for another precision than this run's \(cfg.precision.rawValue): measuring again")
                    } else if k.backend == .onednn && !Gemm.onednnAvailable {
                        lines.append("warning: kernels: \(p) recorded \(k.summary) but oneDNN cannot be loaded here (\(Gemm.onednnDescription)): measuring again; the resumed run is no longer bit-identical to an uninterrupted one")
                    } else if let f = forced, f != k.bf16Kernel {
                        lines.append("kernels: GIFT_BF16_KERNEL=\(f.rawValue) in place of the \(k.summary) recorded in \(p): measuring the \(f.rawValue) kernel's candidates; the resumed run is no longer bit-identical to an uninterrupted one")
                    } else {
                        chosen = k; source = "recorded in \(p)"
                        lines.append("kernels: \(k.summary), recorded in \(p)/manifest.json: not measured again (the resumed run runs the kernels it ran)")
                    }
                case .older(let p):
                    lines.append("kernels: \(p) records no kernels (written by an older gift): measuring them")
                case .none: break
                }
                if chosen == nil {
                    let tokens = cfg.microBatch * model.rope.maxLen
                    let t = try KernelChoice.table(model: model.config, tokens: tokens, precision: cfg.precision, forced: forced)
                    let c = KernelChoice.choose(t)
                    chosen = t.candidates[c]; table = t
                    source = t.candidates.count == 1 ? "the only candidate" : (t.note.hasPrefix("injected") ? "injected timings" : "measured")
                    if t.candidates.count == 1 {
                        lines.append("kernels: \(chosen!.summary), the only candidate here (\(Self.whyOneCandidate(t, forced: forced)))")
                    } else {
                        lines.append("kernels: measured on rank 0 at \(tokens) tokens (micro-batch \(cfg.microBatch) × \(model.rope.maxLen)), the linear layers' GEMMs (\(t.note)); attention's per-thread products stay on OpenBLAS:")
                        lines += t.lines(chosen: c).map { "  " + $0 }
                        lines.append("kernels: \(chosen!.summary) chosen for the run" + (forced.map { " (GIFT_BF16_KERNEL=\($0.rawValue))" } ?? ""))
                    }
                }
                code = chosen!.code
            }
            if comm.size > 1 {
                try code.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
            }
            guard let k = GemmKernels(code: code) else { throw GiftError(.mismatch, "kernels: rank 0 sent an unknown choice \(code)") }
            var failure: String?
            do { try k.configure(reason: isRoot ? source : "rank 0's choice") } catch { failure = "\(error)" }
            if comm.size > 1 {
                var bad = [failure == nil ? 0.0 : 1.0]
                try comm.allreduceSum(&bad)
                if bad[0] > 0 {
                    throw GiftError(.mismatch, "kernels: \(Int(bad[0])) of \(comm.size) ranks cannot run the \(k.summary) rank 0 chose"
                                    + (failure.map { " (this rank: \($0))" } ?? "") + "; every rank must be able to load the same libraries")
                }
            } else if let failure { throw GiftError(.usage, failure) }
        }
        if isRoot {
            var o: [String: Any] = ["kernels": GemmKernels.current.json, "source": source, "gemm": cfg.gemm.rawValue]
            if let table { o["table"] = table.json; o["note"] = table.note }
            let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: outDir + "/kernels.json"), options: .atomic)
            for l in lines { log(l) }
        }
        return lines
    }

    static func whyOneCandidate(_ t: KernelChoice.Table, forced: BF16Kernel?) -> String {
        if forced == .native { return "GIFT_BF16_KERNEL=native" }
        if !Gemm.onednnAvailable { return "oneDNN: \(Gemm.onednnDescription)" }
        return "every GEMM of this model is under \(Gemm.onednnMinWork) multiply-adds, where oneDNN's backend runs OpenBLAS too"
            + (forced == .emulated ? "; GIFT_BF16_KERNEL=emulated" : "")
    }
}
