import Foundation

// The tokenizer of chat templates: jinja2's lexer with transformers' settings (trim_blocks and
// lstrip_blocks on, keep_trailing_newline off), rule for rule: `{{ }}`, `{% %}`, `{# #}` and `{% raw %}`,
// the `-` and `+` whitespace controls, and jinja2's token regular expressions inside tags.

/// A syntax error at a scalar offset of the (newline-normalised) source.
struct CTSyntaxError: Error { let message: String; let pos: Int }

enum CTTokenKind: Equatable {
    case data(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct CTToken {
    let kind: CTTokenKind
    let pos: Int

    var isNameToken: Bool { if case .name = kind { return true }; return false }
    func isName(_ n: String) -> Bool { kind == .name(n) }
    func isOp(_ o: String) -> Bool { kind == .op(o) }

    var describe: String {
        switch kind {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let n): return n
        case .string: return "string"
        case .integer(let i): return String(i)
        case .float(let d): return CTPy.floatRepr(d)
        case .op(let o): return o
        case .eof: return "end of template"
        }
    }
}

struct CTLexer {
    /// The source as jinja2 sees it: \r\n and \r become \n, and one trailing newline is dropped.
    static func normalize(_ source: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var it = Array(source.unicodeScalars)[...]
        while let u = it.popFirst() {
            if u == "\r" {
                if it.first == "\n" { it.removeFirst() }
                out.append("\n")
            } else {
                out.append(u)
            }
        }
        if out.last == "\n" { out.removeLast() }
        return out
    }

    let s: [Unicode.Scalar]
    var pos = 0
    var tokens: [CTToken] = []
    /// jinja2's `line_starting`: whether the previous match ended with a newline.
    var lineStarting = true

    init(_ scalars: [Unicode.Scalar]) { s = scalars }

    static func tokenize(_ scalars: [Unicode.Scalar]) throws -> [CTToken] {
        var l = CTLexer(scalars)
        try l.run()
        l.tokens.append(CTToken(kind: .eof, pos: scalars.count))
        return l.tokens
    }

    func at(_ i: Int, _ text: String) -> Bool {
        var j = i
        for u in text.unicodeScalars {
            guard j < s.count, s[j] == u else { return false }
            j += 1
        }
        return true
    }

    func text(_ a: Int, _ b: Int) -> String { CTPy.fromScalars(s[a..<b]) }

    /// Python's str.rstrip() of s[a..<b]: the end of what remains.
    func rstripEnd(_ a: Int, _ b: Int) -> Int {
        var e = b
        while e > a, CTPy.isSpace(s[e - 1]) { e -= 1 }
        return e
    }

    func skipSpace(_ i: Int) -> Int {
        var j = i
        while j < s.count, CTPy.isSpace(s[j]) { j += 1 }
        return j
    }

    /// Emits the data before a tag, applying the tag's `-` or lstrip_blocks.
    mutating func emitData(_ a: Int, _ b: Int, sign: Unicode.Scalar?, lstrip: Bool) {
        var end = b
        if sign == "-" {
            end = rstripEnd(a, b)
        } else if sign != "+" && lstrip {
            var lpos = a
            if let nl = (a..<b).last(where: { s[$0] == "\n" }) { lpos = nl + 1 }
            if lpos > a || lineStarting {
                if lpos < b && (lpos..<b).allSatisfy({ CTPy.isSpace(s[$0]) }) { end = lpos }
            }
        }
        if end > a { tokens.append(CTToken(kind: .data(text(a, end)), pos: a)) }
    }

    mutating func run() throws {
        while pos < s.count {
            // the next tag start: {{, {% or {#
            var i = pos
            var found = false
            while i + 1 < s.count {
                if s[i] == "{", s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" { found = true; break }
                i += 1
            }
            if !found {
                tokens.append(CTToken(kind: .data(text(pos, s.count)), pos: pos))
                lineStarting = s.last == "\n"
                pos = s.count
                return
            }
            let kind = s[i + 1]
            var sign: Unicode.Scalar? = nil
            if i + 2 < s.count, s[i + 2] == "-" || s[i + 2] == "+" { sign = s[i + 2] }
            let afterStart = i + 2 + (sign == nil ? 0 : 1)

            // {% raw %} ... {% endraw %}
            if kind == "%", let rawBodyStart = rawBegin(afterStart) {
                emitData(pos, i, sign: sign, lstrip: true)
                try raw(from: rawBodyStart, tagPos: i)
                continue
            }
            emitData(pos, i, sign: sign, lstrip: kind != "{")
            lineStarting = false
            pos = afterStart
            switch kind {
            case "#": try comment(tagPos: i)
            case "{":
                tokens.append(CTToken(kind: .variableBegin, pos: i))
                try tag(block: false, tagPos: i)
            default:
                tokens.append(CTToken(kind: .blockBegin, pos: i))
                try tag(block: true, tagPos: i)
            }
        }
    }

    /// `\s*raw\s*(-%}\s*|%})` after a block start: the offset after it.
    func rawBegin(_ from: Int) -> Int? {
        var j = skipSpace(from)
        guard at(j, "raw") else { return nil }
        j = skipSpace(j + 3)
        if at(j, "-%}") { return skipSpace(j + 3) }
        if at(j, "%}") { return j + 2 }
        return nil
    }

    mutating func raw(from body: Int, tagPos: Int) throws {
        var j = body
        while j + 1 < s.count {
            if s[j] == "{", s[j + 1] == "%" {
                var sign: Unicode.Scalar? = nil
                var k = j + 2
                if k < s.count, s[k] == "-" || s[k] == "+" { sign = s[k]; k += 1 }
                k = skipSpace(k)
                if at(k, "endraw") {
                    k = skipSpace(k + 6)
                    var end: Int? = nil
                    if at(k, "+%}") { end = k + 3 } else if at(k, "-%}") { end = skipSpace(k + 3) } else if at(k, "%}") {
                        end = k + 2
                        if end! < s.count, s[end!] == "\n" { end! += 1 }
                    }
                    if let end {
                        emitData(body, j, sign: sign, lstrip: true)
                        lineStarting = s[end - 1] == "\n"
                        pos = end
                        return
                    }
                }
            }
            j += 1
        }
        throw CTSyntaxError(message: "missing end of raw directive", pos: tagPos)
    }

    mutating func comment(tagPos: Int) throws {
        var j = pos
        while j < s.count {
            if at(j, "+#}") { pos = j + 3; lineStarting = false; return }
            if at(j, "-#}") {
                pos = skipSpace(j + 3)
                lineStarting = s[pos - 1] == "\n"
                return
            }
            if at(j, "#}") {
                pos = j + 2
                if pos < s.count, s[pos] == "\n" { pos += 1 }
                lineStarting = s[pos - 1] == "\n"
                return
            }
            j += 1
        }
        throw CTSyntaxError(message: "missing end of comment tag", pos: tagPos)
    }

    static let operators: [String] = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
                                      ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    mutating func tag(block: Bool, tagPos: Int) throws {
        var balance: [Unicode.Scalar] = []
        while true {
            guard pos < s.count else {
                throw CTSyntaxError(message: block ? "unexpected end of template, expected '%}'"
                                                   : "unexpected end of template, expected '}}'", pos: tagPos)
            }
            let close = block ? "%}" : "}}"
            if balance.isEmpty {
                if block && at(pos, "+%}") {
                    tokens.append(CTToken(kind: .blockEnd, pos: pos)); pos += 3; lineStarting = false; return
                }
                if at(pos, "-" + close) {
                    tokens.append(CTToken(kind: block ? .blockEnd : .variableEnd, pos: pos))
                    pos = skipSpace(pos + 3)
                    lineStarting = s[pos - 1] == "\n"
                    return
                }
                if at(pos, close) {
                    tokens.append(CTToken(kind: block ? .blockEnd : .variableEnd, pos: pos))
                    pos += 2
                    if block, pos < s.count, s[pos] == "\n" { pos += 1 }  // trim_blocks
                    lineStarting = s[pos - 1] == "\n"
                    return
                }
            }
            let u = s[pos]
            if CTPy.isSpace(u) { pos = skipSpace(pos); continue }
            let start = pos
            if let num = try number(at: pos) {
                tokens.append(CTToken(kind: num.0, pos: start)); pos = num.1; continue
            }
            if u == "_" || u.properties.isXIDStart {
                var j = pos + 1
                while j < s.count, s[j] == "_" || s[j].properties.isXIDContinue { j += 1 }
                tokens.append(CTToken(kind: .name(text(pos, j)), pos: start)); pos = j; continue
            }
            if u == "'" || u == "\"" {
                tokens.append(CTToken(kind: .string(try string(at: pos)), pos: start)); continue
            }
            guard let op = CTLexer.operators.first(where: { at(pos, $0) }) else {
                throw CTSyntaxError(message: "unexpected char \(CTPy.stringRepr(String(u)))", pos: pos)
            }
            switch op {
            case "{": balance.append("}")
            case "(": balance.append(")")
            case "[": balance.append("]")
            case "}", ")", "]":
                guard let expected = balance.popLast() else {
                    throw CTSyntaxError(message: "unexpected '\(op)'", pos: pos)
                }
                if String(expected) != op {
                    throw CTSyntaxError(message: "unexpected '\(op)', expected '\(expected)'", pos: pos)
                }
            default: break
            }
            tokens.append(CTToken(kind: .op(op), pos: start))
            pos += op.unicodeScalars.count
        }
    }

    func isDigit(_ i: Int) -> Bool { i < s.count && s[i].value >= 0x30 && s[i].value <= 0x39 }

    /// `(\d+_)*\d+` at i: its end, or nil.
    func digitRun(_ i: Int) -> Int? {
        guard isDigit(i) else { return nil }
        var j = i
        while true {
            while isDigit(j) { j += 1 }
            if j < s.count, s[j] == "_", isDigit(j + 1) { j += 1; continue }
            return j
        }
    }

    /// jinja2's float_re, then integer_re.
    func number(at i: Int) throws -> (CTTokenKind, Int)? {
        guard isDigit(i) else { return nil }
        if i > 0, s[i - 1] == "." {
            // float_re has (?<!\.); an integer may still follow (attribute `.0`)
        } else if let intEnd = digitRun(i) {
            var j = intEnd
            var isFloat = false
            if j < s.count, s[j] == ".", let fracEnd = digitRun(j + 1) { j = fracEnd; isFloat = true }
            if j < s.count, s[j] == "e" || s[j] == "E" {
                var k = j + 1
                if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
                if let expEnd = digitRun(k) { j = expEnd; isFloat = true }
            }
            if isFloat {
                let t = text(i, j).replacingOccurrences(of: "_", with: "")
                guard let d = Double(t) else { throw CTSyntaxError(message: "invalid float literal", pos: i) }
                return (.float(d), j)
            }
        }
        // integer_re: 0b / 0o / 0x, [1-9](_?\d)*, 0(_?0)*
        if s[i] == "0", i + 1 < s.count {
            let p = Character(s[i + 1]).lowercased()
            let radix = p == "b" ? 2 : p == "o" ? 8 : p == "x" ? 16 : 0
            if radix != 0 {
                var j = i + 2, digits = ""
                while j < s.count {
                    if s[j] == "_", j + 1 < s.count, Int(String(s[j + 1]), radix: radix) != nil { j += 1; continue }
                    guard Int(String(s[j]), radix: radix) != nil else { break }
                    digits.unicodeScalars.append(s[j]); j += 1
                }
                if !digits.isEmpty {
                    guard let v = Int(digits, radix: radix) else { throw CTSyntaxError(message: "integer literal too large", pos: i) }
                    return (.integer(v), j)
                }
            }
        }
        var j = i
        if s[i] == "0" {
            j += 1
            while j < s.count {
                if s[j] == "0" { j += 1 } else if s[j] == "_", j + 1 < s.count, s[j + 1] == "0" { j += 2 } else { break }
            }
            return (.integer(0), j)
        }
        j = digitRun(i)!
        guard let v = Int(text(i, j).replacingOccurrences(of: "_", with: "")) else {
            throw CTSyntaxError(message: "integer literal too large (beyond 64 bits)", pos: i)
        }
        return (.integer(v), j)
    }

    /// A string literal at i (its quote); Python's unicode-escape decoding of its body, as jinja2 does.
    mutating func string(at i: Int) throws -> String {
        let q = s[i]
        var j = i + 1
        var out = String.UnicodeScalarView()
        func hex(_ n: Int) throws -> Unicode.Scalar {
            guard j + n <= s.count, let v = UInt32(text(j, j + n), radix: 16), text(j, j + n).allSatisfy({ $0.isHexDigit })
            else { throw CTSyntaxError(message: "truncated \\x, \\u or \\U escape in a string literal", pos: j - 2) }
            guard let u = Unicode.Scalar(v) else {
                throw CTSyntaxError(message: "invalid code point in a string literal escape", pos: j - 2)
            }
            j += n
            return u
        }
        while true {
            guard j < s.count else { throw CTSyntaxError(message: "unexpected char \(CTPy.stringRepr(String(q)))", pos: i) }
            let u = s[j]
            if u == q { pos = j + 1; return String(out) }
            if u != "\\" { out.append(u); j += 1; continue }
            guard j + 1 < s.count else { throw CTSyntaxError(message: "unterminated string literal", pos: i) }
            let e = s[j + 1]
            j += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x": out.append(try hex(2))
            case "u": out.append(try hex(4))
            case "U": out.append(try hex(8))
            case "0"..."7":
                var v = e.value - 0x30
                var n = 1
                while n < 3, j < s.count, s[j].value >= 0x30, s[j].value <= 0x37 { v = v * 8 + s[j].value - 0x30; j += 1; n += 1 }
                out.append(Unicode.Scalar(v)!)
            case "N":
                throw CTSyntaxError(message: "unsupported construct: \\N{...} escape in a string literal", pos: j - 2)
            default:
                // unknown escapes stay as written; a non-ASCII character after a backslash comes out as
                // its backslashreplace form (what jinja2's ascii round trip makes of it)
                out.append("\\")
                if e.value < 0x80 {
                    out.append(e)
                } else {
                    let f = e.value <= 0xFF ? String(format: "x%02x", e.value)
                        : e.value <= 0xFFFF ? String(format: "u%04x", e.value) : String(format: "U%08x", e.value)
                    out.append(contentsOf: f.unicodeScalars)
                }
            }
        }
    }
}
