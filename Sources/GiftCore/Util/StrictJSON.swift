import Foundation

/// A small, strict JSON reader for untrusted headers. Unlike JSONSerialization it keeps integers exact
/// (as their literal text, so `1.0`, `1e3`, `true` and out-of-range values are never taken for an Int),
/// refuses duplicate keys and lone surrogates, and bounds nesting depth so no input can exhaust the stack.
/// Its objects are Swift dictionaries (keys compared as Strings: canonically equivalent keys are one key);
/// the tokenizer's `TokJSON` is the other value type `JSONReader` builds.
public enum StrictJSON: Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([StrictJSON])
    case object([String: StrictJSON])

    public struct ParseError: Error { public let message: String; public let offset: Int }

    static let maxDepth = 64

    /// The value when it is an integer literal that fits in Int.
    var intValue: Int? {
        if case .number(let text) = self { return Int(text) }
        return nil
    }

    /// What kind of value this is, for error messages ("a string", "the number 5", ...).
    public var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number(let r): return "the number \(r)"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }

    /// `s` as a JSON string literal (quotes, backslash and control characters escaped; `Escaping.gift`).
    public static func quote(_ s: String) -> String {
        var o = ""
        writeQuoted(s, .gift, into: &o)
        return o
    }

    /// How `writeQuoted` escapes a string. Every style escapes `"` and `\`, writes \n \r \t by name and
    /// the other control characters (below U+0020) as \u00xx; they differ on purpose in three places:
    enum Escaping {
        /// gift's own files and messages: DEL (U+007F) is escaped too, so that a message shows it;
        /// \b and \f are written \u0008 and \u000c.
        case gift
        /// Python's `json.dumps`, byte for byte (transformers' `tojson` filter): \b and \f by name, DEL as
        /// is; with `ensureASCII` (json.dumps' ensure_ascii) every scalar above U+007E as \uxxxx, a UTF-16
        /// surrogate pair above U+FFFF.
        case python(ensureASCII: Bool)
    }

    /// Appends `s` as a JSON string literal, escaped as `style` says.
    static func writeQuoted(_ s: String, _ style: Escaping, into o: inout String) {
        let python: Bool, ascii: Bool
        switch style {
        case .gift: (python, ascii) = (false, false)
        case .python(let ensureASCII): (python, ascii) = (true, ensureASCII)
        }
        o.unicodeScalars.append("\"")
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\r": o += "\\r"
            case "\t": o += "\\t"
            case "\u{08}" where python: o += "\\b"
            case "\u{0C}" where python: o += "\\f"
            default:
                if u.value < 0x20 || (u.value == 0x7F && !python) || (ascii && u.value > 0x7E) {
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        o += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                    } else {
                        o += String(format: "\\u%04x", u.value)
                    }
                } else {
                    o.unicodeScalars.append(u)
                }
            }
        }
        o.unicodeScalars.append("\"")
    }

    /// A short rendering for error messages.
    var brief: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let t): return t
        case .string(let s): return "\"\(s.prefix(40))\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Where byte `offset` of `bytes` is, for error messages: "byte B, line L, column C" (lines and columns
    /// from 1, columns counted in UTF-8 characters).
    public static func place(in bytes: [UInt8], offset: Int) -> String {
        var line = 1, col = 1
        for b in bytes.prefix(offset) { if b == 0x0A { line += 1; col = 1 } else if b & 0xC0 != 0x80 { col += 1 } }
        return "byte \(offset), line \(line), column \(col)"
    }

    /// Parses one JSON value; only whitespace may follow it.
    public static func parse(_ bytes: [UInt8]) throws -> StrictJSON {
        try JSONReader<StrictJSON>.parse(bytes)
    }
}

extension StrictJSON: JSONTree {
    typealias Members = [String: StrictJSON]
    static var noMembers: Members { [:] }
    static func add(key: [UInt8], value: StrictJSON, to members: inout Members) -> Bool {
        members.updateValue(value, forKey: String(decoding: key, as: UTF8.self)) == nil
    }
}

/// What `JSONReader` builds: a JSON value type, told each object member as its key's bytes.
protocol JSONTree {
    associatedtype Members
    static var null: Self { get }
    static func bool(_ b: Bool) -> Self
    static func number(_ literal: String) -> Self
    static func string(_ s: String) -> Self
    static func array(_ items: [Self]) -> Self
    static func object(_ members: Members) -> Self
    static var noMembers: Members { get }
    /// Adds a member; false, adding nothing, when `members` holds the key already.
    static func add(key: [UInt8], value: Self, to members: inout Members) -> Bool
}

/// The one JSON reader (RFC 8259) of both value types, `StrictJSON` and the tokenizer's `TokJSON`: one
/// grammar, one set of limits (nesting depth `StrictJSON.maxDepth`, numbers kept as their literal text,
/// no lone surrogates, no duplicate keys) and one set of messages. The types differ only in what a
/// duplicate key is (`JSONTree.add`) and how an object keeps its members.
struct JSONReader<V: JSONTree> {
    private let b: [UInt8]
    private var i = 0

    /// Parses one JSON value; only whitespace may follow it.
    static func parse(_ bytes: [UInt8]) throws -> V {
        var r = JSONReader(b: bytes)
        r.skipWhitespace()
        let v = try r.value(depth: 0)
        r.skipWhitespace()
        if r.i != bytes.count { throw r.fail("unexpected data after the JSON value") }
        return v
    }

    private init(b: [UInt8]) { self.b = b }

    private func fail(_ m: String, at offset: Int? = nil) -> StrictJSON.ParseError {
        StrictJSON.ParseError(message: m, offset: offset ?? i)
    }

    private mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ c: UInt8) throws {
        guard i < b.count, b[i] == c else {
            throw fail(i < b.count ? "expected '\(Character(Unicode.Scalar(c)))'" : "unexpected end of input")
        }
        i += 1
    }

    /// At an object's or array's opening bracket: steps over it; true (the `close` bracket read too) when
    /// the container is empty.
    private mutating func opensEmpty(_ close: UInt8) -> Bool {
        i += 1
        skipWhitespace()
        if i < b.count, b[i] == close { i += 1; return true }
        return false
    }

    /// After a member or element: true when a comma says another follows, false when `close` ends it.
    private mutating func another(before close: UInt8) throws -> Bool {
        skipWhitespace()
        guard i < b.count else { throw fail("unexpected end of input") }
        if b[i] == UInt8(ascii: ",") { i += 1; return true }
        try expect(close)
        return false
    }

    private mutating func value(depth: Int) throws -> V {
        guard depth < StrictJSON.maxDepth else { throw fail("nested more than \(StrictJSON.maxDepth) levels deep") }
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            var members = V.noMembers
            if opensEmpty(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input") }
                guard b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let at = i
                let key = try stringBytes()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let v = try value(depth: depth + 1)
                guard V.add(key: key, value: v, to: &members) else {
                    var shown = ""
                    StrictJSON.writeQuoted(String(decoding: key, as: UTF8.self), .gift, into: &shown)
                    throw fail("duplicate key '\(shown.dropFirst().dropLast())'", at: at)
                }
            } while try another(before: UInt8(ascii: "}"))
            return .object(members)
        case UInt8(ascii: "["):
            var items: [V] = []
            if opensEmpty(UInt8(ascii: "]")) { return .array(items) }
            repeat {
                skipWhitespace()
                items.append(try value(depth: depth + 1))
            } while try another(before: UInt8(ascii: "]"))
            return .array(items)
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

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else {
            throw fail(i + w.count > b.count ? "unexpected end of input" : "invalid literal")
        }
        i += w.count
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; returns the literal text.
    private mutating func number() throws -> String {
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

    /// A string literal starting at the opening quote, as UTF-8 bytes with its escapes resolved; bytes
    /// >= 0x80 are copied through (invalid UTF-8 becomes U+FFFD when a String is made of them).
    private mutating func stringBytes() throws -> [UInt8] {
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
                    // A high surrogate must be followed by an escaped low one.
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

    private mutating func hex4() throws -> UInt32 {
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
