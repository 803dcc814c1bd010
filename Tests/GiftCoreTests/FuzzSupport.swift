import Foundation
import XCTest
@testable import GiftCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A seeded, deterministic mutator for the files gift reads from untrusted folders (FuzzTests). A case is
// named by (target, case number): the same pair always makes the same bytes, whatever ran before it, so a
// failure message's "GIFT_FUZZ_ONLY=target:case" replays exactly that case.
//
// Mutations know the formats well enough to get past the first check: JSON is mutated token by token
// (numbers, strings, keys, values, nesting, duplicated and removed members); a safetensors header is
// mutated as JSON and its length prefix rewritten; a checkpoint shard's header fields are set to
// boundary values and its header hash (and a mutated frame's hash) recomputed; a checkpoint manifest's
// envelope checksum and a prepared set's file checksums are recomputed after the change ("resealed"), so
// the checks behind the checksums are reached too. Every format also gets plain byte damage
// (truncation, bit flips, insertion, deletion, duplication) without resealing.

/// SplitMix64, keyed by (seed, a, b).
struct FuzzRNG {
    private var state: UInt64
    init(_ seed: UInt64, _ a: UInt64, _ b: UInt64) {
        state = seed ^ (a &* 0x9E37_79B9_7F4A_7C15) ^ (b &* 0xC2B2_AE3D_27D4_EB4F) ^ 0x5DEE_CE66_D1CE_F00D
        _ = next(); _ = next()
    }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n (0 when n <= 0).
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    /// A position in lo..<hi biased towards both ends and small offsets (where headers and lengths are).
    mutating func position(_ lo: Int, _ hi: Int) -> Int {
        guard hi > lo else { return lo }
        switch below(4) {
        case 0: return lo + below(min(64, hi - lo))
        case 1: return hi - 1 - below(min(64, hi - lo))
        default: return lo + below(hi - lo)
        }
    }
}

/// The files of one folder a case changes: path relative to the folder -> new bytes (nil: delete the file).
typealias FuzzEdit = [String: [UInt8]?]

/// What a case did, for its failure message.
struct FuzzCase {
    var edit: FuzzEdit
    var steps: [String]
    var description: String { steps.joined(separator: "; then ") }
}

// MARK: JSON tokens

/// A lexical token of (possibly damaged) JSON text: enough structure to mutate values, keys and members.
struct JSONToken {
    enum Kind { case string, number, literal, open, close, colon, comma }
    var kind: Kind
    var range: Range<Int>
    /// A string followed by ':'.
    var isKey = false
}

enum JSONLexer {
    /// Tokens of `b[range]`; lexing stops quietly at anything it does not understand.
    static func tokens(_ b: [UInt8], _ range: Range<Int>) -> [JSONToken] {
        var out: [JSONToken] = []
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = b[i]
            switch c {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            case UInt8(ascii: "{"), UInt8(ascii: "["): out.append(JSONToken(kind: .open, range: i..<(i + 1))); i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): out.append(JSONToken(kind: .close, range: i..<(i + 1))); i += 1
            case UInt8(ascii: ":"):
                if let last = out.indices.last, out[last].kind == .string { out[last].isKey = true }
                out.append(JSONToken(kind: .colon, range: i..<(i + 1))); i += 1
            case UInt8(ascii: ","): out.append(JSONToken(kind: .comma, range: i..<(i + 1))); i += 1
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < end, b[j] != UInt8(ascii: "\"") { j += b[j] == UInt8(ascii: "\\") ? 2 : 1 }
                guard j < end else { return out }
                out.append(JSONToken(kind: .string, range: i..<(j + 1))); i = j + 1
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                var j = i + 1
                while j < end, (b[j] >= 0x30 && b[j] <= 0x39) || b[j] == UInt8(ascii: ".") || b[j] == UInt8(ascii: "e")
                        || b[j] == UInt8(ascii: "E") || b[j] == UInt8(ascii: "+") || b[j] == UInt8(ascii: "-") { j += 1 }
                out.append(JSONToken(kind: .number, range: i..<j)); i = j
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                var j = i
                while j < end, b[j] >= UInt8(ascii: "a"), b[j] <= UInt8(ascii: "z") { j += 1 }
                out.append(JSONToken(kind: .literal, range: i..<j)); i = j
            default:
                return out
            }
        }
        return out
    }
}

// MARK: mutators

enum FuzzMutator {
    static let interestingNumbers = [
        "0", "-0", "1", "-1", "2", "3", "7", "8", "63", "64", "65", "1.5", "0.5", "64.0", "1e3", "1E2", "-1e2",
        "255", "256", "65535", "65536", "2147483647", "2147483648", "-2147483649", "4294967295", "4294967296",
        "9007199254740993", "4611686018427387904", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "123456789012345678901234567890", "1e308", "1e309", "1e999", "-1e999", "1e-999", "0.000001", "1099511627776",
    ]
    static let interestingStrings = [
        "", "x", "A", "F32", "BF16", "F16", "I64", "U8", "BOOL", "F64", "LORA", "BPE", "none", "auto", "llada", "llama",
        "silu", "rms", "pt", "q_proj", "ff_out", "model.transformer.wte.weight", "model.safetensors",
        "model-00001-of-00002.safetensors", "../config.json", "/etc/passwd", ".hidden", "a/b", "\\u0000", "\\n",
        "\\ud800", "\\udc00", "\\ud83d\\ude00", "é", "e\\u0301", "<|endoftext|>", "<|mdm_mask|>", "<s>", "<0x41>",
        "{{ messages }}", "(a+)+$", "[", "\\\\p{L}+", "Regex", "String", "__metadata__", "GIFTSHD1",
        "gift-prepared-v1", "0000000000000000", "ffffffffffffffff", "zzzzzzzzzzzzzzzz",
    ]
    static let valueReplacements = ["null", "true", "false", "[]", "{}", "\"1\"", "[1, 2]", "{\"a\": 1}", "[[]]", "\"\"", "0"]

    // MARK: bytes

    /// Plain byte damage somewhere in `lo..<hi` (the whole buffer by default), without resealing.
    static func bytes(_ b: inout [UInt8], _ r: inout FuzzRNG, in lo: Int = 0, _ hi: Int? = nil) -> String {
        let hi = min(hi ?? b.count, b.count)
        guard hi > lo else {
            b.append(UInt8(truncatingIfNeeded: r.next()))
            return "append 1 byte to an empty range"
        }
        switch r.below(8) {
        case 0:
            let at = r.chance(0.5) ? r.position(lo, hi) : lo + r.below(hi - lo + 1)
            b.removeSubrange(at...)
            return "truncate at byte \(at)"
        case 1:
            let at = r.position(lo, hi), bit = r.below(8)
            b[at] ^= UInt8(1 << bit)
            return "flip bit \(bit) of byte \(at)"
        case 2:
            let at = r.position(lo, hi)
            let v = r.pick([0x00, 0xFF, 0x7F, 0x80, 0x22, 0x5C, 0x7B, 0x5B, 0x7D, 0x5D, 0x30, 0x39, 0x2D, 0x2E, 0x65, 0x2C, 0x3A, 0x0A, 0xC3, 0xED] as [UInt8])
            let old = b[at]; b[at] = v
            return "set byte \(at) from 0x\(String(old, radix: 16)) to 0x\(String(v, radix: 16))"
        case 3:
            let at = lo + r.below(hi - lo + 1)
            let n = 1 + r.below(16)
            let ins: [UInt8] = r.chance(0.5) ? (0..<n).map { _ in UInt8(truncatingIfNeeded: r.next()) }
                : Array(r.pick(["{", "}", "[", "]", "\"", ",", ":", "\\", "null", "1e999", "-", "\u{0}", "\"a\":1,", "ÿ", "\u{FFFD}"]).utf8)
            b.insert(contentsOf: ins, at: at)
            return "insert \(ins.count) bytes at \(at)"
        case 4:
            let at = r.position(lo, hi), n = 1 + r.below(min(64, hi - at))
            b.removeSubrange(at..<min(b.count, at + n))
            return "delete \(n) bytes at \(at)"
        case 5:
            let at = r.position(lo, hi), n = 1 + r.below(min(256, hi - at))
            let chunk = Array(b[at..<min(b.count, at + n)])
            let to = lo + r.below(hi - lo + 1)
            b.insert(contentsOf: chunk, at: to)
            return "copy \(chunk.count) bytes from \(at) to \(to)"
        case 6:
            let at = r.position(lo, hi), n = 1 + r.below(min(8, hi - at))
            for k in at..<min(b.count, at + n) { b[k] = UInt8(truncatingIfNeeded: r.next()) }
            return "randomize \(n) bytes at \(at)"
        default:
            let n = 1 + r.below(4096)
            let at = lo + r.below(hi - lo + 1)
            b.insert(contentsOf: [UInt8](repeating: r.pick([0x20, 0x00, 0x5B, 0x7B, 0x41] as [UInt8]), count: n), at: at)
            return "insert a run of \(n) bytes at \(at)"
        }
    }

    // MARK: JSON

    /// One token-level change of the JSON text in `range` of `b`; returns its description and the change in
    /// length (nil when the text has no token of the kind chosen; the caller falls back to byte damage).
    static func json(_ b: inout [UInt8], _ r: inout FuzzRNG, range: Range<Int>) -> (String, Int)? {
        let toks = JSONLexer.tokens(b, range)
        guard !toks.isEmpty else { return nil }
        func text(_ t: JSONToken) -> String { String(decoding: b[t.range], as: UTF8.self) }
        func brief(_ s: String) -> String { s.count > 40 ? String(s.prefix(40)) + "…(\(s.utf8.count) bytes)" : s }
        func replace(_ rg: Range<Int>, _ s: String) -> Int {
            let new = Array(s.utf8)
            b.replaceSubrange(rg, with: new)
            return new.count - rg.count
        }
        let numbers = toks.filter { $0.kind == .number }
        let values = toks.filter { ($0.kind == .string && !$0.isKey) || $0.kind == .number || $0.kind == .literal }
        let keys = toks.filter { $0.isKey }
        switch r.below(10) {
        case 0, 1:   // a number
            guard !numbers.isEmpty else { return nil }
            let t = r.pick(numbers), old = text(t)
            var s = r.pick(interestingNumbers)
            if let v = Int(old), r.chance(0.3) {
                s = String(r.pick([v &+ 1, v &- 1, v &* 2, v / 2, v &* 1000, 0 &- v, v &+ 8]))
            }
            return ("number \(old) at byte \(t.range.lowerBound) -> \(s)", replace(t.range, s))
        case 2:   // a string value
            let strs = values.filter { $0.kind == .string }
            guard !strs.isEmpty else { return nil }
            let t = r.pick(strs), old = text(t)
            var s: String
            switch r.below(4) {
            case 0: s = "\"" + String(repeating: r.pick(["a", "é", "{", "("]), count: r.pick([100, 70_000])) + "\""
            case 1: s = text(r.pick(strs))   // another string of the file
            default: s = "\"" + r.pick(interestingStrings) + "\""
            }
            return ("string \(brief(old)) at byte \(t.range.lowerBound) -> \(brief(s))", replace(t.range, s))
        case 3:   // a key
            guard !keys.isEmpty else { return nil }
            let t = r.pick(keys), old = text(t)
            let s = r.chance(0.6) ? text(r.pick(keys)) : "\"" + r.pick(["", "__metadata__", "x", "dtype", "shape", "data_offsets", "type", "id"]) + "\""
            return ("key \(brief(old)) at byte \(t.range.lowerBound) -> \(brief(s))", replace(t.range, s))
        case 4:   // a value's type
            guard !values.isEmpty else { return nil }
            let t = r.pick(values), s = r.pick(valueReplacements)
            return ("value \(brief(text(t))) at byte \(t.range.lowerBound) -> \(s)", replace(t.range, s))
        case 5:   // deep nesting in place of a value
            guard !values.isEmpty else { return nil }
            let t = r.pick(values), n = r.pick([20, 62, 63, 64, 65, 100, 1000, 200_000])
            let obj = r.chance(0.3)
            let s = obj ? String(repeating: "{\"a\":", count: n) + text(t) + String(repeating: "}", count: n)
                : String(repeating: "[", count: n) + text(t) + String(repeating: "]", count: n)
            return ("value at byte \(t.range.lowerBound) nested \(n) deep in \(obj ? "objects" : "arrays")", replace(t.range, s))
        case 6:   // a duplicated member: "k": v, inserted before "k"
            let pairs = toks.indices.filter { toks[$0].isKey && $0 + 2 < toks.count }
            guard !pairs.isEmpty else { return nil }
            let i = r.pick(pairs), v = toks[i + 2]
            let scalar = v.kind == .string || v.kind == .number || v.kind == .literal
            let value = scalar ? (r.chance(0.5) ? text(v) : r.pick(valueReplacements)) : r.pick(valueReplacements)
            let s = text(toks[i]) + ":" + value + ","
            let at = toks[i].range.lowerBound
            b.insert(contentsOf: Array(s.utf8), at: at)
            return ("duplicate key \(brief(String(decoding: b[(at + s.utf8.count)..<(at + s.utf8.count + toks[i].range.count)], as: UTF8.self))) with value \(brief(value)) inserted at byte \(at)", s.utf8.count)
        case 7:   // a removed member or element (scalar values only)
            let cands = toks.indices.filter { i in
                let t = toks[i]
                guard t.kind == .string || t.kind == .number || t.kind == .literal, !t.isKey else { return false }
                return true
            }
            guard !cands.isEmpty else { return nil }
            let i = r.pick(cands)
            var lo = toks[i].range.lowerBound, hi = toks[i].range.upperBound
            if i >= 2, toks[i - 1].kind == .colon, toks[i - 2].isKey { lo = toks[i - 2].range.lowerBound }
            if i + 1 < toks.count, toks[i + 1].kind == .comma { hi = toks[i + 1].range.upperBound }
            else if let p = toks.lastIndex(where: { $0.range.upperBound <= lo }), toks[p].kind == .comma { lo = toks[p].range.lowerBound }
            let removed = String(decoding: b[lo..<hi], as: UTF8.self)
            b.removeSubrange(lo..<hi)
            return ("remove \(brief(removed)) at byte \(lo)", -(hi - lo))
        case 8:   // a duplicated array element or container
            let opens = toks.indices.filter { toks[$0].kind == .open }
            guard !opens.isEmpty else { return nil }
            let i = r.pick(opens)
            // the matching close
            var depth = 0, j = i
            while j < toks.count {
                if toks[j].kind == .open { depth += 1 } else if toks[j].kind == .close { depth -= 1; if depth == 0 { break } }
                j += 1
            }
            guard j < toks.count else { return nil }
            let rg = toks[i].range.lowerBound..<toks[j].range.upperBound
            guard rg.count < 1 << 20 else { return nil }
            let whole = Array(b[rg])
            let open = b[toks[i].range.lowerBound]
            if open == UInt8(ascii: "["), r.chance(0.5) {
                // the container's content repeated: [a, b] -> [a, b, a, b]
                let inner = Array(b[(rg.lowerBound + 1)..<(rg.upperBound - 1)])
                guard !inner.allSatisfy({ $0 == 0x20 || $0 == 0x0A }) else { return nil }
                let ins = [UInt8(ascii: ",")] + inner
                b.insert(contentsOf: ins, at: rg.upperBound - 1)
                return ("array at byte \(rg.lowerBound) has its elements repeated", ins.count)
            }
            // the container wrapped in a list or given twice
            if r.chance(0.5) {
                let s = [UInt8(ascii: "[")] + whole + [UInt8(ascii: ",")] + whole + [UInt8(ascii: "]")]
                b.replaceSubrange(rg, with: s)
                return ("container at byte \(rg.lowerBound) replaced by a list of it twice", s.count - rg.count)
            }
            b.replaceSubrange(rg, with: [UInt8]("[]".utf8))
            return ("container at byte \(rg.lowerBound) (\(rg.count) bytes) emptied to []", 2 - rg.count)
        default:  // a structural token removed or doubled
            let punct = toks.filter { $0.kind != .string && $0.kind != .number && $0.kind != .literal }
            guard !punct.isEmpty else { return nil }
            let t = r.pick(punct), old = text(t)
            if r.chance(0.5) {
                b.removeSubrange(t.range)
                return ("remove '\(old)' at byte \(t.range.lowerBound)", -1)
            }
            let c = b[t.range.lowerBound]
            b.insert(c, at: t.range.lowerBound)
            return ("double '\(old)' at byte \(t.range.lowerBound)", 1)
        }
    }

    /// A JSON file: mostly token-level changes, sometimes byte damage.
    static func jsonFile(_ b: inout [UInt8], _ r: inout FuzzRNG) -> String {
        if r.chance(0.8), let j = json(&b, &r, range: 0..<b.count) { return j.0 }
        return bytes(&b, &r)
    }

    // MARK: chat templates

    static let templateFragments = [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "{% if x %}", "{% endif %}", "{% else %}",
        "{% elif true %}", "{% for m in messages %}", "{% endfor %}", "{% set x = 1 %}", "{% set ns = namespace(a=1) %}",
        "{{ messages }}", "{{ messages | tojson }}", "|", "(", ")", "[", "]", "'", "\"", "~", "*", "+", "-", "not ",
        "loop.index", "loop.last", "{% raw %}", "{% endraw %}", "{{ x.y.z }}", "{{ messages[0]['content'] * 3 }}",
        "{{ range(10) | list }}", "{% macro m() %}", "namespace(", "{% break %}", "{% continue %}", "\\u", "\n", " ",
        "{{ raise_exception('x') }}", "{% generation %}", "{% endgeneration %}", "{{ 1/0 }}", "{{ 'a' ~ 1 }}",
        "{{ messages|length }}", "{% if messages[0].role == 'system' %}", "[1, 2, 3]", "{'a': 1}", "is defined",
        "| trim", "| upper", ".strip()", ".split(' ')", "{{ bos_token }}", "{{ '%s' % 1 }}", "{{ 10 ** 10 }}",
        "{% for i in range(1000) %}", "{{ loop.cycle(1, 2) }}", "{{ x if y else z }}", "é", "\u{0}",
    ]

    /// One change of a chat template's text.
    static func template(_ s: inout [Unicode.Scalar], _ r: inout FuzzRNG) -> String {
        let n = s.count
        switch r.below(8) {
        case 0, 1, 2:
            let at = r.below(n + 1), f = r.pick(templateFragments)
            s.insert(contentsOf: f.unicodeScalars, at: at)
            return "insert \(StrictJSON.quote(f)) at character \(at)"
        case 3:
            guard n > 0 else { return "nothing to delete" }
            let at = r.below(n), k = 1 + r.below(min(40, n - at))
            s.removeSubrange(at..<(at + k))
            return "delete \(k) characters at \(at)"
        case 4:
            guard n > 0 else { return "nothing to copy" }
            let at = r.below(n), k = 1 + r.below(min(400, n - at)), to = r.below(n + 1)
            s.insert(contentsOf: Array(s[at..<(at + k)]), at: to)
            return "copy \(k) characters from \(at) to \(to)"
        case 5:
            let at = r.below(n + 1)
            s.removeSubrange(at...)
            return "truncate at character \(at)"
        case 6:
            // nesting: brackets or blocks around a stretch
            let depth = r.pick([10, 50, 99, 100, 101, 300, 5000])
            let at = r.below(n + 1), end = min(n, at + r.below(50))
            let (open, close) = r.pick([("{{ " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " }}", ""),
                                        (String(repeating: "{% if true %}", count: depth), String(repeating: "{% endif %}", count: depth)),
                                        (String(repeating: "{% for a in [1] %}", count: depth), String(repeating: "{% endfor %}", count: depth)),
                                        ("{{ " + String(repeating: "-", count: depth) + "1 }}", ""),
                                        ("{{ [" + String(repeating: "[", count: depth), String(repeating: "]", count: depth) + "] }}")])
            s.insert(contentsOf: close.unicodeScalars, at: end)
            s.insert(contentsOf: open.unicodeScalars, at: at)
            return "nest \(depth) deep at characters \(at)..<\(end)"
        default:
            guard n > 0 else { return "nothing to change" }
            let at = r.below(n)
            let c = r.pick(["{", "}", "%", "(", ")", "'", "\"", "|", ".", "x", "0", "\u{FFFD}", "\\"] as [Unicode.Scalar])
            s[at] = c
            return "character \(at) -> \(StrictJSON.quote(String(Character(c))))"
        }
    }

    // MARK: binary

    /// A little-endian integer field of `width` bytes at `at` set to a boundary value.
    static func setInteger(_ b: inout [UInt8], at: Int, width: Int, _ r: inout FuzzRNG, fileSize: Int) -> String {
        var old: UInt64 = 0
        for k in 0..<width { old |= UInt64(b[at + k]) << (8 * UInt64(k)) }
        let mask: UInt64 = width == 8 ? .max : (1 << (8 * UInt64(width))) - 1
        let cands: [UInt64] = [0, 1, 2, 7, 8, 12, 255, 256, 65535, 1 << 20, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
                               1 << 40, 1 << 62, (1 << 63) - 1, 1 << 63, .max, .max - 7, UInt64(fileSize), UInt64(fileSize) + 1,
                               UInt64(max(0, fileSize - 1)), old &+ 1, old &- 1, old &* 2, old / 2, old &+ 4, old &- 4, old &* 1000]
        let v = r.pick(cands) & mask
        for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        return "\(width)-byte field at \(at): \(old) -> \(v)"
    }

    static func readLE(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<width where at + k < b.count { v |= UInt64(b[at + k]) << (8 * UInt64(k)) }
        return v
    }

    static func writeLE(_ b: inout [UInt8], _ at: Int, _ width: Int, _ v: UInt64) {
        for k in 0..<width where at + k < b.count { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
    }

    // MARK: safetensors

    /// A safetensors file: its header as JSON (the length prefix rewritten, usually), its length prefix,
    /// or plain damage.
    static func safetensors(_ b: inout [UInt8], _ r: inout FuzzRNG) -> String {
        let n = Int(clamping: readLE(b, 0, 8))
        let headerEnd = b.count >= 8 && n <= b.count - 8 ? 8 + n : b.count
        switch r.below(10) {
        case 0, 1, 2, 3, 4, 5:
            guard let j = json(&b, &r, range: 8..<headerEnd) else { return bytes(&b, &r, in: 8, headerEnd) }
            let (d, delta) = j
            if headerEnd - 8 == n, r.chance(0.9) {
                writeLE(&b, 0, 8, UInt64(n + delta))
                return "header: \(d) (length prefix \(n) -> \(n + delta))"
            }
            return "header: \(d) (length prefix left at \(n))"
        case 6:
            guard b.count >= 8 else { return bytes(&b, &r) }
            return "length prefix: " + setInteger(&b, at: 0, width: 8, &r, fileSize: b.count)
        case 7:
            return "header bytes: " + bytes(&b, &r, in: 8, headerEnd)
        default:
            return bytes(&b, &r)
        }
    }

    // MARK: checkpoint shards

    /// Offsets and widths of a shard's header fields (prefix and every entry), and each frame's range and
    /// its entry's hash field; empty when the header cannot be walked.
    static func shardFields(_ b: [UInt8]) -> (fields: [(Int, Int)], frames: [(Range<Int>, Int)], headerEnd: Int)? {
        guard b.count >= 28 else { return nil }
        let h = Int(readLE(b, 12, 4))
        guard h >= 12, 16 + h <= b.count else { return nil }
        var fields: [(Int, Int)] = [(8, 4), (12, 4), (16, 4)]
        var frames: [(Range<Int>, Int)] = []
        let count = Int(readLE(b, 16, 4))
        var pos = 20, dataAt = 16 + h
        for _ in 0..<min(count, 1000) {
            guard pos + 2 <= 16 + h - 8 else { return nil }
            let l = Int(readLE(b, pos, 2))
            fields.append((pos, 2)); pos += 2 + l
            guard pos + 34 <= 16 + h - 8 else { return nil }
            fields.append((pos, 1)); fields.append((pos + 1, 1)); pos += 2
            for k in 0..<4 { fields.append((pos + 8 * k, 8)) }
            let c = Int(clamping: readLE(b, pos + 16, 8))
            guard c <= b.count - dataAt else { return nil }
            frames.append((dataAt..<(dataAt + c), pos + 24))
            dataAt += c; pos += 32
        }
        fields.append((16 + h - 8, 8))
        return (fields, frames, 16 + h)
    }

    /// Recomputes a shard's header hash (the header length as the file now says).
    static func resealShardHeader(_ b: inout [UInt8]) {
        let h = Int(readLE(b, 12, 4))
        guard h >= 12, 16 + h <= b.count else { return }
        writeLE(&b, 16 + h - 8, 8, XXH64.hash(Array(b[0..<(16 + h - 8)])))
    }

    /// A checkpoint shard: a header field set to a boundary value, a section name changed, or a frame
    /// damaged, with the hashes recomputed (usually); or plain damage.
    static func shard(_ b: inout [UInt8], _ r: inout FuzzRNG) -> String {
        guard let sf = shardFields(b) else { return bytes(&b, &r) }
        let (fields, frames, headerEnd) = sf
        let reseal = r.chance(0.9)
        var d: String
        switch r.below(10) {
        case 0, 1, 2, 3:
            let (at, w) = r.pick(Array(fields.dropLast()))
            d = "header " + setInteger(&b, at: at, width: w, &r, fileSize: b.count)
        case 4:
            let before = b.count
            d = "header bytes: " + bytes(&b, &r, in: 16, headerEnd - 8)
            // keep the header length consistent with an insertion or deletion, half the time
            if b.count != before, b.count >= 16, r.chance(0.5) {
                writeLE(&b, 12, 4, UInt64(max(0, Int(readLE(b, 12, 4)) + b.count - before)))
                d += " (header length adjusted)"
            }
        case 5, 6, 7:
            guard !frames.isEmpty else { return bytes(&b, &r) }
            let (rg, hashAt) = r.pick(frames)
            guard !rg.isEmpty else { return bytes(&b, &r) }
            let at = r.position(rg.lowerBound, rg.upperBound)
            switch r.below(3) {
            case 0: b[at] ^= UInt8(1 << r.below(8)); d = "flip a bit of frame byte \(at)"
            case 1: b[at] = UInt8(truncatingIfNeeded: r.next()); d = "set frame byte \(at)"
            default:
                let k = 1 + r.below(min(8, rg.upperBound - at))
                for j in at..<(at + k) { b[j] = 0 }
                d = "zero \(k) frame bytes at \(at)"
            }
            if reseal { writeLE(&b, hashAt, 8, XXH64.hash(Array(b[rg]))) }
        default:
            d = bytes(&b, &r)
            return d + " (not resealed)"
        }
        if reseal { resealShardHeader(&b); d += " (hashes recomputed)" }
        return d
    }

    // MARK: checkpoint manifests

    /// A checkpoint manifest: its body mutated as JSON and the envelope's checksum recomputed (usually),
    /// or plain damage.
    static func manifest(_ b: inout [UInt8], _ r: inout FuzzRNG) -> String {
        let pl = Manifest.prefixLength, sl = Manifest.suffix.utf8.count
        guard b.count > pl + sl, r.chance(0.85) else { return bytes(&b, &r) }
        guard let j = json(&b, &r, range: pl..<(b.count - sl)) else { return bytes(&b, &r) }
        let d = j.0
        guard b.count > pl + sl, r.chance(0.9) else { return "body: \(d) (checksum not recomputed)" }
        var h = FNV1a()
        Array(b[pl..<(b.count - sl)]).withUnsafeBytes { h.add($0) }
        let hex = Array(String(format: "%016llx", h.value).utf8)
        b.replaceSubrange(14..<30, with: hex)
        return "body: \(d) (checksum recomputed)"
    }
}

// MARK: running cases

/// Runs each case's loader on one long-lived thread with an 8 MiB stack (the main thread's, which the
/// CLI runs on), so that a case that hangs is reported (and the run stopped) instead of hanging the suite.
/// A crash kills the test process, as it should; the signal handler first prints the case being run.
/// Unchecked Sendable: `job` and `error` pass between the caller and the worker thread only through the
/// two semaphores (a signal orders the writes before it with the reads after the matching wait); after a
/// hung case the caller never touches them again (`finished`).
final class FuzzWorker: @unchecked Sendable {
    enum Outcome { case returned, threw(Error), hung }
    private let go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
    private var job: (() throws -> Void)?
    private var error: Error?
    private var finished = false

    init() {
        let t = Thread { [unowned self] in self.loop() }
        t.stackSize = 8 << 20
        t.start()
    }

    private func loop() {
        FuzzCrashReport.installAlternateStack()
        while true {
            go.wait()
            guard let j = job else { return }
            do { try j(); error = nil } catch { self.error = error }
            done.signal()
        }
    }

    func run(timeout: Double, _ f: @escaping () throws -> Void) -> Outcome {
        precondition(!finished)
        job = f
        go.signal()
        if done.wait(timeout: .now() + timeout) == .timedOut { finished = true; return .hung }
        return error.map { .threw($0) } ?? .returned
    }

    /// Ends the thread (when it is not stuck in a hung case).
    func stop() {
        guard !finished else { return }
        finished = true
        job = nil
        go.signal()
    }
}

/// What a crash prints: the case being run, written by a signal handler (async-signal-safe `write`)
/// before the runtime's own crash report.
/// nonisolated(unsafe) below: a signal handler may take no lock, so what it reads is plain global memory.
/// The test thread writes `length` and the buffer between cases; a handler that interrupts a write prints
/// a torn case name at worst, which is still a crash report.
enum FuzzCrashReport {
    static let capacity = 8192
    nonisolated(unsafe) static let buffer: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
        p.initialize(repeating: 0, count: capacity)
        return p
    }()
    nonisolated(unsafe) static var length = 0
    nonisolated(unsafe) static var installed = false   // (set once, by the test thread, before any fuzz case)
    nonisolated(unsafe) static let previousTable = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)

    /// Records the case now running (what a crash report prints).
    static func set(_ s: String) {
        let bytes = Array(("\nFUZZ CRASH in case: " + s + "\n").utf8.prefix(capacity))
        bytes.withUnsafeBufferPointer { src in
            UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress!, byteCount: src.count)
        }
        length = bytes.count
    }

    static func clear() { length = 0 }

    static func installAlternateStack() {
        #if os(Linux)
        let size = 1 << 16
        var ss = stack_t()
        ss.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        ss.ss_size = size
        ss.ss_flags = 0
        sigaltstack(&ss, nil)
        #endif
    }

    /// Installs the handler for the signals of a crash (once), chaining to whatever was there before.
    static func install() {
        #if os(Linux)
        guard !installed else { return }
        installed = true
        _ = buffer
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] {
            var sa = sigaction()
            sa.__sigaction_handler.sa_handler = { sig in
                if FuzzCrashReport.length > 0 {
                    _ = write(2, FuzzCrashReport.buffer, FuzzCrashReport.length)
                }
                // the previous handler (the Swift runtime's backtracer, or the default) takes over
                sigaction(sig, FuzzCrashReport.previousTable + Int(sig), nil)
                if sig == SIGABRT { raise(sig) }
            }
            sa.sa_flags = Int32(SA_ONSTACK)
            sigemptyset(&sa.sa_mask)
            sigaction(sig, &sa, previousTable + Int(sig))
        }
        #endif
    }
}
