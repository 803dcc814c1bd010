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
        let forced = try Gemm.environmentBF16Kernel(precision: cfg.precision)
        let recorded = isRoot ? Self.recordedKernels(resumeSpec: resumeSpec, runDir: outDir) : .none
        if cfg.gemm != .auto {
            // as given (configured in init); a resume that changes the recorded kernels is told so
            source = "--gemm \(cfg.gemm.rawValue)"
            if case .recorded(let k, let p) = recorded, k != GemmKernels.current {
                lines.append("kernels: \(Gemm.summary) (--gemm \(cfg.gemm.rawValue)) in place of the \(k.summary) recorded in \(p): the resumed run is no longer bit-identical to an uninterrupted one")
            }
        } else {
            _ = try KernelChoice.agree(comm: comm, reason: { source }) {
                if let k = Self.usable(recorded, precision: cfg.precision, forced: forced, lines: &lines) {
                    source = "recorded in the checkpoint resumed"
                    return k
                }
                let c = try KernelChoice.choose(model: model.config, tokens: cfg.microBatch * model.rope.maxLen,
                                                what: "micro-batch \(cfg.microBatch) × \(model.rope.maxLen), on rank 0", precision: cfg.precision)
                table = c.table; source = c.source
                lines += c.lines
                return c.kernels
            }
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

    /// The recorded kernels when the resumed run can run them (same precision, loadable, not overridden
    /// by GIFT_BF16_KERNEL), else nil with the reason in `lines`: the run measures again.
    static func usable(_ recorded: RecordedKernels, precision: Precision, forced: BF16Kernel?, lines: inout [String]) -> GemmKernels? {
        switch recorded {
        case .recorded(let k, let p):
            if k.precision != precision {
                lines.append("kernels: \(p) recorded \(k.summary), for another precision than this run's \(precision.rawValue): measuring again")
            } else if k.backend == .onednn && !Gemm.onednnAvailable {
                lines.append("warning: kernels: \(p) recorded \(k.summary) but oneDNN cannot be loaded here (\(Gemm.onednnDescription)): measuring again; the resumed run is no longer bit-identical to an uninterrupted one")
            } else if let f = forced, f != k.bf16Kernel {
                lines.append("kernels: GIFT_BF16_KERNEL=\(f.rawValue) in place of the \(k.summary) recorded in \(p): measuring the \(f.rawValue) kernel's candidates; the resumed run is no longer bit-identical to an uninterrupted one")
            } else {
                lines.append("kernels: \(k.summary), recorded in \(p)/manifest.json: not measured again (the resumed run runs the kernels it ran)")
                return k
            }
        case .older(let p):
            lines.append("kernels: \(p) records no kernels (written by an older gift): measuring them")
        case .none: break
        }
        return nil
    }
}
