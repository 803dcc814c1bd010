import Foundation

/// A regex over Unicode scalars, with Oniguruma's leftmost-first semantics. The split patterns of GPT-2,
/// Llama 3 and Qwen 2 (recognised by their exact text) run as hand-written matchers; any other pattern
/// goes through NSRegularExpression (ICU), whose syntax and Unicode classes match Oniguruma's for the
/// patterns tokenizers use.
///
/// An ICU pattern runs with a backtracking budget (`backtrackBudget`), as HF tokenizers' Oniguruma runs
/// with its retry-limit-in-match: a pattern such as `(a+)+$` that backtracks exponentially on some text
/// stops with an error naming the tokenizer.json field it came from, instead of running for hours.
final class ScalarRegex: @unchecked Sendable {
    enum Kind { case gpt2, llama3(maxDigits: Int), icu(NSRegularExpression) }
    let kind: Kind
    let pattern: String
    /// Where the pattern came from, for errors: "tokenizer.json: pre_tokenizer.pretokenizers[1].pattern.Regex".
    var origin = "regex"

    /// Backtracking steps one search over a text may take: Oniguruma's ONIG_DEFAULT_RETRY_LIMIT_IN_MATCH
    /// (10,000,000), the limit HF tokenizers hits at once on `(a+)+$` against 40 "a" and a "!".
    static let backtrackBudget = 10_000_000
    /// Extra backtracking steps allowed per UTF-16 unit of the text, so that a long text that an ordinary
    /// pattern splits with a few steps a character never comes near the budget (GPT-2's pattern takes
    /// about 4).
    static let backtrackPerUnit = 100
    /// ICU calls the progress block once every 10,000 backtracking steps (its TIMER_INITIAL_VALUE state
    /// saves) and also once for each start position it gives up on; the two calls look alike, so the
    /// budget counts calls: the positions (at most the text's length + 1) plus the steps / 10,000. A
    /// runaway match is therefore stopped after at most (budget + 100·n)/10,000 + n + 1 calls, i.e. after
    /// 10^7 steps on a short text and no more than about 10^4·n extra steps on a text of n units.
    static let icuStepsPerProgressCall = 10_000

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init(kind: Kind, pattern: String) { self.kind = kind; self.pattern = pattern }

    /// `at` names the JSON field in a refusal.
    static func make(_ pattern: String, at j: TJ?) throws -> ScalarRegex {
        let r = try makeKind(pattern, at: j)
        if let j { r.origin = "\(j.source): \(j.path.isEmpty ? "(top level)" : j.path)" }
        return r
    }

    static func makeKind(_ pattern: String, at j: TJ?) throws -> ScalarRegex {
        switch pattern {
        case gpt2Pattern: return ScalarRegex(kind: .gpt2, pattern: pattern)
        case llama3Pattern: return ScalarRegex(kind: .llama3(maxDigits: 3), pattern: pattern)
        case qwen2Pattern: return ScalarRegex(kind: .llama3(maxDigits: 1), pattern: pattern)
        default:
            do {
                return ScalarRegex(kind: .icu(try NSRegularExpression(pattern: pattern, options: [])), pattern: pattern)
            } catch {
                let msg = "regex \(StrictJSON.quote(pattern)) is not supported by NSRegularExpression (\(error))"
                throw j?.error(msg) ?? GiftError(.format, msg)
            }
        }
    }

    static let gpt2 = ScalarRegex(kind: .gpt2, pattern: gpt2Pattern)

    /// The non-overlapping matches, left to right (empty matches included, as Oniguruma reports them).
    /// Throws a GiftError naming `origin` when an ICU pattern exceeds its backtracking budget or ICU fails
    /// (its backtracking stack is bounded too); the hand-written matchers are linear and never throw.
    func matches(_ s: [Unicode.Scalar]) throws -> [Range<Int>] {
        switch kind {
        case .gpt2: return ScalarRegex.gpt2Matches(s)
        case .llama3(let d): return ScalarRegex.llama3Matches(s, maxDigits: d)
        case .icu(let re): return try icuMatches(re, s)
        }
    }

    // MARK: hand-written matchers (every position starts a match, so the matches tile the text)

    @inline(__always) static func run(_ s: [Unicode.Scalar], from i: Int, class k: UInt8) -> Int {
        var j = i
        while j < s.count, UClass.of(s[j]) == k { j += 1 }
        return j
    }

    /// \s+(?!\S)|\s+ at a whitespace position: the run less its last character when a non-space follows it.
    @inline(__always) static func spaceRun(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let k = run(s, from: i, class: UClass.space)
        if k == s.count { return k }
        return k - 1 > i ? k - 1 : i + 1
    }

    /// 's|'t|'re|'ve|'m|'ll|'d (case-insensitively with `fold`) at i: the end, or nil.
    @inline(__always) static func contraction(_ s: [Unicode.Scalar], _ i: Int, fold: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func lower(_ c: Unicode.Scalar) -> UInt32 {
            let v = c.value
            if !fold { return v }
            if v >= 0x41 && v <= 0x5A { return v + 32 }
            if v == 0x17F { return 0x73 }  // ſ folds to s
            return v
        }
        let d = lower(s[i + 1])
        if d == 0x73 || d == 0x74 || d == 0x6D || d == 0x64 { return i + 2 }  // s t m d
        if i + 2 < s.count {
            let e = lower(s[i + 2])
            if (d == 0x72 && e == 0x65) || (d == 0x76 && e == 0x65) || (d == 0x6C && e == 0x6C) { return i + 3 }  // re ve ll
        }
        return nil
    }

    /// The matches of a pattern that matches at every position (the hand-written pre-tokenizer
    /// patterns below): one after another from the start, `end(i)` where the match at `i` ends (> i).
    @inline(__always)
    static func consecutiveMatches(_ s: [Unicode.Scalar], _ end: (Int) -> Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(s.count / 4 + 1)
        var i = 0
        while i < s.count {
            let j = end(i)
            out.append(i..<j)
            i = j
        }
        return out
    }

    static func gpt2Matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        let n = s.count
        return consecutiveMatches(s) { i in
            if let e = contraction(s, i, fold: false) { return e }
            let c = s[i]
            let k = UClass.of(c)
            if c == " ", i + 1 < n, UClass.of(s[i + 1]) != UClass.space {
                return run(s, from: i + 1, class: UClass.of(s[i + 1]))
            } else if k != UClass.space {
                return run(s, from: i, class: k)
            } else {
                return spaceRun(s, i)
            }
        }
    }

    /// Llama 3 (maxDigits 3) and Qwen 2 (maxDigits 1).
    static func llama3Matches(_ s: [Unicode.Scalar], maxDigits: Int) -> [Range<Int>] {
        let n = s.count
        return consecutiveMatches(s) { i in
            let j: Int
            let c = s[i]
            let k = UClass.of(c)
            if let e = contraction(s, i, fold: true) {
                j = e
            } else if k == UClass.letter {
                j = run(s, from: i, class: UClass.letter)
            } else if k != UClass.number, c != "\r", c != "\n", i + 1 < n, UClass.of(s[i + 1]) == UClass.letter {
                j = run(s, from: i + 1, class: UClass.letter)
            } else if k == UClass.number {
                var e = i
                while e < n, e - i < maxDigits, UClass.of(s[e]) == UClass.number { e += 1 }
                j = e
            } else if k == UClass.other || (c == " " && i + 1 < n && UClass.of(s[i + 1]) == UClass.other) {
                var e = run(s, from: k == UClass.other ? i : i + 1, class: UClass.other)
                while e < n, s[e] == "\r" || s[e] == "\n" { e += 1 }
                j = e
            } else {
                // whitespace: \s*[\r\n]+ up to the run's last line break, else \s+(?!\S)|\s+
                let r = run(s, from: i, class: UClass.space)
                var p = r - 1
                while p >= i, s[p] != "\r" && s[p] != "\n" { p -= 1 }
                j = p >= i ? p + 1 : spaceRun(s, i)
            }
            return j
        }
    }

    func icuMatches(_ re: NSRegularExpression, _ s: [Unicode.Scalar]) throws -> [Range<Int>] {
        if s.isEmpty { return [] }
        let str = s.scalarText
        // UTF-16 offset -> scalar index
        var toScalar = [Int](repeating: 0, count: str.utf16.count + 1)
        var u = 0
        for (idx, c) in s.enumerated() {
            toScalar[u] = idx
            u += c.value >= 0x10000 ? 2 : 1
            if c.value >= 0x10000 { toScalar[u - 1] = idx + 1 }
        }
        toScalar[u] = s.count
        let allowed = u + 1 + (ScalarRegex.backtrackBudget + ScalarRegex.backtrackPerUnit * u) / ScalarRegex.icuStepsPerProgressCall
        var calls = 0, overBudget = false, engineFailed = false
        var out: [Range<Int>] = []
        re.enumerateMatches(in: str, options: [.reportProgress, .reportCompletion], range: NSRange(location: 0, length: u)) { m, flags, stop in
            if let m {
                out.append(toScalar[m.range.location]..<toScalar[m.range.location + m.range.length])
            } else if flags.contains(.progress) {
                calls += 1
                if calls > allowed { overBudget = true; stop.pointee = true }
            } else if flags.contains(.completed), flags.contains(.internalError) {
                engineFailed = true
            }
        }
        if overBudget {
            throw GiftError(.data, "\(origin): regex \(StrictJSON.quote(pattern)) exceeded its backtracking budget "
                            + "(\(ScalarRegex.backtrackBudget) steps, Oniguruma's retry-limit-in-match, plus "
                            + "\(ScalarRegex.backtrackPerUnit) a character) on a text of \(s.count) characters; "
                            + "HF tokenizers stops it too (\"retry-limit-in-match over\")")
        }
        if engineFailed {
            throw GiftError(.data, "\(origin): regex \(StrictJSON.quote(pattern)) failed in the regex engine (ICU ran out of "
                            + "its backtracking stack or hit an internal error) on a text of \(s.count) characters")
        }
        return out
    }
}

/// HF's split behaviours over (range, isMatch) pieces.
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    static func parse(_ j: TJ) throws -> SplitBehavior {
        let s = try j.string()
        guard let b = SplitBehavior(rawValue: s) else { throw j.error("unknown split behavior '\(s)'") }
        return b
    }
}

enum Splitting {
    /// Non-overlapping leftmost occurrences of a literal.
    static func literalMatches(_ p: [Unicode.Scalar], in s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let m = p.count, n = s.count
        guard m > 0, n >= m else { return out }
        let first = p[0]
        var i = 0
        while i <= n - m {
            if s[i] == first {
                var k = 1
                while k < m, s[i + k] == p[k] { k += 1 }
                if k == m { out.append(i..<(i + m)); i += m; continue }
            }
            i += 1
        }
        return out
    }

    /// Matches -> consecutive (range, isMatch) pieces covering 0..<count (HF's regex find_matches).
    static func fromMatches(_ ms: [Range<Int>], count: Int) -> [(Range<Int>, Bool)] {
        if count == 0 { return [(0..<0, false)] }
        var out: [(Range<Int>, Bool)] = []
        out.reserveCapacity(ms.count * 2 + 1)
        var prev = 0
        for m in ms {
            if prev != m.lowerBound { out.append((prev..<m.lowerBound, false)) }
            out.append((m, true))
            prev = m.upperBound
        }
        if prev != count { out.append((prev..<count, false)) }
        return out
    }

    /// Every character satisfying `pred` is a match of its own (HF's closure patterns).
    static func charMatches(_ s: [Unicode.Scalar], _ pred: (Unicode.Scalar) -> Bool) -> [(Range<Int>, Bool)] {
        if s.isEmpty { return [(0..<0, false)] }
        var out: [(Range<Int>, Bool)] = []
        var last = 0
        for (i, c) in s.enumerated() where pred(c) {
            if last < i { out.append((last..<i, false)) }
            out.append((i..<(i + 1), true))
            last = i + 1
        }
        if s.count > last { out.append((last..<s.count, false)) }
        return out
    }

    /// HF's three merging split behaviours, one loop: walking the pieces (from the end for mergedWithNext,
    /// `backwards`), a piece joins the one kept before it when `joins(its isMatch, the previous piece's)`.
    private static func merged(_ pieces: [(Range<Int>, Bool)], backwards: Bool = false,
                               joins: (Bool, Bool) -> Bool) -> [(Range<Int>, Bool)] {
        var out: [(Range<Int>, Bool)] = []  // (range, remove)
        out.reserveCapacity(pieces.count)
        var previous = false
        for (r, isMatch) in backwards ? pieces.reversed() : pieces {
            if joins(isMatch, previous), let last = out.last {
                out[out.count - 1] = (backwards ? r.lowerBound..<last.0.upperBound : last.0.lowerBound..<r.upperBound, false)
            } else {
                out.append((r, false))
            }
            previous = isMatch
        }
        return backwards ? out.reversed() : out
    }

    /// HF's NormalizedString::split: the non-empty pieces to keep.
    static func split(_ matches: [(Range<Int>, Bool)], _ behavior: SplitBehavior, invert: Bool = false) -> [Range<Int>] {
        let ms = invert ? matches.map { ($0.0, !$0.1) } : matches
        let acc: [(Range<Int>, Bool)]  // (range, remove)
        switch behavior {
        case .isolated: acc = ms.map { ($0.0, false) }
        case .removed: acc = ms
        case .contiguous: acc = merged(ms) { isMatch, previous in isMatch == previous }
        case .mergedWithPrevious: acc = merged(ms) { isMatch, previous in isMatch && !previous }
        case .mergedWithNext: acc = merged(ms, backwards: true) { isMatch, previous in isMatch && !previous }
        }
        return acc.compactMap { ($0.1 || $0.0.isEmpty) ? nil : $0.0 }
    }
}
