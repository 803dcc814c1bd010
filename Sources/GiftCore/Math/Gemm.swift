import CBLASShim
import CDNNLShim
import Foundation

/// Which library multiplies matrices: OpenBLAS (fp32, everywhere) or oneDNN (fp32 and bf16; loaded at
/// run time: the library GIFT_ONEDNN_LIB names, 2.x or 3.x, else Debian's libdnnl.so.2).
public enum GemmBackend: String, CaseIterable, Sendable {
    case openblas, onednn
}

/// The precision of matrix-multiply inputs. In bf16 both operands are rounded to bf16 (to nearest, ties
/// to even) and products are accumulated in fp32; everything else (master weights, gradients, AdamW
/// state, softmax, norms, entropy, loss) stays fp32.
public enum Precision: String, CaseIterable, Sendable {
    case fp32, bf16
}

/// How a bf16 matmul runs: oneDNN's bf16 kernel on bf16 operands (fast on CPUs with AVX512_BF16 or AMX),
/// or `emulated`: the operands rounded to bf16 values kept in fp32, multiplied by the fp32 backend. Both
/// give the same products (a bf16×bf16 product is exact in fp32) with fp32 accumulation, so they differ
/// only in summation order; `emulated` is the faster one on CPUs without bf16 instructions.
public enum BF16Kernel: String, Sendable {
    case native, emulated
}

/// The one matrix-multiply interface every layer goes through (row-major):
/// C[m×n] = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ.
/// The backend and precision are process-wide settings (`configure`), chosen once by the command.
public enum Gemm {
    nonisolated(unsafe) public private(set) static var backend: GemmBackend = .openblas
    nonisolated(unsafe) public private(set) static var precision: Precision = .fp32
    nonisolated(unsafe) public private(set) static var bf16Kernel: BF16Kernel = .emulated

    /// oneDNN's version, the library file loaded and the CPU ISA, or why it cannot be used.
    public static var onednnDescription: String { String(cString: gift_dnnl_description()) }
    /// Why the library GIFT_ONEDNN_LIB names is not the one in use (it could not be loaded), or nil.
    public static var onednnWarning: String? {
        let w = String(cString: gift_dnnl_warning())
        return w.isEmpty ? nil : "warning: " + w
    }
    /// The loaded oneDNN's API generation (2 or 3), 0 when none is loaded.
    public static var onednnAPI: Int { Int(gift_dnnl_api()) }
    public static var onednnAvailable: Bool { gift_dnnl_available() != 0 }
    public static var nativeBF16: Bool { gift_dnnl_native_bf16() != 0 }

    /// Why `bf16Kernel` is what it is (for logs): the backend's, or the override.
    nonisolated(unsafe) public private(set) static var bf16KernelReason = ""

    /// Selects the backend and the precision. `auto` is OpenBLAS (the emulation in bf16) until the
    /// command knows its model's GEMM shapes and measures the candidates (`KernelChoice.settle`; `gift
    /// train` through `Trainer.chooseKernels`, which also records the choice): which kernel is fastest is
    /// a measurement, not a rule by instruction set (oneDNN's bf16 kernel was found fast on Zen 4/5 with
    /// AVX512_BF16 alone, slow on an Emerald Rapids core pair without AMX).
    /// `onednn` in bf16 is oneDNN's native bf16 kernel where the CPU has bf16 instructions, else the
    /// emulation on oneDNN's f32 kernel. GIFT_BF16_KERNEL=native|emulated (or `bf16Kernel`) overrides
    /// that; `reason` then says why in the log (default: "forced by the caller").
    /// Throws when the BLAS cannot load or oneDNN is asked for and cannot.
    public static func configure(gemm: String = "auto", precision: Precision = .fp32,
                                 bf16Kernel forcedKernel: BF16Kernel? = nil, reason: String? = nil) throws {
        try Blas.load()
        switch gemm {
        case "auto", "openblas": backend = .openblas
        case "onednn":
            guard onednnAvailable else {
                throw GiftError(.usage, "--gemm onednn: \(onednnDescription)" + (onednnWarning.map { " (\($0))" } ?? ""))
            }
            backend = .onednn
        default: throw GiftError(.usage, "--gemm must be auto, openblas or onednn, not '\(gemm)'")
        }
        self.precision = precision
        var kernel: BF16Kernel = .emulated
        if backend != .onednn {
            bf16KernelReason = gemm == "auto" ? "the emulation on OpenBLAS, until the kernels are measured"
                : "the emulation: the \(backend.rawValue) backend has no bf16 kernel"
        } else if !nativeBF16 {
            bf16KernelReason = "the emulation: this CPU has no bf16 instructions"
        } else {
            kernel = .native
            bf16KernelReason = "oneDNN's bf16 kernel: the CPU has bf16 instructions"
        }
        // the bf16 kernel matters to bf16 matmuls only: an fp32 setting (the bench's fp32 reference lanes
        // beside a bf16 one, say) leaves GIFT_BF16_KERNEL for the bf16 settings
        // (under auto it narrows the candidates the measurement times: `KernelChoice.candidates`)
        let env = gemm != "auto" ? try environmentBF16Kernel(precision: precision) : nil
        if let k = forcedKernel ?? env {
            if k == .native && backend != .onednn {   // (without bf16 instructions it runs, slowly: tests use it)
                throw GiftError(.usage, "GIFT_BF16_KERNEL=native needs the oneDNN backend (--gemm onednn)")
            }
            kernel = k
            bf16KernelReason = forcedKernel != nil ? reason ?? "forced by the caller" : "GIFT_BF16_KERNEL=\(k.rawValue)"
        }
        bf16Kernel = kernel
        if backend == .onednn { gift_dnnl_set_threads(Int32(threads)) }
        mirror.deactivate()
    }

    /// The bf16 kernel GIFT_BF16_KERNEL forces for a bf16 setting (nil: unset, or an fp32 setting).
    public static func environmentBF16Kernel(precision: Precision) throws -> BF16Kernel? {
        let env = ProcessInfo.processInfo.environment["GIFT_BF16_KERNEL"] ?? ""
        guard precision == .bf16, !env.isEmpty else { return nil }
        guard let k = BF16Kernel(rawValue: env) else { throw GiftError(.usage, "GIFT_BF16_KERNEL must be native or emulated, not '\(env)'") }
        return k
    }

    /// The libraries and kernels in use, one line each, for the train and bench logs.
    public static var kernelReport: [String] {
        var lines = ["cpu: \(CPU.summary)", "blas: \(Blas.summary)",
                     "onednn: \(onednnDescription)"] + (onednnWarning.map { [$0] } ?? []) + ["matmuls: \(summary)"]
        if precision == .bf16 { lines.append("bf16 kernel: \(bf16Kernel.rawValue), \(bf16KernelReason)") }
        if let w = Blas.genericKernelWarning { lines.append(w) }
        return lines
    }

    /// One line for logs and bench output: "onednn fp32", "openblas bf16 (emulated)", ...
    public static var summary: String {
        precision == .bf16 ? "\(backend.rawValue) bf16 (\(bf16Kernel.rawValue))" : "\(backend.rawValue) fp32"
    }

    @inline(__always)
    public static func mm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                          b: UnsafePointer<Float>, ldb: Int,
                          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {   // BLAS leaves C untouched only for beta = 1; make k = 0 mean "scale C by beta"
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if precision == .bf16 {
            bf16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc)
        } else {
            fp32(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc)
        }
    }

    /// fp32 GEMMs smaller than this many multiply-adds go to OpenBLAS even on the oneDNN backend: a
    /// oneDNN primitive costs ~0.5 ms to create for each new shape (the head's row count changes every
    /// step), more than such a GEMM takes. The rule depends on the shape only, so runs stay deterministic.
    public static let defaultOnednnMinWork = 1 << 24
    nonisolated(unsafe) public static var onednnMinWork = defaultOnednnMinWork

    @inline(__always)
    static func fp32(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if backend == .onednn, m * n * k >= onednnMinWork,
           gift_dnnl_gemm(0, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0 {
            return
        }
        // OpenBLAS, and the fallback for a shape oneDNN refuses. Its interface takes int dimensions and
        // leading dimensions (offsets inside it are 64-bit): refuse by name rather than trap in Int32().
        precondition(max(m, n, k, lda, ldb, ldc) <= Int(Int32.max), "GEMM \(m)×\(n)×\(k) exceeds OpenBLAS's int dimensions")
        gift_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                   beta, c, Int32(ldc))
    }

    /// Whether a bf16 GEMM of this size runs oneDNN's bf16 kernel; otherwise the emulation (small GEMMs
    /// take it as in fp32: the same products, no oneDNN primitive to prepare per shape).
    @inline(__always) static func nativeBF16(m: Int, n: Int, k: Int) -> Bool {
        bf16Kernel == .native && m * n * k >= onednnMinWork
    }

    /// bf16 operands: weights come from the mirror when one is active (converted once per step), other
    /// operands are rounded into per-thread scratch, packed (leading dimension = row length).
    /// `packedA`: A already packed in the form `nativeBF16` picks for this size (bf16 bits, or rounded
    /// floats), ld = its row length; linearBackward packs dy once for its two GEMMs.
    static func bf16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                     packedA: UnsafeRawPointer? = nil) {
        let s = GemmScratch.current
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        let native = nativeBF16(m: m, n: n, k: k)
        if native {
            let (pa, la) = packedA.map { ($0, aCols) } ?? mirror.bits(a, lda) ?? (s.bitsA(a, rows: aRows, cols: aCols, ld: lda), aCols)
            let (pb, lb) = mirror.bits(b, ldb) ?? (s.bitsB(b, rows: bRows, cols: bCols, ld: ldb), bCols)
            if gift_dnnl_gemm(1, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, pa, la, pb, lb, beta, c, ldc) == 0 {
                return
            }
        }
        // (also the fallback when oneDNN refuses a shape: then a packed A holds bits, not floats)
        let pre = native ? nil : packedA.map { ($0.assumingMemoryBound(to: Float.self), aCols) }
        let (pa, la) = pre ?? mirror.rounded(a, lda) ?? (s.roundedA(a, rows: aRows, cols: aCols, ld: lda), aCols)
        let (pb, lb) = mirror.rounded(b, ldb) ?? (s.roundedB(b, rows: bRows, cols: bCols, ld: ldb), bCols)
        fp32(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa, lda: la, b: pb, ldb: lb,
             beta: beta, c: c, ldc: ldc)
    }

    /// y[rows×out] = x[rows×in] · Wᵀ, W stored [out, in] (PyTorch Linear layout).
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              rows: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        Profiler.measure("  linear fwd") { mm(transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
           beta: accumulate ? 1 : 0, c: y, ldc: outDim) }
    }

    /// Backward of `linear`: dW += dyᵀ · x (skipped when `dw` is nil: a frozen weight), then dx (= or +=) dy · W.
    @inline(__always)
    public static func linearBackward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                      rows: Int, inDim: Int, outDim: Int, accumulateDx: Bool = false) {
        // dW first: callers may let dx overwrite x (the output head does).
        Profiler.measure("  linear bwd") {
        if precision == .bf16 && rows > 0 && inDim > 0 && outDim > 0 {
            // dy is the A operand of both GEMMs, packed the same way ([rows, outDim]), and both have the
            // same size (so the same kernel): convert it once
            let s = GemmScratch.current
            let packed = nativeBF16(m: rows, n: inDim, k: outDim) ? s.bitsA(dy, rows: rows, cols: outDim, ld: outDim)
                : UnsafeRawPointer(s.roundedA(dy, rows: rows, cols: outDim, ld: outDim))
            if let dw {
                bf16(transA: true, transB: false, m: outDim, n: inDim, k: rows, alpha: 1, a: dy, lda: outDim, b: x, ldb: inDim,
                     beta: 1, c: dw, ldc: inDim, packedA: packed)
            }
            if let dx {
                bf16(transA: false, transB: false, m: rows, n: inDim, k: outDim, alpha: 1, a: dy, lda: outDim, b: w,
                     ldb: inDim, beta: accumulateDx ? 1 : 0, c: dx, ldc: inDim, packedA: packed)
            }
            return
        }
        if let dw {
            mm(transA: true, m: outDim, n: inDim, k: rows, a: dy, lda: outDim, b: x, ldb: inDim,
               beta: 1, c: dw, ldc: inDim)
        }
        if let dx {
            mm(m: rows, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
               beta: accumulateDx ? 1 : 0, c: dx, ldc: inDim)
        }
        }
    }

    /// Threads of one GEMM: OpenBLAS's (process-wide) and oneDNN's OpenMP count for the calling thread.
    public static func setThreads(_ n: Int) {
        gift_blas_set_threads(Int32(max(1, n)))
        if backend == .onednn { gift_dnnl_set_threads(Int32(max(1, n))) }
    }
    public static var threads: Int { Int(gift_blas_get_threads()) }

    /// Runs `body` with this thread's GEMMs on one thread (for GEMMs issued from parallel workers).
    @inline(__always)
    public static func singleThreaded<R>(_ body: () -> R) -> R {
        guard backend == .onednn else { return body() }
        let saved = gift_dnnl_get_threads()
        gift_dnnl_set_threads(1)
        defer { gift_dnnl_set_threads(saved) }
        return body()
    }

    // MARK: bf16 weight mirror

    static let mirror = WeightMirror()

    /// In bf16, runs `body` with a bf16 copy of the `count` floats at `params` (the flat parameter
    /// buffer) made first, so weight operands are converted once rather than at every GEMM. The copy is
    /// used only inside `body`, during which the parameters must not change: callers wrap one forward/
    /// backward (one optimizer step), so the copy is refreshed after every optimizer step. Nested calls
    /// for the same buffer reuse the active copy. In fp32 it just runs `body`.
    public static func withWeightMirror<R>(_ params: UnsafePointer<Float>, count: Int, _ body: () throws -> R) rethrows -> R {
        guard precision == .bf16, count > 0, !mirror.isActive(params, count) else { return try body() }
        Profiler.measure("bf16 weight copy") { mirror.activate(params, count: count, native: bf16Kernel == .native) }
        defer { mirror.deactivate() }
        return try body()
    }
}

/// The bf16 copy of the flat parameter buffer (`Gemm.withWeightMirror`): bf16 bits for oneDNN's native
/// kernel, or bf16-rounded floats for the emulation; same offsets as the parameters.
final class WeightMirror: @unchecked Sendable {
    private var base: UnsafePointer<Float>?
    private var count = 0
    private var bitsBuf = UnsafeMutablePointer<UInt16>.allocate(capacity: 0)
    private var floatBuf = UnsafeMutablePointer<Float>.allocate(capacity: 0)
    private var capacityBits = 0, capacityFloats = 0
    private var native = false

    func isActive(_ p: UnsafePointer<Float>, _ n: Int) -> Bool { base == p && count == n }

    func activate(_ p: UnsafePointer<Float>, count n: Int, native: Bool) {
        self.native = native
        if native {
            if capacityBits < n { bitsBuf.deallocate(); bitsBuf = .allocate(capacity: n); capacityBits = n }
            let dst = bitsBuf
            Parallel.chunks(n, minChunk: 1 << 16) { s, e in BFloat16.encodeFast(p + s, into: dst + s, count: e - s) }
        } else {
            if capacityFloats < n { floatBuf.deallocate(); floatBuf = .allocate(capacity: n); capacityFloats = n }
            let dst = floatBuf
            Parallel.chunks(n, minChunk: 1 << 16) { s, e in BFloat16.roundFast(p + s, into: dst + s, count: e - s) }
        }
        base = p; count = n
    }

    func deactivate() { base = nil; count = 0 }

    /// The mirror's bits for a pointer into the parameters (same leading dimension), or nil.
    @inline(__always) func bits(_ p: UnsafePointer<Float>, _ ld: Int) -> (UnsafeRawPointer, Int)? {
        guard native, let base, p >= base, p < base + count else { return nil }
        return (UnsafeRawPointer(bitsBuf + (p - base)), ld)
    }

    @inline(__always) func rounded(_ p: UnsafePointer<Float>, _ ld: Int) -> (UnsafePointer<Float>, Int)? {
        guard !native, let base, p >= base, p < base + count else { return nil }
        return (UnsafePointer(floatBuf + (p - base)), ld)
    }
}

/// Per-thread buffers for bf16 operands (attention issues GEMMs from several threads at once). They grow
/// to the largest operand seen and are then reused: no allocation in a steady-state step.
final class GemmScratch {
    private var a = Grow<Float>(), b = Grow<Float>(), ai = Grow<UInt16>(), bi = Grow<UInt16>()

    nonisolated(unsafe) private static var key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in if let p { Unmanaged<GemmScratch>.fromOpaque(p).release() } }
        return k
    }()

    static var current: GemmScratch {
        if let p = pthread_getspecific(key) { return Unmanaged<GemmScratch>.fromOpaque(p).takeUnretainedValue() }
        let s = GemmScratch()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    func roundedA(_ p: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> UnsafePointer<Float> {
        Self.pack(p, rows, cols, ld, a.take(rows * cols), BFloat16.roundFast)
    }
    func roundedB(_ p: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> UnsafePointer<Float> {
        Self.pack(p, rows, cols, ld, b.take(rows * cols), BFloat16.roundFast)
    }
    func bitsA(_ p: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(Self.pack(p, rows, cols, ld, ai.take(rows * cols), BFloat16.encodeFast))
    }
    func bitsB(_ p: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(Self.pack(p, rows, cols, ld, bi.take(rows * cols), BFloat16.encodeFast))
    }

    @inline(__always)
    private static func pack<T>(_ src: UnsafePointer<Float>, _ rows: Int, _ cols: Int, _ ld: Int,
                                _ dst: UnsafeMutablePointer<T>,
                                _ convert: (UnsafePointer<Float>, UnsafeMutablePointer<T>, Int) -> Void) -> UnsafePointer<T> {
        // large operands (activations of a linear layer) are split over the cores; inside Parallel.tasks
        // (attention) BLAS runs single-threaded and so does this
        let parts = rows * cols >= 1 << 17 && Gemm.threads > 1 ? min(Gemm.threads, rows) : 1
        Parallel.chunks(parts, minChunk: 1) { p0, p1 in
            for p in p0..<p1 {
                let r0 = rows * p / parts, r1 = rows * (p + 1) / parts
                if ld == cols { convert(src + r0 * cols, dst + r0 * cols, (r1 - r0) * cols) }
                else { for r in r0..<r1 { convert(src + r * ld, dst + r * cols, cols) } }
            }
        }
        return UnsafePointer(dst)
    }

    private struct Grow<T> {
        var p = UnsafeMutablePointer<T>.allocate(capacity: 0), cap = 0
        mutating func take(_ n: Int) -> UnsafeMutablePointer<T> {
            if n > cap { p.deallocate(); cap = max(n, cap * 2); p = .allocate(capacity: cap) }
            return p
        }
    }
}
