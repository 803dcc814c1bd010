import Foundation

/// The one thread that makes ZeRO-2/3's collective calls while the main thread computes: gradient
/// buckets' reduce-scatters and blocks' parameter gathers run here, in the order they were submitted.
/// Every rank submits the same operations in the same order (they come from the same points of the same
/// program), which is what MPI's collectives need; MPI_THREAD_SERIALIZED holds because the main thread
/// makes no MPI call while anything is queued (`drain` first).
public final class CommThread: @unchecked Sendable {
    private let cond = NSCondition()
    private var queue: [(Int, () throws -> Void)] = []
    private var submitted = 0, done = 0
    private var failure: Error?
    private var stopping = false
    /// Seconds the main thread spent in `wait`/`drain` (communication not hidden behind compute).
    public private(set) var waited = 0.0

    public init(name: String) {
        let t = Thread { [unowned self] in self.loop() }
        t.name = name
        t.start()
    }

    deinit { cond.lock(); stopping = true; cond.signal(); cond.unlock() }

    private func loop() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if queue.isEmpty { cond.unlock(); return }
            let (_, op) = queue.removeFirst()
            let skip = failure != nil
            cond.unlock()
            var err: Error?
            if !skip { do { try op() } catch { err = error } }
            cond.lock()
            done += 1
            if let err, failure == nil { failure = err }
            cond.broadcast()
            cond.unlock()
        }
    }

    /// Queues `op`; returns its ticket (operations complete in ticket order).
    @discardableResult
    public func submit(_ op: @escaping () throws -> Void) -> Int {
        cond.lock(); defer { cond.unlock() }
        submitted += 1
        queue.append((submitted, op))
        cond.signal()
        return submitted
    }

    /// Waits until operation `ticket` (and every one before it) has run; rethrows the first failure.
    public func wait(_ ticket: Int) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        cond.lock()
        while done < ticket && failure == nil { cond.wait() }
        let f = failure
        cond.unlock()
        waited += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if let f { throw f }
    }

    /// Waits for everything submitted so far.
    public func drain() throws {
        cond.lock(); let last = submitted; cond.unlock()
        try wait(last)
    }

    public func resetWaited() { waited = 0 }
}
