import Foundation

/// `gift train`'s check before it loads the model or allocates a buffer: the plan of its own settings
/// against the memory one rank may use, and when it does not fit, the cheapest change that does.
public enum MemoryFit {
    /// The bytes one rank may use, and where that figure came from (for the message).
    public struct Limit: Sendable, Equatable {
        public let bytes: Int, source: String
        public init(bytes: Int, source: String) { self.bytes = bytes; self.source = source }
    }

    /// "8G", "512M", "1.5GiB", "64k", "123456" (bytes): K, M, G, T are powers of 1024, with or without
    /// a trailing "B" or "iB". nil for anything else.
    public static func parseBytes(_ text: String) -> Int? {
        var t = text.trimmingCharacters(in: .whitespaces).uppercased()
        if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        let units: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40]
        var scale = 1.0
        if let u = t.last, let s = units[u] { scale = s; t.removeLast() }
        guard let v = Double(t), v.isFinite, v > 0, v * scale < 0x1p62 else { return nil }
        return Int((v * scale).rounded())
    }

    /// What one rank of this node may use: the tightest of MemAvailable and the memory cgroup's room,
    /// divided by the ranks on this node (`localRanks`), and this process's address-space limit
    /// (an RLIMIT_AS applies to each process on its own). nil where the node reports nothing.
    public static func nodeLimit(localRanks: Int) -> Limit? {
        var node: (Int, String)? = MemoryInfo.available().map { ($0, "MemAvailable in /proc/meminfo") }
        if let c = MemoryInfo.cgroupRoom(), node.map({ c.bytes < $0.0 }) ?? true { node = (c.bytes, "the room left under \(c.source)") }
        var best = node.map { n in
            Limit(bytes: n.0 / max(1, localRanks),
                  source: localRanks > 1 ? "\(n.1), \(MemoryInfo.format(n.0)), divided by the \(localRanks) ranks on this node" : n.1)
        }
        if let a = MemoryInfo.addressSpaceLimit(), best.map({ a < $0.bytes }) ?? true {
            best = Limit(bytes: a, source: "this process's address-space limit (ulimit -v / prlimit --as)")
        }
        return best
    }

    /// A change of the run's settings and the plan it gives.
    public struct Suggestion {
        /// The flags to add, e.g. "--zero 2" or "--zero 3 --recompute blocks on 6 ranks".
        public let change: String
        public let plan: Plan
    }

    /// The cheapest change that fits `limit`, each found by evaluating the plan: a higher ZeRO stage
    /// (the lowest that fits), then --recompute blocks (at this stage, then at higher ones), then more
    /// ranks, each with as much memory, at ZeRO 3 (the fewest that fit; with recompute only where that
    /// takes fewer ranks). nil: nothing fits
    /// (what does not shard, the activations of one micro-batch and the gathered units, is too large).
    public static func suggestion(_ plan: Plan, limit: Int) throws -> Suggestion? {
        let s = plan.settings
        for z in (s.zero + 1)..<4 {
            let p = try plan.with { $0.zero = z }
            if p.totalBytes <= limit { return Suggestion(change: "--zero \(z)", plan: p) }
        }
        if !s.recompute {
            for z in s.zero..<4 {
                let p = try plan.with { $0.zero = z; $0.recompute = true }
                if p.totalBytes <= limit {
                    return Suggestion(change: (z == s.zero ? "" : "--zero \(z) ") + "--recompute blocks", plan: p)
                }
            }
        }
        // more ranks at ZeRO 3: the fewest that fit, with this run's recompute setting or, where that
        // needs more ranks, with recompute
        let plain = try fewestRanks(plan, limit: limit, recompute: s.recompute)
        let rec = s.recompute ? nil : try fewestRanks(plan, limit: limit, recompute: true)
        guard let best = [plain, rec].compactMap({ $0 }).min(by: { $0.ranks < $1.ranks }) else { return nil }
        let changed = (s.zero == 3 ? "" : "--zero 3 ") + (best.settings.recompute == s.recompute ? "" : "--recompute blocks ")
        return Suggestion(change: changed + "on \(best.ranks) ranks, each with as much memory", plan: best)
    }

    /// The plan at ZeRO 3 on the fewest ranks (more than this run's, up to 2^16) that fit, by bisection:
    /// the total does not grow with the rank count.
    static func fewestRanks(_ plan: Plan, limit: Int, recompute: Bool) throws -> Plan? {
        func at(_ r: Int) throws -> Plan { try plan.with { $0.ranks = r; $0.zero = 3; $0.recompute = recompute } }
        let cap = 1 << 16
        guard plan.ranks < cap, try at(cap).totalBytes <= limit else { return nil }
        if try at(plan.ranks + 1).totalBytes <= limit { return try at(plan.ranks + 1) }
        var lo = plan.ranks + 1, hi = cap   // at(lo) does not fit, at(hi) does
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if try at(mid).totalBytes <= limit { hi = mid } else { lo = mid }
        }
        return try at(hi)
    }

    /// Throws, with one message, when `plan` exceeds `limit`: the plan's total, the limit and where it
    /// came from, and the cheapest change that fits with its total.
    public static func check(_ plan: Plan, limit: Limit) throws {
        guard plan.totalBytes > limit.bytes else { return }
        let f = MemoryInfo.format, s = plan.settings
        var m = "gift train: the memory plan needs \(f(plan.totalBytes)) per rank (ZeRO \(s.zero), recompute \(s.recompute ? "blocks" : "none"), "
            + "\(s.ranks) rank\(s.ranks == 1 ? "" : "s"), micro-batch \(s.microBatch), seq \(s.seqLen)), more than the \(f(limit.bytes)) a rank may use here (\(limit.source)). "
        if let sug = try suggestion(plan, limit: limit.bytes) {
            m += "The cheapest change that fits: \(sug.change) (\(f(sug.plan.totalBytes)) per rank). "
        } else {
            m += "No ZeRO stage, recompute or rank count fits: the activations alone take \(f(plan.bytes("activations"))); lower --micro-batch or --max-length. "
        }
        m += "Nothing was loaded or written; `gift plan` shows the parts of other settings."
        throw GiftError(.config, m)
    }
}
