import Foundation

// The Python methods a template may call: str (strip, split, startswith, replace, ...), dict (get, items,
// keys, values) and list (count, index), with Python's semantics on code points.

extension CTFilters {
    /// Index of `needle` in `hay` at or after `from` (code points).
    static func find(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from: Int) -> Int? {
        if needle.isEmpty { return from <= hay.count ? from : nil }
        guard hay.count >= needle.count else { return nil }
        var i = max(0, from)
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func rfind(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Int? {
        if needle.count > hay.count { return nil }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    /// Python's str.replace (count < 0: all), refused once the result would pass CTLimits.maxStringBytes
    /// (counted in code points, each at least a byte).
    static func replace(_ s: String, _ old: String, _ new: String, _ count: Int, _ pos: Int, _ ev: CTEvaluator) throws -> String {
        let h = Array(s.unicodeScalars), o = Array(old.unicodeScalars), n = Array(new.unicodeScalars)
        var out: [Unicode.Scalar] = []
        var done = 0
        func check() throws { if out.count > CTLimits.maxStringBytes { throw ev.stringTooLong(out.count, pos) } }
        try ev.step(pos, h.count >> 6)
        if o.isEmpty {
            for (k, u) in h.enumerated() {
                if count < 0 || done < count { out += n; done += 1; try check() }
                out.append(u)
                _ = k
            }
            if count < 0 || done < count { out += n; try check() }
            return CTPy.fromScalars(out)
        }
        var i = 0
        while i < h.count {
            if (count < 0 || done < count), let j = find(h, o, from: i) {
                out += h[i..<j]; out += n; i = j + o.count; done += 1
                try check()
            } else {
                out += h[i...]; break
            }
        }
        return CTPy.fromScalars(out)
    }

    /// `parts` joined by `sep`, refused when the result would pass CTLimits.maxStringBytes.
    static func join(_ parts: [String], _ sep: String, _ pos: Int, _ ev: CTEvaluator) throws -> String {
        var total = max(0, parts.count - 1) * sep.utf8.count
        for p in parts { total += p.utf8.count }
        if total > CTLimits.maxStringBytes { throw ev.stringTooLong(total, pos) }
        return parts.joined(separator: sep)
    }

    /// Python's str.split(sep, maxsplit) (sep nil: runs of whitespace).
    static func split(_ s: String, _ sep: String?, _ maxsplit: Int, _ pos: Int, _ ev: CTEvaluator) throws -> [String] {
        let h = Array(s.unicodeScalars)
        var parts: [String] = []
        func check() throws { if parts.count > CTLimits.maxListLength { throw ev.listTooLong(parts.count, pos) } }
        if let sep {
            let p = Array(sep.unicodeScalars)
            var i = 0
            while maxsplit < 0 || parts.count < maxsplit, let j = find(h, p, from: i) {
                parts.append(CTPy.fromScalars(h[i..<j])); i = j + p.count
                try check()
            }
            parts.append(CTPy.fromScalars(h[i...]))
            return parts
        }
        var i = 0
        while i < h.count {
            while i < h.count, CTPy.isSpace(h[i]) { i += 1 }
            if i >= h.count { break }
            if maxsplit >= 0 && parts.count >= maxsplit {
                parts.append(CTPy.fromScalars(h[i...]))
                return parts
            }
            var j = i
            while j < h.count, !CTPy.isSpace(h[j]) { j += 1 }
            parts.append(CTPy.fromScalars(h[i..<j]))
            try check()
            i = j
        }
        return parts
    }

    static func callMethod(_ r: CTValue, _ name: String, _ args: Args, _ pos: Int, _ ev: CTEvaluator) throws -> CTValue {
        switch r {
        case .dict(let d):
            switch name {
            case "get":
                guard let k = args.arg(0, "key") else { throw fail("get expected at least 1 argument, got 0", pos) }
                if case .string(let key) = k, let v = d[key] { return v }
                return args.arg(1, "default") ?? CTValue.none
            case "items": return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.pairs.map { $0.1 })
            case "copy": return r
            default: break
            }
        case .list(let a), .tuple(let a):
            switch name {
            case "count":
                guard let x = args.positional.first else { throw fail("count() takes exactly one argument", pos) }
                try ev.step(pos, a.count >> 4)
                return .int(a.filter { $0.pyEquals(x) }.count)
            case "index":
                guard let x = args.positional.first else { throw fail("index() takes at least 1 argument", pos) }
                try ev.step(pos, a.count >> 4)
                guard let i = a.firstIndex(where: { $0.pyEquals(x) }) else { throw fail("\(x.pyRepr) is not in list", pos) }
                return .int(i)
            case "copy": return r
            default: break
            }
        case .loop(let l):
            if name == "cycle" {
                guard !args.positional.isEmpty else { throw fail("no items for cycling given", pos) }
                return args.positional[l.index0 % args.positional.count]
            }
        case .string(let s):
            return try stringMethod(s, name, args, pos, ev)
        default: break
        }
        throw fail("\(r.pyTypeDescription) has no method '\(name)'", pos)
    }

    static func stringMethod(_ s: String, _ name: String, _ args: Args, _ pos: Int, _ ev: CTEvaluator) throws -> CTValue {
        try ev.step(pos, s.utf8.count >> 6)
        let u = Array(s.unicodeScalars)
        func strArg(_ i: Int, _ n: String) throws -> String {
            guard case .string(let x)? = args.arg(i, n) else { throw fail("\(name)() needs a string argument", pos) }
            return x
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try stringArg(args.arg(0, "chars"), "\(name)'s chars", pos)
            return .string(CTPy.strip(s, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let sep = try stringArg(args.arg(0, "sep"), "split's sep", pos)
            if sep == "" { throw fail("empty separator", pos) }
            let maxsplit = try intArg(args.arg(1, "maxsplit"), -1, "maxsplit", pos)
            if name == "rsplit" && maxsplit >= 0 {
                // split from the right: reverse, split with the reversed separator, reverse back
                let rev = CTPy.fromScalars(u.reversed())
                let parts = try split(rev, sep.map { CTPy.fromScalars($0.unicodeScalars.reversed()) }, maxsplit, pos, ev)
                return .list(parts.reversed().map { CTValue.string(CTPy.fromScalars($0.unicodeScalars.reversed())) })
            }
            return .list(try split(s, sep, maxsplit, pos, ev).map { .string($0) })
        case "splitlines":
            let keep = (args.arg(0, "keepends") ?? .bool(false)).truthy
            var out: [CTValue] = []
            var start = 0, i = 0
            while i < u.count {
                let c = u[i].value
                let isBreak = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c)
                if isBreak {
                    var end = i + 1
                    if c == 0x0D, end < u.count, u[end] == "\n" { end += 1 }
                    out.append(.string(CTPy.fromScalars(u[start..<(keep ? end : i)])))
                    if out.count > CTLimits.maxListLength { throw ev.listTooLong(out.count, pos) }
                    start = end; i = end
                } else { i += 1 }
            }
            if start < u.count { out.append(.string(CTPy.fromScalars(u[start...]))) }
            return .list(out)
        case "startswith", "endswith":
            guard let p = args.arg(0, "prefix") else { throw fail("\(name)() takes at least 1 argument", pos) }
            let candidates: [CTValue]
            if case .tuple(let t) = p { candidates = t } else { candidates = [p] }
            for c in candidates {
                guard case .string(let x) = c else { throw fail("\(name) first arg must be str or a tuple of str, not \(c.pyTypeName)", pos) }
                let xs = Array(x.unicodeScalars)
                if name == "startswith" ? u.starts(with: xs) : u.reversed().starts(with: xs.reversed()) { return .bool(true) }
            }
            return .bool(false)
        case "lower", "casefold": return .string(s.lowercased())
        case "upper": return .string(s.uppercased())
        case "swapcase":
            return .string(s.unicodeScalars.map { c -> String in
                let t = String(c)
                return t.lowercased() != t ? t.lowercased() : t.uppercased()
            }.joined())
        case "capitalize": return .string(capitalize(s))
        case "title":
            var out = ""
            var prevCased = false
            for c in u {
                let t = String(c)
                let cased = t.lowercased() != t.uppercased()
                out += cased ? (prevCased ? t.lowercased() : t.uppercased()) : t
                prevCased = cased
            }
            return .string(out)
        case "replace":
            let count = try intArg(args.arg(2, "count"), -1, "replace's count", pos)
            return .string(try replace(s, try strArg(0, "old"), try strArg(1, "new"), count, pos, ev))
        case "find", "index":
            let i = find(u, Array(try strArg(0, "sub").unicodeScalars), from: 0)
            if name == "index" && i == nil { throw fail("substring not found", pos) }
            return .int(i ?? -1)
        case "rfind", "rindex":
            let i = rfind(u, Array(try strArg(0, "sub").unicodeScalars))
            if name == "rindex" && i == nil { throw fail("substring not found", pos) }
            return .int(i ?? -1)
        case "count":
            let n = Array(try strArg(0, "sub").unicodeScalars)
            if n.isEmpty { return .int(u.count + 1) }
            var c = 0, i = 0
            while let j = find(u, n, from: i) { c += 1; i = j + n.count }
            return .int(c)
        case "join":
            guard let it = args.positional.first else { throw fail("join() takes exactly one argument", pos) }
            let parts = try ev.iterate(it, pos).map { x -> String in
                guard case .string(let t) = x else { throw fail("sequence item: expected str instance, \(x.pyTypeName) found", pos) }
                return t
            }
            return .string(try join(parts, s, pos, ev))
        case "removeprefix":
            let p = Array(try strArg(0, "prefix").unicodeScalars)
            return .string(u.starts(with: p) ? CTPy.fromScalars(u[p.count...]) : s)
        case "removesuffix":
            let p = Array(try strArg(0, "suffix").unicodeScalars)
            return .string(!p.isEmpty && u.reversed().starts(with: p.reversed()) ? CTPy.fromScalars(u[..<(u.count - p.count)]) : s)
        case "zfill":
            let w = try intArg(args.arg(0, "width"), 0, "zfill's width", pos)
            if u.count >= w { return .string(s) }
            if w > CTLimits.maxStringBytes { throw ev.stringTooLong(w, pos) }
            var body = u[...]
            var sign: [Unicode.Scalar] = []
            if let f = body.first, f == "+" || f == "-" { sign = [f]; body = body.dropFirst() }
            return .string(CTPy.fromScalars(sign + Array(repeating: "0", count: w - u.count) + body))
        case "partition", "rpartition":
            let sep = Array(try strArg(0, "sep").unicodeScalars)
            if sep.isEmpty { throw fail("empty separator", pos) }
            let j = name == "partition" ? find(u, sep, from: 0) : rfind(u, sep)
            guard let j else {
                return name == "partition" ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
            }
            return .tuple([.string(CTPy.fromScalars(u[..<j])), .string(CTPy.fromScalars(sep)), .string(CTPy.fromScalars(u[(j + sep.count)...]))])
        case "isdigit", "isdecimal", "isnumeric":
            return .bool(!u.isEmpty && u.allSatisfy { c in
                name == "isnumeric" ? c.properties.numericType != nil : (c.properties.numericType == .decimal || (name == "isdigit" && c.properties.numericType == .digit))
            })
        case "isalpha": return .bool(!u.isEmpty && u.allSatisfy { $0.properties.isAlphabetic && $0.properties.generalCategory != .nonspacingMark })
        case "isalnum": return .bool(!u.isEmpty && u.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!u.isEmpty && u.allSatisfy { CTPy.isSpace($0) })
        case "islower": return .bool(s.lowercased() == s && s.uppercased() != s)
        case "isupper": return .bool(s.uppercased() == s && s.lowercased() != s)
        default: throw fail("unsupported construct: the string method '\(name)'", pos)
        }
    }
}
