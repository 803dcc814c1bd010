import Foundation

// The filters of the chat-template subset, each as jinja2 3.1 defines it (transformers replaces `tojson`
// with json.dumps(ensure_ascii=False): ChatTemplateJSON.swift). Tests, methods and strftime_now are in
// ChatTemplatePredicates, ChatTemplateMethods and ChatTemplateGlobals.

enum CTFilters {
    typealias Args = CTEvaluator.Args

    static let names: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "items", "join", "last",
        "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
        "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "min", "max", "wordcount",
        "indent", "dictsort",
    ]
    /// jinja2 filters outside the subset (named in the error instead of "no filter named").
    static let jinjaNames: Set<String> = [
        "attr", "batch", "center", "filesizeformat", "forceescape", "format", "groupby", "pprint", "random",
        "slice", "striptags", "truncate", "urlencode", "urlize", "wordwrap", "xmlattr",
    ]
    static let testNames: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
        "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt", "lessthan",
        "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
        "upper",
    ]
    static let jinjaTestNames: Set<String> = []

    static func fail(_ m: String, _ pos: Int) -> CTRuntimeError { CTRuntimeError(message: m, pos: pos) }

    static func str(_ v: CTValue) -> String { v.pyStr }

    static func intArg(_ v: CTValue?, _ def: Int, _ what: String, _ pos: Int) throws -> Int {
        guard let v, !(v.isUndefined) else { return def }
        if case .none = v { return def }
        guard case .int(let i)? = v.numeric, !v.isFloat else { throw fail("\(what) must be an integer", pos) }
        return i
    }

    static func stringArg(_ v: CTValue?, _ what: String, _ pos: Int) throws -> String? {
        guard let v else { return nil }
        switch v {
        case .none, .undefined: return nil
        case .string(let s): return s
        default: throw fail("\(what) must be a string or None, not \(v.pyTypeName)", pos)
        }
    }

    // MARK: filters

    static func apply(_ name: String, _ v: CTValue, _ args: Args, _ pos: Int, _ ev: CTEvaluator) throws -> CTValue {
        switch name {
        case "safe": return v
        case "string": return .string(str(v))
        case "trim":
            return .string(CTPy.strip(str(v), chars: try stringArg(args.arg(0, "chars"), "trim's chars", pos)))
        case "upper": return .string(str(v).uppercased())
        case "lower": return .string(str(v).lowercased())
        case "capitalize": return .string(capitalize(str(v)))
        case "title": return .string(title(str(v)))
        case "length", "count": return .int(try length(v, pos))
        case "wordcount":
            return .int(str(v).split(whereSeparator: { $0.unicodeScalars.allSatisfy { !($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_") } }).count)
        case "d", "default":
            let def = args.arg(0, "default_value") ?? .string("")
            let boolean = (args.arg(1, "boolean") ?? .bool(false)).truthy
            if v.isUndefined || (boolean && !v.truthy) { return def }
            return v
        case "e", "escape": return .string(MarkupEscaping.markupsafe.escape(str(v)))
        case "first":
            let items = try ev.iterate(v, pos)
            return items.first ?? .undefined(CTUndefinedHint(message: "No first item, sequence was empty."))
        case "last":
            if case .undefined = v { throw ev.undefinedError(v, pos) }
            let items = try ev.iterate(v, pos)
            return items.last ?? .undefined(CTUndefinedHint(message: "No last item, sequence was empty."))
        case "list": return .list(try ev.iterate(v, pos))
        case "reverse":
            if case .string(let s) = v { return .string(CTPy.fromScalars(s.unicodeScalars.reversed())) }
            return .list(try ev.iterate(v, pos).reversed())
        case "items":
            switch v {
            case .undefined: return .list([])
            case .dict(let d): return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .namespace(let ns): return .list(ns.attrs.pairs.map { .tuple([.string($0.0), $0.1]) })
            default: throw fail("can only get item pairs from a mapping, not \(v.pyTypeName)", pos)
            }
        case "dictsort":
            guard case .dict(let d) = v else { throw fail("dictsort expects a mapping", pos) }
            let caseSensitive = (args.arg(0, "case_sensitive") ?? .bool(false)).truthy
            let byValue = (try stringArg(args.arg(1, "by"), "dictsort's by", pos) ?? "key") == "value"
            let reverse = (args.arg(2, "reverse") ?? .bool(false)).truthy
            var pairs = d.pairs.map { CTValue.tuple([.string($0.0), $0.1]) }
            try ev.step(pos, pairs.count * (Int.bitWidth - pairs.count.leadingZeroBitCount) >> 4)
            try sortValues(&pairs, pos) { p in
                guard case .tuple(let t) = p else { return p }
                let k = byValue ? t[1] : t[0]
                if !caseSensitive, case .string(let s) = k { return .string(s.lowercased()) }
                return k
            }
            if reverse { pairs.reverse() }
            return .list(pairs)
        case "join":
            let sep = str(args.arg(0, "d") ?? .string(""))
            var items = try ev.iterate(v, pos)
            if let attr = args.arg(1, "attribute"), !attr.isUndefined {
                items = try items.map { try attribute($0, attr, pos, ev) }
            }
            return .string(try join(items.map { try ev.text($0, pos) }, sep, pos, ev))
        case "replace":
            let s = str(v)
            let old = str(args.arg(0, "old") ?? .string("")), new = str(args.arg(1, "new") ?? .string(""))
            let count = try intArg(args.arg(2, "count"), -1, "replace's count", pos)
            return .string(try replace(s, old, new, count, pos, ev))
        case "tojson":
            let ensureASCII = (args.arg(0, "ensure_ascii") ?? .bool(false)).truthy
            let indentV = args.arg(1, "indent") ?? CTValue.none
            var indent: String? = nil
            switch indentV {
            case .none: indent = nil
            case .string(let s): indent = s
            default:
                guard case .int(let n)? = indentV.numeric else { throw fail("tojson's indent must be an int or a string", pos) }
                if n > CTLimits.maxStringBytes { throw ev.stringTooLong(n, pos) }
                indent = String(repeating: " ", count: max(0, n))
            }
            var itemSep = indent == nil ? ", " : ",", keySep = ": "
            if let seps = args.arg(2, "separators"), !(seps.isUndefined) {
                if case .none = seps {} else {
                    let parts = try ev.iterate(seps, pos)
                    guard parts.count == 2, case .string(let a) = parts[0], case .string(let b) = parts[1] else {
                        throw fail("tojson's separators must be a pair of strings", pos)
                    }
                    itemSep = a; keySep = b
                }
            }
            let sortKeys = (args.arg(3, "sort_keys") ?? .bool(false)).truthy
            var out = ""
            try dumpJSON(v, indent: indent, level: 0, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys,
                         ascii: ensureASCII, into: &out, pos)
            return .string(out)
        case "int":
            let def = args.arg(0, "default") ?? .int(0)
            let base = try intArg(args.arg(1, "base"), 10, "int's base", pos)
            return toInt(v, base: base) ?? def
        case "float":
            let def = args.arg(0, "default") ?? .float(0)
            switch v {
            case .float: return v
            case .int(let i): return .float(Double(i))
            case .bool(let b): return .float(b ? 1 : 0)
            case .string(let s):
                let t = CTPy.strip(s, chars: nil).replacingOccurrences(of: "_", with: "")
                if let d = Double(t) { return .float(d) }
                switch t.lowercased() {
                case "inf", "+inf", "infinity", "+infinity": return .float(.infinity)
                case "-inf", "-infinity": return .float(-.infinity)
                case "nan", "+nan", "-nan": return .float(.nan)
                default: return def
                }
            default: return def
            }
        case "abs":
            switch v.numeric {
            case .int(let i)?:
                if i == Int.min { throw fail("integer overflow (gift's chat templates use 64-bit integers)", pos) }
                return .int(Swift.abs(i))
            case .float(let d)?: return .float(Swift.abs(d))
            case nil: throw fail("bad operand type for abs(): '\(v.pyTypeName)'", pos)
            }
        case "round":
            let precision = try intArg(args.arg(0, "precision"), 0, "round's precision", pos)
            let method = try stringArg(args.arg(1, "method"), "round's method", pos) ?? "common"
            guard let x = v.numeric?.asDouble else { throw fail("round() needs a number, not \(v.pyTypeName)", pos) }
            let scale = Foundation.pow(10.0, Double(precision))
            switch method {
            case "common":
                if precision == 0 { return .float(x.rounded(.toNearestOrEven)) }
                return .float(Double(String(format: "%.\(min(400, max(0, precision)))f", x)) ?? x)
            case "ceil": return .float((x * scale).rounded(.up) / scale)
            case "floor": return .float((x * scale).rounded(.down) / scale)
            default: throw fail("method must be common, ceil or floor", pos)
            }
        case "sum":
            var acc: CTValue = args.arg(1, "start") ?? .int(0)
            var items = try ev.iterate(v, pos)
            if let attr = args.arg(0, "attribute"), !attr.isUndefined { items = try items.map { try attribute($0, attr, pos, ev) } }
            for x in items { acc = try ev.binary(.add, acc, x, pos) }
            return acc
        case "min", "max":
            let items = try ev.iterate(v, pos)
            guard var best = items.first else {
                return .undefined(CTUndefinedHint(message: "No aggregated item, sequence was empty."))
            }
            for x in items.dropFirst() {
                guard let less = CTPy.lessThan(x, best) else { throw fail("cannot compare \(x.pyTypeName) and \(best.pyTypeName)", pos) }
                let greater = CTPy.lessThan(best, x) ?? false
                if (name == "min" && less) || (name == "max" && greater) { best = x }
            }
            return best
        case "sort":
            var items = try ev.iterate(v, pos)
            let reverse = (args.arg(0, "reverse") ?? .bool(false)).truthy
            let caseSensitive = (args.arg(1, "case_sensitive") ?? .bool(false)).truthy
            let attr = args.arg(2, "attribute")
            try ev.step(pos, items.count * (Int.bitWidth - items.count.leadingZeroBitCount) >> 4)
            try sortValues(&items, pos) { x in
                var k = x
                if let attr, !attr.isUndefined { k = (try? attribute(x, attr, pos, ev)) ?? .emptyUndefined }
                if !caseSensitive, case .string(let s) = k { return .string(s.lowercased()) }
                return k
            }
            if reverse { items.reverse() }
            return .list(items)
        case "unique":
            var out: [CTValue] = []
            for x in try ev.iterate(v, pos) {
                let key: (CTValue) -> CTValue = { if case .string(let s) = $0 { return .string(s.lowercased()) }; return $0 }
                try ev.step(pos, 1 + out.count >> 4)
                if !out.contains(where: { key($0).pyEquals(key(x)) }) { out.append(x) }
            }
            return .list(out)
        case "indent":
            let widthV = args.arg(0, "width") ?? .int(4)
            let width: String
            if case .string(let w) = widthV { width = w } else {
                let n = try intArg(widthV, 4, "indent's width", pos)
                if n > CTLimits.maxStringBytes { throw ev.stringTooLong(n, pos) }
                width = String(repeating: " ", count: max(0, n))
            }
            let first = (args.arg(1, "first") ?? .bool(false)).truthy
            let blank = (args.arg(2, "blank") ?? .bool(false)).truthy
            var s = str(v) + "\n"
            var lines = s.components(separatedBy: "\n")
            lines.removeLast()
            let (extra, o) = width.utf8.count.multipliedReportingOverflow(by: lines.count)
            if o || s.utf8.count + extra > CTLimits.maxStringBytes { throw ev.stringTooLong(o ? Int.max : s.utf8.count + extra, pos) }
            var out: [String] = []
            for (k, line) in lines.enumerated() {
                if k == 0 { out.append(first ? width + line : line); continue }
                out.append(blank || !line.isEmpty ? width + line : line)
            }
            s = out.joined(separator: "\n")
            return .string(s)
        case "map":
            let items = try ev.iterate(v, pos)
            if let attr = args.kw("attribute") {
                let def = args.kw("default")
                return .list(try items.map { x in
                    let r = try attribute(x, attr, pos, ev)
                    if r.isUndefined, let def { return def }
                    return r
                })
            }
            guard case .string(let filterName)? = args.positional.first else {
                throw fail("map requires a filter name or attribute=", pos)
            }
            guard names.contains(filterName) else { throw fail("no filter named '\(filterName)'", pos) }
            let rest = Args(positional: Array(args.positional.dropFirst()), keywords: args.keywords)
            return .list(try items.map { try apply(filterName, $0, rest, pos, ev) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = args.positional
            var attr: CTValue? = nil
            if byAttr {
                guard !rest.isEmpty else { throw fail("\(name) needs an attribute name", pos) }
                attr = rest.removeFirst()
            }
            var testName: String? = nil
            if !rest.isEmpty {
                guard case .string(let t) = rest.removeFirst() else { throw fail("\(name)'s test must be named by a string", pos) }
                guard testNames.contains(t) else { throw fail("no test named '\(t)'", pos) }
                testName = t
            }
            let testArgs = Args(positional: rest, keywords: args.keywords)
            var out: [CTValue] = []
            for x in try ev.iterate(v, pos) {
                let subject = try attr.map { try attribute(x, $0, pos, ev) } ?? x
                let ok = try testName.map { try test($0, subject, testArgs, pos, ev) } ?? subject.truthy
                if ok == keep { out.append(x) }
            }
            return .list(out)
        default:
            throw fail("unsupported construct: the '\(name)' filter", pos)
        }
    }

    /// jinja2's make_attrgetter: a dotted path of items/attributes ("a.b", "0").
    static func attribute(_ v: CTValue, _ path: CTValue, _ pos: Int, _ ev: CTEvaluator) throws -> CTValue {
        guard case .string(let p) = path else {
            return try ev.getitem(v, path, pos)
        }
        var cur = v
        for part in p.split(separator: ".", omittingEmptySubsequences: false) {
            let key: CTValue = Int(part).map { CTValue.int($0) } ?? CTValue.string(String(part))
            cur = try ev.getitem(cur, key, pos)
        }
        return cur
    }

    static func sortValues(_ items: inout [CTValue], _ pos: Int, key: (CTValue) throws -> CTValue) throws {
        let keyed = try items.map { (try key($0), $0) }
        var err: CTRuntimeError? = nil
        let sorted = keyed.enumerated().sorted { l, r in
            guard let less = CTPy.lessThan(l.element.0, r.element.0) else {
                err = fail("'<' not supported between instances of '\(l.element.0.pyTypeName)' and '\(r.element.0.pyTypeName)'", pos)
                return false
            }
            if less { return true }
            if CTPy.lessThan(r.element.0, l.element.0) == true { return false }
            return l.offset < r.offset  // stable, as Python's sort
        }
        if let err { throw err }
        items = sorted.map { $0.element.1 }
    }

    static func length(_ v: CTValue, _ pos: Int) throws -> Int {
        switch v {
        case .undefined: return 0
        case .string(let s): return s.unicodeScalars.count
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d): return d.count
        case .loop(let l): return l.items.count
        default: throw fail("object of type '\(v.pyTypeName)' has no len()", pos)
        }
    }

    static func toInt(_ v: CTValue, base: Int) -> CTValue? {
        switch v {
        case .int: return v
        case .bool(let b): return .int(b ? 1 : 0)
        case .float(let d):
            guard d.isFinite, Swift.abs(d) < 9.2e18 else { return nil }
            return .int(Int(d.rounded(.towardZero)))
        case .string(let s):
            var t = CTPy.strip(s, chars: nil).replacingOccurrences(of: "_", with: "")
            var neg = false
            if t.hasPrefix("-") { neg = true; t.removeFirst() } else if t.hasPrefix("+") { t.removeFirst() }
            var b = base
            let lower = t.lowercased()
            if (b == 16 || b == 0) && lower.hasPrefix("0x") { t.removeFirst(2); b = 16 }
            else if (b == 8 || b == 0) && lower.hasPrefix("0o") { t.removeFirst(2); b = 8 }
            else if (b == 2 || b == 0) && lower.hasPrefix("0b") { t.removeFirst(2); b = 2 }
            if b == 0 { b = 10 }
            if let i = Int(t, radix: b) { return .int(neg ? -i : i) }
            if let d = Double(CTPy.strip(s, chars: nil)), d.isFinite, Swift.abs(d) < 9.2e18 { return .int(Int(d.rounded(.towardZero))) }
            return nil
        default: return nil
        }
    }

    static func capitalize(_ s: String) -> String {
        guard let f = s.unicodeScalars.first else { return s }
        return String(f).uppercased() + CTPy.fromScalars(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// jinja2's do_title: words start after runs of -, whitespace, (, {, [ or <.
    static func title(_ s: String) -> String {
        var out = ""
        var atStart = true
        for u in s.unicodeScalars {
            let sep = u == "-" || u == "(" || u == "{" || u == "[" || u == "<" || CTPy.isSpace(u)
            if sep { out.unicodeScalars.append(u); atStart = true; continue }
            out += atStart ? String(u).uppercased() : String(u).lowercased()
            atStart = false
        }
        return out
    }
}
