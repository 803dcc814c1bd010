import Foundation

/// The BPE model of a tokenizer.json, merging exactly as HF's `Word::merge_all` does (a priority queue
/// of (rank, position), stale entries skipped), with a per-word cache.
final class BPEModel: @unchecked Sendable {
    let vocab: [ByteKey: Int32]
    /// id -> token text (the model's vocabulary only)
    let idToToken: [Int32: String]
    /// (left id << 32 | right id) -> (rank, merged id)
    let merges: [UInt64: (rank: UInt32, id: Int32)]
    let unkID: Int32?
    let unkToken: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: [UInt8]?
    let suffix: [UInt8]?
    /// ids of single characters below 0x180 (no prefix/suffix involved): -1 absent
    private let smallChar: [Int32]
    /// ids of <0x00>...<0xFF>, -1 absent
    private let byteTokens: [Int32]

    private var cache: [ByteKey: [Int32]] = [:]
    private let lock = NSLock()
    static let cacheCapacity = 200_000

    /// The `model` of a tokenizer.json.
    convenience init(_ j: TJ) throws {
        let type = try j.field("type")?.string() ?? "BPE"
        guard type == "BPE" else { throw j.unsupported("model", type) }
        if let d = try j.field("dropout"), try d.double() != 0 {
            throw d.error("BPE dropout is random and not supported (expected null)")
        }
        let (vocab, idToToken) = try BPEModel.vocabulary(try j.require("vocab"), strict: false)
        var unk: (id: Int32, token: String)? = nil
        if let u = try j.optString("unk_token") {
            guard let id = vocab[ByteKey(u)] else {
                throw try j.require("unk_token").error("unk_token \(StrictJSON.quote(u)) is not in the vocabulary")
            }
            unk = (id, u)
        }
        let mj = try j.require("merges")
        let list = try mj.array()
        let pairs = try list.map { m -> (String, String) in
            switch m.value {
            case .string(let s):
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw m.error("a merge must be two tokens separated by one space") }
                return (String(parts[0]), String(parts[1]))
            case .array(let two):
                guard two.count == 2, case .string(let x) = two[0], case .string(let y) = two[1] else {
                    throw m.error("a merge must be a pair of strings")
                }
                return (x, y)
            default:
                throw m.error("a merge must be a string or a pair of strings")
            }
        }
        try self.init(vocab: vocab, idToToken: idToToken, merges: pairs, mergeError: { list[$0].error($1) },
                      prefix: try j.optString("continuing_subword_prefix").map { Array($0.utf8) },
                      suffix: try j.optString("end_of_word_suffix").map { Array($0.utf8) },
                      fuseUnk: try j.bool("fuse_unk", default: false), byteFallback: try j.bool("byte_fallback", default: false),
                      ignoreMerges: try j.bool("ignore_merges", default: false), unk: unk)
    }

    /// A vocabulary object (token -> id). `strict` (a vocab.json): every id is used once and lies in
    /// 0..<count, as in the files HF writes; a tokenizer.json's may repeat ids (the first token names it).
    static func vocabulary(_ vj: TJ, strict: Bool) throws -> ([ByteKey: Int32], [Int32: String]) {
        var vocab: [ByteKey: Int32] = [:]
        var idToToken: [Int32: String] = [:]
        let vo = try vj.object()
        vocab.reserveCapacity(vo.count)
        idToToken.reserveCapacity(vo.count)
        for (k, v) in zip(vo.keys, vo.values) {
            guard let id = v.intValue, id >= 0, id <= Int(Int32.max) else {
                throw vj.error("entry \(StrictJSON.quote(k)) is not a valid token id (\(v.kind))")
            }
            if strict, id >= vo.count {
                throw vj.error("entry \(StrictJSON.quote(k)) has id \(id), out of range (the file has \(vo.count) entries: ids 0...\(vo.count - 1))")
            }
            if let other = idToToken[Int32(id)] {
                if strict { throw vj.error("entries \(StrictJSON.quote(other)) and \(StrictJSON.quote(k)) both have id \(id)") }
            } else {
                idToToken[Int32(id)] = k
            }
            vocab[ByteKey(k)] = Int32(id)
        }
        return (vocab, idToToken)
    }

    /// `merges`: the merge pairs by rank; `mergeError(rank, message)` names where a bad one came from.
    init(vocab: [ByteKey: Int32], idToToken: [Int32: String], merges pairs: [(String, String)],
         mergeError: (Int, String) -> GiftError, prefix: [UInt8]? = nil, suffix: [UInt8]? = nil, fuseUnk: Bool = false,
         byteFallback: Bool = false, ignoreMerges: Bool = false, unk: (id: Int32, token: String)? = nil) throws {
        self.vocab = vocab
        self.idToToken = idToToken
        self.prefix = prefix
        self.suffix = suffix
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        unkID = unk?.id
        unkToken = unk?.token

        var merges: [UInt64: (rank: UInt32, id: Int32)] = [:]
        merges.reserveCapacity(pairs.count)
        let prefixLen = prefix?.count ?? 0
        for (rank, (a, b)) in pairs.enumerated() {
            guard let ia = vocab[ByteKey(a)] else { throw mergeError(rank, "merge token \(StrictJSON.quote(a)) is not in the vocabulary") }
            guard let ib = vocab[ByteKey(b)] else { throw mergeError(rank, "merge token \(StrictJSON.quote(b)) is not in the vocabulary") }
            let bb = Array(b.utf8)
            let merged = Array(a.utf8) + bb.dropFirst(min(prefixLen, bb.count))
            guard let im = vocab[ByteKey(merged)] else {
                throw mergeError(rank, "merged token \(StrictJSON.quote(String(decoding: merged, as: UTF8.self))) is not in the vocabulary")
            }
            merges[UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))] = (UInt32(rank), im)
        }
        self.merges = merges

        var small = [Int32](repeating: -1, count: 0x180)
        for v in 0..<0x180 {
            guard let c = Unicode.Scalar(UInt32(v)) else { continue }
            var b: [UInt8] = []
            appendUTF8(c, to: &b)
            if let id = vocab[ByteKey(b)] { small[v] = id }
        }
        smallChar = small
        let hex = Array("0123456789ABCDEF".utf8)
        byteTokens = (0..<256).map { b in vocab[ByteKey([0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E])] ?? -1 }
    }

    /// The ids of one pre-token.
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int32]) {
        if word.isEmpty { return }
        let key = ByteKey(word.utf8Bytes)
        if ignoreMerges, let id = vocab[key] { out.append(id); return }
        lock.lock()
        let hit = cache[key]
        lock.unlock()
        if let hit { out.append(contentsOf: hit); return }
        let ids = merge(word)
        if key.bytes.count < 256 {
            lock.lock()
            if cache.count < BPEModel.cacheCapacity { cache[key] = ids }
            lock.unlock()
        }
        out.append(contentsOf: ids)
    }

    private struct Symbol { var id: Int32; var prev: Int32; var next: Int32; var alive: Bool }

    /// HF's merge_word then merge_all.
    func merge(_ word: [Unicode.Scalar]) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        var unk: Int32? = nil  // a pending unk (fuse_unk merges consecutive ones)
        let plain = prefix == nil && suffix == nil
        for (i, c) in word.enumerated() {
            var id: Int32? = nil
            var bytes: [UInt8] = []
            if plain && c.value < 0x180 {
                let s = smallChar[Int(c.value)]
                if s >= 0 { id = s }
            }
            if id == nil {
                if let p = prefix, i > 0 { bytes += p }
                appendUTF8(c, to: &bytes)
                if let s = suffix, i == word.count - 1 { bytes += s }
                id = vocab[ByteKey(bytes)]
            }
            if let id {
                if let u = unk { ids.append(u); unk = nil }
                ids.append(id)
                continue
            }
            if byteFallback {
                let bt = bytes.map { byteTokens[Int($0)] }
                if !bt.contains(-1) {
                    // as HF: a pending unk stays pending across byte-fallback tokens
                    ids.append(contentsOf: bt)
                    continue
                }
            }
            if let u = unkID {
                if unk != nil, !fuseUnk { ids.append(unk!) }
                unk = u
            }
        }
        if let u = unk { ids.append(u) }
        if ids.count < 2 || merges.isEmpty { return ids }

        var sym = ids.enumerated().map { Symbol(id: $0.element, prev: Int32($0.offset) - 1, next: Int32($0.offset) + 1, alive: true) }
        sym[sym.count - 1].next = -1
        var heap = MergeHeap()
        for p in 0..<(sym.count - 1) {
            if let m = merges[UInt64(UInt32(sym[p].id)) << 32 | UInt64(UInt32(sym[p + 1].id))] {
                heap.push(rank: m.rank, pos: Int32(p), id: m.id)
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.pos)
            if !sym[pos].alive { continue }
            let nextPos = Int(sym[pos].next)
            if nextPos < 0 { continue }
            let right = sym[nextPos]
            guard let m = merges[UInt64(UInt32(sym[pos].id)) << 32 | UInt64(UInt32(right.id))], m.id == top.id else { continue }
            sym[pos].id = top.id
            sym[pos].next = right.next
            sym[nextPos].alive = false
            if right.next >= 0 && Int(right.next) < sym.count { sym[Int(right.next)].prev = Int32(pos) }
            let cur = sym[pos]
            if cur.prev >= 0 {
                let prev = sym[Int(cur.prev)]
                if let m = merges[UInt64(UInt32(prev.id)) << 32 | UInt64(UInt32(cur.id))] {
                    heap.push(rank: m.rank, pos: cur.prev, id: m.id)
                }
            }
            if cur.next >= 0 {
                let nx = sym[Int(cur.next)]
                if let m = merges[UInt64(UInt32(cur.id)) << 32 | UInt64(UInt32(nx.id))] {
                    heap.push(rank: m.rank, pos: Int32(pos), id: m.id)
                }
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(sym.count)
        var k = 0
        while k >= 0 && k < sym.count {
            out.append(sym[k].id)
            k = Int(sym[k].next)
        }
        return out
    }
}

/// A binary min-heap of merges ordered by (rank, position).
struct MergeHeap {
    private var a: [(rank: UInt32, pos: Int32, id: Int32)] = []

    @inline(__always) private static func less(_ x: (rank: UInt32, pos: Int32, id: Int32), _ y: (rank: UInt32, pos: Int32, id: Int32)) -> Bool {
        x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos
    }

    mutating func push(rank: UInt32, pos: Int32, id: Int32) {
        a.append((rank, pos, id))
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if MergeHeap.less(a[i], a[p]) { a.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> (rank: UInt32, pos: Int32, id: Int32)? {
        guard let first = a.first else { return nil }
        let last = a.removeLast()
        if a.isEmpty { return first }
        a[0] = last
        var i = 0
        let n = a.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n, MergeHeap.less(a[l], a[m]) { m = l }
            if r < n, MergeHeap.less(a[r], a[m]) { m = r }
            if m == i { break }
            a.swapAt(i, m); i = m
        }
        return first
    }
}
