import Foundation

// transformers' `tojson` filter: Python's json.dumps (ensure_ascii=False unless asked, indent, separators,
// sort_keys), byte for byte.

extension CTFilters {
    static func jsonString(_ s: String, ascii: Bool, into o: inout String) {
        o.unicodeScalars.append("\"")
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\r": o += "\\r"
            case "\t": o += "\\t"
            case "\u{08}": o += "\\b"
            case "\u{0C}": o += "\\f"
            default:
                if u.value < 0x20 || (ascii && u.value > 0x7E) {
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

    /// Python's json.dumps.
    static func dumpJSON(_ v: CTValue, indent: String?, level: Int, itemSep: String, keySep: String, sortKeys: Bool,
                         ascii: Bool, into o: inout String, _ pos: Int) throws {
        func newline(_ l: Int) throws {
            if let indent {
                if o.utf8.count + 1 + indent.utf8.count * l > CTLimits.maxStringBytes {
                    throw fail("tojson would write more than \(CTLimits.maxStringBytes) bytes", pos)
                }
                o += "\n" + String(repeating: indent, count: l)
            }
        }
        if o.utf8.count > CTLimits.maxStringBytes { throw fail("tojson would write more than \(CTLimits.maxStringBytes) bytes", pos) }
        switch v {
        case .none: o += "null"
        case .bool(let b): o += b ? "true" : "false"
        case .int(let i): o += String(i)
        case .float(let d):
            if d.isNaN { o += "NaN" } else if d.isInfinite { o += d < 0 ? "-Infinity" : "Infinity" } else { o += CTPy.floatRepr(d) }
        case .string(let s): jsonString(s, ascii: ascii, into: &o)
        case .list(let a), .tuple(let a):
            if a.isEmpty { o += "[]"; return }
            o += "["
            for (k, x) in a.enumerated() {
                if k > 0 { o += itemSep }
                try newline(level + 1)
                try dumpJSON(x, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys,
                             ascii: ascii, into: &o, pos)
            }
            try newline(level)
            o += "]"
        case .dict(let d):
            if d.isEmpty { o += "{}"; return }
            o += "{"
            let keys = sortKeys ? d.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) } : d.keys
            for (k, key) in keys.enumerated() {
                if k > 0 { o += itemSep }
                try newline(level + 1)
                jsonString(key, ascii: ascii, into: &o)
                o += keySep
                try dumpJSON(d[key]!, indent: indent, level: level + 1, itemSep: itemSep, keySep: keySep,
                             sortKeys: sortKeys, ascii: ascii, into: &o, pos)
            }
            try newline(level)
            o += "}"
        default:
            throw fail("Object of type \(v.pyTypeName) is not JSON serializable", pos)
        }
    }
}
