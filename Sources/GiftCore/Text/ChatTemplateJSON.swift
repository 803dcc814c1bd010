import Foundation

// transformers' `tojson` filter: Python's json.dumps (ensure_ascii=False unless asked, indent, separators,
// sort_keys), byte for byte; strings are escaped by StrictJSON.writeQuoted's `.python` style.

extension CTFilters {
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
        case .string(let s): StrictJSON.writeQuoted(s, .python(ensureASCII: ascii), into: &o)
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
                StrictJSON.writeQuoted(key, .python(ensureASCII: ascii), into: &o)
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
