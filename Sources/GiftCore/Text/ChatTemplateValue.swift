import Foundation

// The run-time values of the chat-template interpreter, modelled on the Python objects jinja2 works
// with: `str()` / `repr()` / truthiness / `==` follow Python, so rendered text matches transformers.

/// A dict with Python's insertion order (keys are strings: every dict a chat template sees comes from
/// JSON, and dict literals with other keys are refused).
struct CTDict {
    private(set) var keys: [String] = []
    private(set) var map: [String: CTValue] = [:]

    init() {}
    init(_ pairs: [(String, CTValue)]) { for (k, v) in pairs { self[k] = v } }

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }
    var pairs: [(String, CTValue)] { keys.map { ($0, map[$0]!) } }

    subscript(key: String) -> CTValue? {
        get { map[key] }
        set {
            if let newValue {
                if map.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if map.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// jinja2's `namespace(...)`: the one mutable object a template can make (by reference, so assignments
/// inside a loop body survive the loop).
final class CTNamespace {
    var attrs: CTDict
    init(_ attrs: CTDict) { self.attrs = attrs }
}

/// The `loop` variable of a for loop.
final class CTLoop {
    let items: [CTValue]
    var index0 = 0
    let depth0: Int
    init(items: [CTValue], depth0: Int) { self.items = items; self.depth0 = depth0 }
}

/// Why a value is undefined, for jinja2's error messages ("'x' is undefined", "'dict object' has no
/// attribute 'y'").
struct CTUndefinedHint {
    var message: String
    static func name(_ n: String) -> CTUndefinedHint { CTUndefinedHint(message: "'\(n)' is undefined") }
    static func attribute(of obj: CTValue, _ attr: String) -> CTUndefinedHint {
        CTUndefinedHint(message: "\(obj.pyTypeDescription) has no attribute '\(attr)'")
    }
    static func element(of obj: CTValue, _ key: CTValue) -> CTUndefinedHint {
        if case .string(let s) = key { return attribute(of: obj, s) }
        return CTUndefinedHint(message: "\(obj.pyTypeDescription) has no element \(key.pyRepr)")
    }
}

enum CTValue {
    case undefined(CTUndefinedHint)
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([CTValue])
    case tuple([CTValue])
    case dict(CTDict)
    case namespace(CTNamespace)
    case loop(CTLoop)
    /// A global function (`range`, `raise_exception`, `strftime_now`, `namespace`, `dict`).
    case function(String)
    /// A method bound to its receiver (`'x'.strip`, `d.items`, `loop.cycle`).
    indirect case method(CTValue, String)

    static var emptyUndefined: CTValue { .undefined(CTUndefinedHint(message: "the value is undefined")) }

    /// From the project's JSON value, as Python's json.loads builds it: integer literals become int,
    /// every other number float; object keys in sorted order (StrictJSON keeps no order).
    init(json: StrictJSON) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .number(let text):
            if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let i = Int(text) {
                self = .int(i)
            } else {
                self = .float(Double(text) ?? .nan)
            }
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map { CTValue(json: $0) })
        case .object(let o):
            let keys = o.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            self = .dict(CTDict(keys.map { ($0, CTValue(json: o[$0]!)) }))
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    /// Python truthiness (jinja2's Undefined is falsy).
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .float(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .loop, .function, .method: return true
        }
    }

    /// jinja2's object_type_repr: "'dict object'", "None", ...
    var pyTypeDescription: String {
        switch self {
        case .none: return "None"
        default: return "'\(pyTypeName) object'"
        }
    }

    var pyTypeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .function: return "function"
        case .method: return "builtin_function_or_method"
        }
    }

    /// Python's str(); jinja2 prints an Undefined as "".
    var pyStr: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pyRepr
        }
    }

    /// Python's repr(). Cut short once past CTLimits.maxStringBytes (a list holding one large value many
    /// times would print as terabytes): the evaluator refuses such a string (CTEvaluator.text).
    var pyRepr: String {
        var o = ""
        writeRepr(into: &o, limit: CTLimits.maxStringBytes)
        return o
    }

    func writeRepr(into o: inout String, limit: Int) {
        if o.utf8.count > limit { return }
        switch self {
        case .list(let a), .tuple(let a):
            let isTuple: Bool
            if case .tuple = self { isTuple = true } else { isTuple = false }
            o += isTuple ? "(" : "["
            for (k, x) in a.enumerated() {
                if k > 0 { o += ", " }
                x.writeRepr(into: &o, limit: limit)
                if o.utf8.count > limit { return }
            }
            o += isTuple ? (a.count == 1 ? ",)" : ")") : "]"
        case .dict(let d): CTPy.writeDictRepr(d, into: &o, limit: limit)
        case .namespace(let ns):
            o += "<Namespace "
            CTPy.writeDictRepr(ns.attrs, into: &o, limit: limit)
            o += ">"
        default: o += scalarRepr
        }
    }

    /// repr() of a value that holds no others.
    var scalarRepr: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return CTPy.floatRepr(d)
        case .string(let s): return CTPy.stringRepr(s)
        case .list, .tuple, .dict, .namespace: return pyRepr
        case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.items.count)>"
        case .function(let n): return "<function \(n)>"
        case .method(let r, let n): return "<built-in method \(n) of \(r.pyTypeName) object>"
        }
    }

    /// Python's `==` (1 == 1.0 == True; strings compare by code point, not canonical equivalence).
    func pyEquals(_ other: CTValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.keys.allSatisfy { k in b[k].map { a[k]!.pyEquals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.loop(let a), .loop(let b)): return a === b
        case (.function(let a), .function(let b)): return a == b
        default:
            if let x = numeric, let y = other.numeric {
                switch (x, y) {
                case (.int(let i), .int(let j)): return i == j
                default: return x.asDouble == y.asDouble
                }
            }
            return false
        }
    }

    enum Numeric { case int(Int), float(Double)
        var asDouble: Double { switch self { case .int(let i): return Double(i); case .float(let d): return d } }
    }

    /// int, float and bool (a bool is an int in Python).
    var numeric: Numeric? {
        switch self {
        case .int(let i): return .int(i)
        case .bool(let b): return .int(b ? 1 : 0)
        case .float(let d): return .float(d)
        default: return nil
        }
    }
}

/// Python string and number formatting, and the character classes of Python's str methods.
enum CTPy {
    /// str.isspace() / the `\s` of Python's re for str patterns.
    static func isSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    static func strip(_ s: String, chars: String?, leading: Bool = true, trailing: Bool = true) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        func drop(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? isSpace(u) }
        let u = Array(s.unicodeScalars)
        var lo = 0, hi = u.count
        if leading { while lo < hi, drop(u[lo]) { lo += 1 } }
        if trailing { while hi > lo, drop(u[hi - 1]) { hi -= 1 } }
        return fromScalars(u[lo..<hi])
    }

    static func fromScalars<S: Sequence>(_ s: S) -> String where S.Element == Unicode.Scalar {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }

    /// Python's repr of a float: the shortest digits that round-trip (which Swift's description also
    /// gives), laid out as Python does (fixed for 1e-4 <= |x| < 1e16, else d.ddde±XX).
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        let text = "\(Swift.abs(d))"
        var mantissa = Substring(text), exp = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exp = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits = "", point = 0
        if let dot = mantissa.firstIndex(of: ".") {
            let intPart = mantissa[..<dot], frac = mantissa[mantissa.index(after: dot)...]
            digits = String(intPart) + String(frac)
            point = intPart.count + exp
        } else {
            digits = String(mantissa)
            point = digits.count + exp
        }
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let sci = point - 1
        var out = d < 0 ? "-" : ""
        if sci >= -4 && sci < 16 {
            if point <= 0 {
                out += "0." + String(repeating: "0", count: -point) + digits
            } else if point >= digits.count {
                out += digits + String(repeating: "0", count: point - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: point)
                out += String(digits[..<i]) + "." + String(digits[i...])
            }
        } else {
            out += String(digits.first!)
            if digits.count > 1 { out += "." + String(digits.dropFirst()) }
            let a = Swift.abs(sci)
            out += (sci < 0 ? "e-" : "e+") + (a < 10 ? "0" : "") + String(a)
        }
        return out
    }

    /// str.isprintable() for one code point (what repr leaves unescaped).
    static func isPrintable(_ u: Unicode.Scalar) -> Bool {
        if u == " " { return true }
        switch u.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default: return true
        }
    }

    static func stringRepr(_ s: String) -> String {
        let hasSingle = s.unicodeScalars.contains("'"), hasDouble = s.unicodeScalars.contains("\"")
        let q: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
        var o = String.UnicodeScalarView()
        o.append(q)
        for u in s.unicodeScalars {
            switch u {
            case "\\": o.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": o.append(contentsOf: "\\n".unicodeScalars)
            case "\r": o.append(contentsOf: "\\r".unicodeScalars)
            case "\t": o.append(contentsOf: "\\t".unicodeScalars)
            default:
                if u == q {
                    o.append("\\"); o.append(u)
                } else if u.value < 0x20 || u.value == 0x7F {
                    o.append(contentsOf: String(format: "\\x%02x", u.value).unicodeScalars)
                } else if u.value < 0x7F || isPrintable(u) {
                    o.append(u)
                } else if u.value <= 0xFF {
                    o.append(contentsOf: String(format: "\\x%02x", u.value).unicodeScalars)
                } else if u.value <= 0xFFFF {
                    o.append(contentsOf: String(format: "\\u%04x", u.value).unicodeScalars)
                } else {
                    o.append(contentsOf: String(format: "\\U%08x", u.value).unicodeScalars)
                }
            }
        }
        o.append(q)
        return String(o)
    }

    static func dictRepr(_ d: CTDict) -> String {
        var o = ""
        writeDictRepr(d, into: &o, limit: CTLimits.maxStringBytes)
        return o
    }

    static func writeDictRepr(_ d: CTDict, into o: inout String, limit: Int) {
        o += "{"
        for (k, key) in d.keys.enumerated() {
            if k > 0 { o += ", " }
            o += stringRepr(key) + ": "
            d[key]!.writeRepr(into: &o, limit: limit)
            if o.utf8.count > limit { return }
        }
        o += "}"
    }

    /// Python's `a < b` for the types templates compare; nil when Python would raise TypeError.
    static func lessThan(_ a: CTValue, _ b: CTValue) -> Bool? {
        if let x = a.numeric, let y = b.numeric {
            if case .int(let i) = x, case .int(let j) = y { return i < j }
            return x.asDouble < y.asDouble
        }
        switch (a, b) {
        case (.string(let s), .string(let t)):
            return s.unicodeScalars.lexicographicallyPrecedes(t.unicodeScalars)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !p.pyEquals(q) { return lessThan(p, q) }
            return x.count < y.count
        default: return nil
        }
    }
}
