import Foundation

/// One entry of tokenizer.json's `added_tokens` (or of tokenizer_config.json's `added_tokens_decoder`).
struct AddedToken {
    let id: Int32
    let content: String
    let scalars: [Unicode.Scalar]
    let special: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
    let singleWord: Bool
}

extension AddedToken {
    /// An added token's object (content and flags; `normalized` defaults to not `special`, as in HF).
    init(_ j: TJ, id: Int32) throws {
        let content = try j.string("content")
        let isSpecial = try j.bool("special", default: false)
        self.init(id: id, content: content, scalars: Array(content.unicodeScalars), special: isSpecial,
                  lstrip: try j.bool("lstrip", default: false), rstrip: try j.bool("rstrip", default: false),
                  normalized: try j.bool("normalized", default: !isSpecial), singleWord: try j.bool("single_word", default: false))
    }
}

/// Leftmost-longest, non-overlapping matching of a set of strings (HF builds an Aho-Corasick automaton
/// with MatchKind::LeftmostLongest; at each position the longest pattern wins).
struct LongestMatcher {
    /// first scalar -> (pattern, id), longest first
    private var byFirst: [UInt32: [([Unicode.Scalar], Int32)]] = [:]
    /// which scalars below 256 start a pattern; whether any larger one does
    private var latin1First = [Bool](repeating: false, count: 256)
    private var otherFirst = false
    var isEmpty: Bool { byFirst.isEmpty }

    init(_ patterns: [([Unicode.Scalar], Int32)]) {
        for (p, id) in patterns where !p.isEmpty {
            byFirst[p[0].value, default: []].append((p, id))
            if p[0].value < 256 { latin1First[Int(p[0].value)] = true } else { otherFirst = true }
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.0.count > $1.0.count } }
    }

    /// The longest pattern starting at i: (length, id).
    @inline(__always) func longest(_ s: [Unicode.Scalar], at i: Int) -> (Int, Int32)? {
        let v = s[i].value
        if v < 256 { if !latin1First[Int(v)] { return nil } } else if !otherFirst { return nil }
        guard let cands = byFirst[v] else { return nil }
        for (p, id) in cands where i + p.count <= s.count {
            var k = 1
            while k < p.count, s[i + k] == p[k] { k += 1 }
            if k == p.count { return (p.count, id) }
        }
        return nil
    }
}

/// The added vocabulary: which ids are added tokens, how they match, which are special.
final class AddedVocabulary: @unchecked Sendable {
    let tokens: [Int32: AddedToken]
    let byContent: [ByteKey: Int32]
    let special: Set<ByteKey>
    /// the normalized content of normalized tokens, where normalization changes it
    let normalizedContent: [Int32: String]
    let raw: LongestMatcher
    let normalizedMatcher: LongestMatcher

    /// tokenizer.json's `added_tokens`.
    convenience init(_ list: [TJ]?, normalizer: TextNormalizer?) throws {
        try self.init(try (list ?? []).map { j in
            let id = try j.require("id").int()
            guard id >= 0, id <= Int(Int32.max) else { throw j.error("invalid token id \(id)") }
            return try AddedToken(j, id: Int32(id))
        }, normalizer: normalizer)
    }

    /// `list` in the order HF adds them (a later token with the same content replaces an earlier one).
    init(_ list: [AddedToken], normalizer: TextNormalizer?) throws {
        var tokens: [Int32: AddedToken] = [:]
        var byContent: [ByteKey: Int32] = [:]
        var special = Set<ByteKey>()
        var normalizedContent: [Int32: String] = [:]
        for t in list where !t.content.isEmpty {
            if let old = byContent[ByteKey(t.content)], old != t.id { tokens[old] = nil }
            tokens[t.id] = t
            byContent[ByteKey(t.content)] = t.id
            if t.special { special.insert(ByteKey(t.content)) }
            if t.normalized, let n = normalizer {
                let normed = try n.apply(t.scalars)
                if normed != t.scalars { normalizedContent[t.id] = normed.scalarText }
            }
        }
        self.tokens = tokens
        self.byContent = byContent
        self.special = special
        self.normalizedContent = normalizedContent
        raw = LongestMatcher(tokens.values.filter { !$0.normalized }.map { ($0.scalars, $0.id) })
        normalizedMatcher = LongestMatcher(tokens.values.filter { $0.normalized }.map {
            (normalizedContent[$0.id].map { Array($0.unicodeScalars) } ?? $0.scalars, $0.id)
        })
    }

    /// The token text HF's decode sees for an added id (the normalized form for normalized tokens).
    func text(of id: Int32) -> String? {
        guard let t = tokens[id] else { return nil }
        return normalizedContent[id] ?? t.content
    }

    /// HF's find_matches: the text cut into (range, token id or nil) pieces.
    func findMatches(_ s: [Unicode.Scalar], _ matcher: LongestMatcher) -> [(Range<Int>, Int32?)] {
        if s.isEmpty { return [] }
        if matcher.isEmpty { return [(0..<s.count, nil)] }
        var out: [(Range<Int>, Int32?)] = []
        var startOffset = 0
        var i = 0
        let n = s.count
        while i < n {
            guard let found = matcher.longest(s, at: i) else { i += 1; continue }
            let (len, id) = found
            var start = i, stop = i + len
            i = stop
            let t = tokens[id]!
            if t.singleWord {
                let startSpace = start == 0 || !UClass.isWord(s[start - 1])
                let stopSpace = stop == n || !UClass.isWord(s[stop])
                if !startSpace || !stopSpace { continue }
            }
            if t.lstrip {
                var ns = start
                while ns > 0, UClass.isWhitespace(s[ns - 1]) { ns -= 1 }
                start = max(ns, startOffset)
            }
            if t.rstrip {
                while stop < n, UClass.isWhitespace(s[stop]) { stop += 1 }
            }
            if startOffset < start { out.append((startOffset..<start, nil)) }
            out.append((start..<stop, id))
            startOffset = stop
        }
        if startOffset != n { out.append((startOffset..<n, nil)) }
        return out
    }

    /// HF's extract_and_normalize: added tokens split out of the raw text, the rest normalized, then
    /// normalized added tokens split out of that.
    func extractAndNormalize(_ text: [Unicode.Scalar], normalizer: TextNormalizer?) throws -> [TextPiece] {
        var pieces: [TextPiece] = []
        for (r, id) in findMatches(text, raw) where !r.isEmpty {
            if let id { pieces.append(TextPiece(s: [], id: id, atStart: r.lowerBound == 0)); continue }
            let piece = Array(text[r])
            let normed = try normalizer?.apply(piece) ?? piece
            for (r2, id2) in findMatches(normed, normalizedMatcher) where !r2.isEmpty {
                pieces.append(TextPiece(s: id2 == nil ? Array(normed[r2]) : [], id: id2,
                                        atStart: r.lowerBound == 0 && r2.lowerBound == 0))
            }
        }
        return pieces
    }
}
