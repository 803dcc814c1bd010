import Dispatch

/// Splits loops over rows across the cores the BLAS uses (OPENBLAS_NUM_THREADS), so elementwise work
/// does not run on one core while the others idle between GEMMs.
public enum Parallel {
    nonisolated(unsafe) public static var workers = max(1, Gemm.threads)

    /// Calls body(start, end) on `workers` contiguous chunks of 0..<n (inline when small or one worker).
    @inline(__always)
    public static func chunks(_ n: Int, minChunk: Int = 1, _ body: (Int, Int) -> Void) {
        let w = min(workers, max(1, n / max(1, minChunk)))
        if w <= 1 { body(0, n); return }
        sendable(body) { f in
            DispatchQueue.concurrentPerform(iterations: w) { i in f(n * i / w, n * (i + 1) / w) }
        }
    }

    /// The kernels hand raw pointers to disjoint ranges to each worker: that is the whole contract, so the
    /// closure is passed on as @Sendable rather than proven so.
    @inline(__always)
    static func sendable(_ body: (Int, Int) -> Void, _ run: (@Sendable (Int, Int) -> Void) -> Void) {
        withoutActuallyEscaping(body) { esc in
            run(unsafeBitCast(esc, to: (@Sendable (Int, Int) -> Void).self))
        }
    }

    /// Runs `tasks` independent tasks over the workers with BLAS single-threaded meanwhile (each task
    /// calls GEMM on small shapes; one thread per task beats two threads per GEMM), worker index given.
    /// Inside a task `chunks` and `tasks` run inline: each task has its core to itself.
    public static func tasks(_ count: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
        let w = min(workers, count)
        if w <= 1 { for t in 0..<count { body(t, 0) }; return }
        let saved = Gemm.threads, savedWorkers = workers
        Gemm.setThreads(1)
        workers = 1
        defer { workers = savedWorkers }
        sendable(body) { f in
            DispatchQueue.concurrentPerform(iterations: w) { worker in
                Gemm.singleThreaded {
                    var t = worker
                    while t < count { f(t, worker); t += w }
                }
            }
        }
        Gemm.setThreads(saved)
    }
}
