import Foundation

/// What reading a data file kept and dropped.
public struct DatasetReport: Equatable, Sendable {
    /// Examples kept.
    public var examples: Int = 0
    /// Malformed lines skipped (only with skipBadLines; otherwise the first one is an error).
    public var skippedBadLines: Int = 0
    /// Lines whose response was empty (always skipped, never an error).
    public var skippedEmptyResponse: Int = 0
    /// Examples cut to the maximum length (see `Batching.truncate`).
    public var truncated: Int = 0

    public init(examples: Int = 0, skippedBadLines: Int = 0, skippedEmptyResponse: Int = 0, truncated: Int = 0) {
        self.examples = examples; self.skippedBadLines = skippedBadLines
        self.skippedEmptyResponse = skippedEmptyResponse; self.truncated = truncated
    }

    /// One line for logs: "1000 examples (2 bad lines skipped, 1 empty response skipped, 3 truncated)".
    public var summary: String {
        var parts: [String] = []
        if skippedBadLines > 0 { parts.append("\(skippedBadLines) bad line\(skippedBadLines == 1 ? "" : "s") skipped") }
        if skippedEmptyResponse > 0 {
            parts.append("\(skippedEmptyResponse) empty response\(skippedEmptyResponse == 1 ? "" : "s") skipped")
        }
        if truncated > 0 { parts.append("\(truncated) truncated") }
        return "\(examples) examples" + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
    }
}

/// Reads and writes JSONL data: one example a line, either text
/// `{"prompt": "...", "response": "..."}` (needs a tokenizer) or pre-tokenized
/// `{"prompt_ids": [1, 2], "response_ids": [3, 4]}`. Each side may use either form independently
/// (`prompt` with `response_ids` is fine); giving both forms of one side is an error. Other fields are
/// ignored. Blank lines are ignored; a UTF-8 byte order mark and CRLF line ends are accepted.
public enum JSONLReader {
    /// Reads every example of `path`.
    ///
    /// - A malformed line (invalid JSON or UTF-8, not an object, a missing or ill-typed field, a
    ///   non-integer id, a character outside the tokenizer's set) is an error `"<path>:<line>: <what>"`,
    ///   or, with `skipBadLines`, skipped and counted in `skippedBadLines`.
    /// - An empty response is skipped and counted in `skippedEmptyResponse`, never an error.
    /// - A token id outside [0, vocabSize) is always an error naming the line and the id, even with
    ///   `skipBadLines`: the data was tokenized for another model.
    /// - Text fields with `tokenizer == nil` are always an error (use prompt_ids/response_ids).
    /// - With `maxLength`, longer examples are cut by `Batching.truncate` and counted in `truncated`.
    /// A file with no usable example is not an error here: check `report.examples`.
    public static func read(path: String, tokenizer: CharTokenizer?, vocabSize: Int, skipBadLines: Bool,
                            maxLength: Int? = nil) throws -> ([Example], DatasetReport) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw GiftError(.io, "data file \(path) does not exist")
        }
        guard !isDir.boolValue else { throw GiftError(.io, "data file \(path) is a directory, not a JSONL file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "cannot read data file \(path): \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        var examples: [Example] = []
        var report = DatasetReport()
        var start = 0, lineNo = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start < bytes.count {
            lineNo += 1
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            let next = end + 1
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            defer { start = next }
            let line = bytes[start..<end]
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                if var e = try parseLine(line, tokenizer: tokenizer, vocabSize: vocabSize) {
                    e.line = lineNo
                    if let m = maxLength {
                        let (t, cut) = Batching.truncate(e, maxLength: m)
                        e = t
                        if cut { report.truncated += 1 }
                    }
                    examples.append(e)
                } else {
                    report.skippedEmptyResponse += 1
                }
            } catch let f as LineFault {
                switch f {
                case .bad(let what):
                    if skipBadLines { report.skippedBadLines += 1; continue }
                    throw GiftError(.data, "\(path):\(lineNo): \(what)")
                case .fatal(let what):
                    throw GiftError(.data, "\(path):\(lineNo): \(what)")
                }
            }
        }
        report.examples = examples.count
        return (examples, report)
    }

    /// Writes `examples` as JSONL: text form (`prompt`/`response`, decoded by `tokenizer`) when a
    /// tokenizer is given, id form (`prompt_ids`/`response_ids`) otherwise.
    public static func write(path: String, examples: [Example], tokenizer: CharTokenizer?) throws {
        var out = ""
        for e in examples {
            if let t = tokenizer {
                out += "{\"prompt\": \(quote(t.decode(e.prompt))), \"response\": \(quote(t.decode(e.response)))}\n"
            } else {
                out += "{\"prompt_ids\": [\(e.prompt.map(String.init).joined(separator: ", "))], "
                    + "\"response_ids\": [\(e.response.map(String.init).joined(separator: ", "))]}\n"
            }
        }
        try writeText(out, path: path)
    }

    /// Writes text pairs (a task generator's output) as `{"prompt": ..., "response": ...}` lines.
    public static func write(path: String, pairs: [(prompt: String, answer: String)]) throws {
        try writeText(pairs.map { "{\"prompt\": \(quote($0.prompt)), \"response\": \(quote($0.answer))}\n" }.joined(),
                      path: path)
    }

    static func writeText(_ s: String, path: String) throws {
        do { try Data(s.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw GiftError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// `s` as a JSON string literal.
    public static func quote(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\r": o += "\\r"
            case "\t": o += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { o += String(format: "\\u%04x", u.value) } else { o.unicodeScalars.append(u) }
            }
        }
        return o + "\""
    }

    // MARK: one line

    enum LineFault: Error { case bad(String), fatal(String) }

    /// The example of one non-blank line, or nil when its response is empty.
    static func parseLine(_ line: ArraySlice<UInt8>, tokenizer: CharTokenizer?, vocabSize: Int) throws -> Example? {
        var p = MiniJSON(Array(line))
        let value: MiniJSON.Value
        do { value = try p.parseDocument() } catch let e as MiniJSON.Failure {
            throw LineFault.bad("invalid JSON: \(e.message) at column \(e.column)")
        }
        guard case .object(let fields) = value else {
            throw LineFault.bad("expected a JSON object like {\"prompt\": ..., \"response\": ...}, found \(value.kind)")
        }
        func side(_ text: String) throws -> [Int32] {
            let idsKey = text + "_ids"
            switch (fields[text], fields[idsKey]) {
            case (nil, nil):
                throw LineFault.bad("missing field \"\(text)\" (each line needs \"prompt\" and \"response\" text, "
                                    + "or \"prompt_ids\" and \"response_ids\")")
            case (.some, .some):
                throw LineFault.bad("has both \"\(text)\" and \"\(idsKey)\"; give one")
            case (.some(let v), nil):
                guard case .string(let s) = v else {
                    throw LineFault.bad("field \"\(text)\" must be a string, found \(v.kind)")
                }
                guard let t = tokenizer else {
                    throw LineFault.fatal("field \"\(text)\" is text, and text data needs a tokenizer, which this "
                                          + "model has none of; give token ids as \"prompt_ids\"/\"response_ids\"")
                }
                do { return try t.encode(s) } catch let e as GiftError {
                    throw LineFault.bad("field \"\(text)\": \(e.message)")
                }
            case (nil, .some(let v)):
                guard case .array(let items) = v else {
                    throw LineFault.bad("field \"\(idsKey)\" must be an array of token ids, found \(v.kind)")
                }
                var ids: [Int32] = []
                ids.reserveCapacity(items.count)
                for (i, item) in items.enumerated() {
                    guard case .number(let raw, let integral) = item, integral else {
                        let shown: String
                        if case .number(let raw, _) = item { shown = raw } else { shown = item.kind }
                        throw LineFault.bad("\(idsKey)[\(i)] is not an integer token id: \(shown)")
                    }
                    guard let id = Int(raw), id >= 0, id < vocabSize else {
                        throw LineFault.fatal("token id \(raw) (\(idsKey)[\(i)]) is outside the model vocab "
                                              + "[0, \(vocabSize)): is this data tokenized for another model?")
                    }
                    ids.append(Int32(id))
                }
                return ids
            }
        }
        let prompt = try side("prompt")
        let response = try side("response")
        if response.isEmpty { return nil }
        return Example(prompt: prompt, response: response, line: 0)
    }
}

/// A small strict JSON parser for one line (RFC 8259: objects, arrays, strings with escapes, numbers,
/// true/false/null). Numbers keep their text; duplicate keys keep the last value.
struct MiniJSON {
    indirect enum Value {
        case object([String: Value]), array([Value]), string(String), number(String, integral: Bool), bool(Bool), null
        var kind: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number(let r, _): return "the number \(r)"
            case .bool(let b): return "\(b)"
            case .null: return "null"
            }
        }
    }
    struct Failure: Error { let message: String; let column: Int }

    let b: [UInt8]
    var i = 0
    var depth = 0
    init(_ bytes: [UInt8]) { b = bytes }

    func fail(_ m: String) -> Failure { Failure(message: m, column: i + 1) }

    mutating func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 } }

    mutating func parseDocument() throws -> Value {
        let v = try parseValue()
        skipSpace()
        if i < b.count { throw fail("unexpected text after the value") }
        return v
    }

    mutating func parseValue() throws -> Value {
        skipSpace()
        guard i < b.count else { throw fail("unexpected end of line") }
        switch b[i] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(b[i])))'")
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard b.count - i >= w.count, Array(b[i..<(i + w.count)]) == w else { throw fail("invalid literal") }
        i += w.count
    }

    mutating func nest() throws {
        depth += 1
        if depth > 256 { throw fail("nesting too deep") }
    }

    mutating func parseObject() throws -> Value {
        try nest(); defer { depth -= 1 }
        i += 1
        var d: [String: Value] = [:]
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(d) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted field name") }
            let k = try parseString()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a field name") }
            i += 1
            d[k] = try parseValue()
            skipSpace()
            guard i < b.count else { throw fail("unterminated object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(d) }
            throw fail("expected ',' or '}' in an object")
        }
    }

    mutating func parseArray() throws -> Value {
        try nest(); defer { depth -= 1 }
        i += 1
        var a: [Value] = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
        while true {
            a.append(try parseValue())
            skipSpace()
            guard i < b.count else { throw fail("unterminated array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            throw fail("expected ',' or ']' in an array")
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard b.count - i >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("bad hex digit in \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("raw control character in a string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]; i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00 {
                    guard b.count - i >= 6, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    i += 2
                    let lo = try hex4()
                    guard lo >= 0xDC00 && lo < 0xE000 else { throw fail("unpaired surrogate in \\u escape") }
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                } else if v >= 0xDC00 && v < 0xE000 {
                    throw fail("unpaired surrogate in \\u escape")
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(v)!)).utf8))
            default: throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        guard let s = String(bytes: out, encoding: .utf8) else { throw fail("string is not valid UTF-8") }
        return s
    }

    mutating func parseNumber() throws -> Value {
        let s = i
        var integral = true
        func digits(_ p: inout MiniJSON) -> Int {
            let s0 = p.i
            while p.i < p.b.count, p.b[p.i] >= UInt8(ascii: "0"), p.b[p.i] <= UInt8(ascii: "9") { p.i += 1 }
            return p.i - s0
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { throw fail("invalid number") }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { throw fail("leading zero in a number") }
        } else { _ = digits(&self) }
        if i < b.count && b[i] == UInt8(ascii: ".") {
            integral = false; i += 1
            if digits(&self) == 0 { throw fail("invalid number") }
        }
        if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            integral = false; i += 1
            if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
            if digits(&self) == 0 { throw fail("invalid number") }
        }
        return .number(String(decoding: b[s..<i], as: UTF8.self), integral: integral)
    }
}
