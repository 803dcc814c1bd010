import Foundation

/// A JSON value of a tokenizer.json. StrictJSON's objects are Swift dictionaries keyed by String, whose
/// == and hashing follow canonical equivalence: a vocabulary holding both "é" and "e\u{301}" (common in
/// SentencePiece-style BPE) would be refused as a duplicate key. This reader has the same strictness
/// (exact integers as literal text, no duplicate keys, no lone surrogates, bounded depth) but compares
/// keys byte by byte and keeps their order.
indirect enum TokJSON {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([TokJSON])
    case object(TokObject)

    var intValue: Int? { if case .number(let t) = self { return Int(t) }; return nil }

    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number(let r): return "the number \(r)"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }

    struct ParseError: Error { let message: String; let offset: Int }

    static func parse(_ bytes: [UInt8]) throws -> TokJSON {
        var p = TokJSONParser(b: bytes)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i != bytes.count { throw ParseError(message: "unexpected data after the JSON value", offset: p.i) }
        return v
    }
}

/// An object's members in file order, looked up by the keys' exact bytes.
struct TokObject {
    var keys: [String] = []
    var values: [TokJSON] = []
    var index: [ByteKey: Int] = [:]
    var count: Int { keys.count }
    subscript(_ key: String) -> TokJSON? { index[ByteKey(key)].map { values[$0] } }
}

private struct TokJSONParser {
    let b: [UInt8]
    var i = 0

    func fail(_ m: String) -> TokJSON.ParseError { TokJSON.ParseError(message: m, offset: i) }

    mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func expect(_ c: UInt8) throws {
        guard i < b.count, b[i] == c else {
            throw fail(i < b.count ? "expected '\(Character(Unicode.Scalar(c)))'" : "unexpected end of input")
        }
        i += 1
    }

    mutating func value(depth: Int) throws -> TokJSON {
        guard depth < 64 else { throw fail("nested more than 64 levels deep") }
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o = TokObject()
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input") }
                guard b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let at = i
                let kb = try stringBytes()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let v = try value(depth: depth + 1)
                let key = ByteKey(kb)
                guard o.index[key] == nil else {
                    throw TokJSON.ParseError(message: "duplicate key \(StrictJSON.quote(String(decoding: kb, as: UTF8.self)))", offset: at)
                }
                o.index[key] = o.keys.count
                o.keys.append(String(decoding: kb, as: UTF8.self))
                o.values.append(v)
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(o)
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [TokJSON] = []
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipWhitespace()
                a.append(try value(depth: depth + 1))
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(a)
            }
        case UInt8(ascii: "\""):
            return .string(String(decoding: try stringBytes(), as: UTF8.self))
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try number())
        default:
            throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else {
            throw fail(i + w.count > b.count ? "unexpected end of input" : "invalid literal")
        }
        i += w.count
    }

    mutating func number() throws -> String {
        let start = i
        func isDigit(_ j: Int) -> Bool { j < b.count && b[j] >= 0x30 && b[j] <= 0x39 }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard isDigit(i) else { throw fail(i < b.count ? "invalid number" : "unexpected end of input") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else { while isDigit(i) { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { throw fail("invalid number") }
            while isDigit(i) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { throw fail("invalid number") }
            while isDigit(i) { i += 1 }
        }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    /// A string literal's UTF-8 bytes (escapes resolved; invalid UTF-8 becomes U+FFFD when a String is made).
    mutating func stringBytes() throws -> [UInt8] {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string (unexpected end of input)") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw fail("unterminated string (unexpected end of input)") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate in string")
                    }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("lone surrogate in string") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if code >= 0xDC00 && code < 0xE000 {
                    throw fail("lone surrogate in string")
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                appendUTF8(scalar, to: &out)
            default:
                throw fail("invalid escape in string")
            }
        }
        return out
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }
}

/// A value of a tokenizer.json file together with where it sits (file and JSON path), so that every
/// refusal names both: `tokenizer.json: pre_tokenizer.pretokenizers[1].type: unsupported ...`.
struct TJ {
    let value: TokJSON
    let path: String
    let source: String

    /// Parses a whole tokenizer.json document.
    static func parse(_ bytes: [UInt8], source: String) throws -> TJ {
        do {
            return TJ(value: try TokJSON.parse(bytes), path: "", source: source)
        } catch let e as TokJSON.ParseError {
            throw GiftError(.format, "\(source): not valid JSON (\(e.message) at \(StrictJSON.place(in: bytes, offset: e.offset)))")
        }
    }

    func error(_ message: String) -> GiftError {
        GiftError(.format, "\(source): \(path.isEmpty ? "(top level)" : path): \(message)")
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    var isNull: Bool { if case .null = value { return true }; return false }

    /// The object's members, or a refusal.
    func object() throws -> TokObject {
        guard case .object(let o) = value else { throw error("expected an object, found \(value.kind)") }
        return o
    }

    /// A field (absent and null both give nil).
    func field(_ key: String) throws -> TJ? {
        let o = try object()
        guard let v = o[key] else { return nil }
        if case .null = v { return nil }
        return TJ(value: v, path: child(key), source: source)
    }

    func require(_ key: String) throws -> TJ {
        guard let f = try field(key) else { throw error("missing field '\(key)'") }
        return f
    }

    func array() throws -> [TJ] {
        guard case .array(let a) = value else { throw error("expected an array, found \(value.kind)") }
        return a.enumerated().map { TJ(value: $0.element, path: "\(path)[\($0.offset)]", source: source) }
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw error("expected a string, found \(value.kind)") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw error("expected true or false, found \(value.kind)") }
        return b
    }

    func int() throws -> Int {
        guard let i = value.intValue else { throw error("expected an integer, found \(value.kind)") }
        return i
    }

    func double() throws -> Double {
        guard case .number(let t) = value, let d = Double(t) else { throw error("expected a number, found \(value.kind)") }
        return d
    }

    func string(_ key: String) throws -> String { try require(key).string() }
    func optString(_ key: String) throws -> String? { try field(key)?.string() }
    func bool(_ key: String, default d: Bool) throws -> Bool { try field(key)?.bool() ?? d }
    func int(_ key: String, default d: Int) throws -> Int { try field(key)?.int() ?? d }

    /// A one-scalar string field (Metaspace's replacement, Strip's content).
    func scalar(_ key: String) throws -> Unicode.Scalar {
        let f = try require(key)
        let s = try f.string()
        guard s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else {
            throw f.error("expected a single character, found \"\(s)\"")
        }
        return c
    }

    /// The `type` tag of a component.
    func typeName() throws -> String {
        guard let t = try field("type") else { throw error("missing field 'type'") }
        return try t.string()
    }

    /// Refusal of a component type that gift does not implement.
    func unsupported(_ what: String, _ type: String) -> GiftError {
        GiftError(.format, "\(source): \(child("type")): unsupported \(what) type '\(type)' (gift implements only the components "
                  + "used by byte-level BPE and SentencePiece-style BPE tokenizers)")
    }
}

/// A pattern field: {"String": "..."} (a literal) or {"Regex": "..."}.
enum TextPattern {
    case literal([Unicode.Scalar])
    case regex(ScalarRegex)

    static func parse(_ j: TJ) throws -> TextPattern {
        let o = try j.object()
        if let s = try j.field("String"), o.count == 1 { return .literal(Array(try s.string().unicodeScalars)) }
        if let r = try j.field("Regex"), o.count == 1 { return .regex(try ScalarRegex.make(try r.string(), at: r)) }
        throw j.error("expected {\"String\": ...} or {\"Regex\": ...}")
    }

    /// HF's `Pattern::find_matches`: the text cut into consecutive (range, isMatch) pieces covering it all.
    func findMatches(_ s: [Unicode.Scalar]) throws -> [(Range<Int>, Bool)] {
        switch self {
        case .literal(let p):
            if p.isEmpty { return [(0..<s.count, false)] }
            return Splitting.fromMatches(Splitting.literalMatches(p, in: s), count: s.count)
        case .regex(let r):
            return Splitting.fromMatches(try r.matches(s), count: s.count)
        }
    }

    /// Every match replaced by `content` (HF's NormalizedString::replace).
    func replaceAll(_ s: [Unicode.Scalar], with content: [Unicode.Scalar]) throws -> [Unicode.Scalar] {
        let ms: [Range<Int>]
        switch self {
        case .literal(let p): if p.isEmpty { return s }; ms = Splitting.literalMatches(p, in: s)
        case .regex(let r): ms = try r.matches(s)
        }
        if ms.isEmpty { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var prev = 0
        for m in ms {
            out.append(contentsOf: s[prev..<m.lowerBound])
            out.append(contentsOf: content)
            prev = m.upperBound
        }
        out.append(contentsOf: s[prev...])
        return out
    }
}
