import Foundation

/// A JSON value of a tokenizer.json, read by `JSONReader` with StrictJSON's grammar and limits. The one
/// deliberate difference is the object: StrictJSON's are Swift dictionaries keyed by String, whose == and
/// hashing follow canonical equivalence, so a vocabulary holding both "é" and "e\u{301}" (common in
/// SentencePiece-style BPE) would be refused as a duplicate key. These compare keys byte by byte and keep
/// their order.
indirect enum TokJSON {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([TokJSON])
    case object(TokObject)

    var intValue: Int? { if case .number(let t) = self { return Int(t) }; return nil }

    /// StrictJSON.kind's words for the same cases (one enum each, so one switch each), so messages read alike.
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

    typealias ParseError = StrictJSON.ParseError

    static func parse(_ bytes: [UInt8]) throws -> TokJSON { try JSONReader<TokJSON>.parse(bytes) }
}

extension TokJSON: JSONTree {
    typealias Members = TokObject
    static var noMembers: TokObject { TokObject() }
    static func add(key: [UInt8], value: TokJSON, to o: inout TokObject) -> Bool {
        let k = ByteKey(key)
        guard o.index[k] == nil else { return false }
        o.index[k] = o.keys.count
        o.keys.append(String(decoding: key, as: UTF8.self))
        o.values.append(value)
        return true
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
