import CBLAS

/// The one matrix-multiply interface every layer goes through (row-major):
/// C[m×n] = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ.
/// Today it is OpenBLAS `cblas_sgemm`; a bf16 backend can slot in here without touching a layer.
public enum Gemm {
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
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[rows×out] = x[rows×in] · Wᵀ, W stored [out, in] (PyTorch Linear layout).
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              rows: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
        Profiler.measure("  linear fwd") { mm(transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
           beta: accumulate ? 1 : 0, c: y, ldc: outDim) }
    }

    /// Backward of `linear`: dW += dyᵀ · x, then dx (= or +=) dy · W.
    @inline(__always)
    public static func linearBackward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                      rows: Int, inDim: Int, outDim: Int, accumulateDx: Bool = false) {
        // dW first: callers may let dx overwrite x (the output head does).
        Profiler.measure("  linear bwd") {
        mm(transA: true, m: outDim, n: inDim, k: rows, a: dy, lda: outDim, b: x, ldb: inDim,
           beta: 1, c: dw, ldc: inDim)
        if let dx {
            mm(m: rows, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
               beta: accumulateDx ? 1 : 0, c: dx, ldc: inDim)
        }
        }
    }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
