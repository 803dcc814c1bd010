import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A verdict every rank reached together, after the same collectives: no rank needs to abort the others.
/// The command prints it once (rank 0), finalizes MPI and exits 1 on every rank.
public struct RankAgreementError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Comparing values that every rank computed on its own (checksums of the files it read) with rank 0's,
/// when nothing else would make them agree (ZeRO-3: no start broadcast of the parameters).
public enum RankAgreement {
    /// One compared value: `file` (as messages name it, relative to a folder), `part` (what of it).
    public struct Item: Sendable, Equatable {
        public var file: String
        public var part: String
        public var value: UInt64
        /// `value` is a number worth showing (a size in bytes), not a checksum.
        public var shown: Bool
        public init(file: String, part: String, value: UInt64, shown: Bool = false) {
            self.file = file; self.part = part; self.value = value; self.shown = shown
        }
    }

    /// This host's name (gethostname; no name lookup).
    public static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        let room = buf.count - 1
        guard gethostname(&buf, room) == 0 else { return "unknown host" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Compares this rank's `items` with rank 0's, in order. Collective: every rank calls it with its own
    /// items. When some rank differs, every rank throws the same `RankAgreementError`, one line naming the
    /// first differing rank, its host, the file (`place(file)` on that rank: its own path) and what of it
    /// differs, then `advice`. Rank 0's items and host go out in two broadcasts; the verdict is an
    /// allreduce of one flag per rank and, on a difference, two broadcasts of the message from that rank.
    public static func check(_ items: [Item], comm: Communicator, subject: String, advice: String,
                             place: (String) -> String = { $0 }) throws {
        guard comm.size > 1 else { return }
        let host = hostName
        var blob = comm.rank == 0 ? encode(host: host, items) : []
        try broadcast(&blob, from: 0, comm: comm)
        guard let (host0, reference) = decode(blob) else {
            throw GiftError(.io, "rank \(comm.rank): the model check from rank 0 arrived malformed (\(blob.count) bytes)")
        }
        let detail = comm.rank == 0 ? nil : firstDifference(items, reference, place: place)
        var flags = [Double](repeating: 0, count: comm.size)
        if detail != nil { flags[comm.rank] = 1 }
        try comm.allreduceSum(&flags)
        guard let first = flags.firstIndex(where: { $0 > 0 }) else { return }
        let differing = flags.filter { $0 > 0 }.count
        var message: [UInt8] = []
        if comm.rank == first, let detail {
            let others = differing > 1 ? " (\(differing) of \(comm.size) ranks differ from rank 0; the first is named)" : ""
            let line = "\(subject) differs between ranks: on rank \(comm.rank) (host \(host)) \(detail); "
                + "rank 0 is on host \(host0)\(others); \(advice)"
            message = Array(line.utf8)
        }
        try broadcast(&message, from: first, comm: comm)
        throw RankAgreementError(message: String(decoding: message, as: UTF8.self))
    }

    /// What of `mine` first differs from `reference` ("FILE differs from rank 0's copy in its PART"); nil when none.
    static func firstDifference(_ mine: [Item], _ reference: [Item], place: (String) -> String) -> String? {
        for i in 0..<max(mine.count, reference.count) {
            let a = i < mine.count ? mine[i] : nil, b = i < reference.count ? reference[i] : nil
            switch (a, b) {
            case let (a?, b?) where a.file == b.file && a.part == b.part:
                guard a.value != b.value else { continue }
                let values = a.shown ? " (\(a.value) here, \(b.value) on rank 0)" : ""
                return "\(place(a.file)) differs from rank 0's copy in its \(a.part)\(values)"
            case let (a?, b?):
                return "the files differ: \(place(a.file)) is read where rank 0 reads \(b.file)"
            case let (a?, nil):
                return "the files differ: \(place(a.file)) is read, and rank 0 reads no such file"
            case let (nil, b?):
                return "the files differ: \(place(b.file)) is not read, and rank 0 reads its \(b.file)"
            case (nil, nil):
                return nil
            }
        }
        return nil
    }

    /// `bytes` of rank `root` to every rank (its length first).
    static func broadcast(_ bytes: inout [UInt8], from root: Int, comm: Communicator) throws {
        var n = [Int64(bytes.count)]
        try n.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: 8, root: root) }
        guard n[0] >= 0, n[0] < 1 << 31 else { throw GiftError(.io, "rank \(comm.rank): a broadcast length of \(n[0]) bytes") }
        if comm.rank != root { bytes = [UInt8](repeating: 0, count: Int(n[0])) }
        if n[0] > 0 { try bytes.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: root) } }
    }

    static func encode(host: String, _ items: [Item]) -> [UInt8] {
        var out: [UInt8] = []
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        str(host); u64(UInt64(items.count))
        for it in items { str(it.file); str(it.part); u64(it.value); out.append(it.shown ? 1 : 0) }
        return out
    }

    static func decode(_ b: [UInt8]) -> (String, [Item])? {
        var at = 0
        func u64() -> UInt64? {
            guard at + 8 <= b.count else { return nil }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(b[at + k]) << (8 * k) }
            at += 8
            return v
        }
        func str() -> String? {
            guard let n = u64(), n <= UInt64(b.count - at) else { return nil }
            defer { at += Int(n) }
            return String(decoding: b[at..<(at + Int(n))], as: UTF8.self)
        }
        guard let host = str(), let count = u64(), count <= UInt64(b.count) else { return nil }
        var items: [Item] = []
        for _ in 0..<Int(count) {
            guard let f = str(), let p = str(), let v = u64(), at < b.count else { return nil }
            items.append(Item(file: f, part: p, value: v, shown: b[at] != 0))
            at += 1
        }
        return at == b.count ? (host, items) : nil
    }
}
