import Foundation

/// The `normalizer` of a tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip and
/// Sequence of these; anything else is refused by name.
indirect enum TextNormalizer {
    case nfc, nfd, nfkc, nfkd, lowercase
    case replace(TextPattern, [Unicode.Scalar])
    case prepend([Unicode.Scalar])
    case strip(left: Bool, right: Bool)
    case sequence([TextNormalizer])

    static func parse(_ j: TJ) throws -> TextNormalizer {
        let type = try j.typeName()
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Replace":
            return .replace(try TextPattern.parse(try j.require("pattern")), Array(try j.string("content").unicodeScalars))
        case "Prepend": return .prepend(Array(try j.string("prepend").unicodeScalars))
        case "Strip": return .strip(left: try j.bool("strip_left", default: true), right: try j.bool("strip_right", default: true))
        case "Sequence": return .sequence(try j.require("normalizers").array().map(parse))
        default: throw j.unsupported("normalizer", type)
        }
    }

    /// Throws only when a Replace regex exceeds its backtracking budget (ScalarRegex).
    func apply(_ s: [Unicode.Scalar]) throws -> [Unicode.Scalar] {
        switch self {
        case .nfc: return s.allSatisfy({ $0.value < 0x300 }) ? s : Array(s.scalarText.precomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfd: return s.allSatisfy({ $0.value < 0xC0 }) ? s : Array(s.scalarText.decomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkc: return s.allSatisfy({ $0.value < 0xA0 }) ? s : Array(s.scalarText.precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfkd: return s.allSatisfy({ $0.value < 0xA0 }) ? s : Array(s.scalarText.decomposedStringWithCompatibilityMapping.unicodeScalars)
        case .lowercase:
            // Rust's char::to_lowercase, character by character (no final-sigma context).
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                let v = c.value
                if v < 128 {
                    out.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(v + 32)! : c)
                } else {
                    out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
                }
            }
            return out
        case .replace(let p, let content): return try p.replaceAll(s, with: content)
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .strip(let left, let right):
            var lo = 0, hi = s.count
            if left { while lo < hi, UClass.isWhitespace(s[lo]) { lo += 1 } }
            if right { while hi > lo, UClass.isWhitespace(s[hi - 1]) { hi -= 1 } }
            return Array(s[lo..<hi])
        case .sequence(let ns):
            var t = s
            for n in ns { t = try n.apply(t) }
            return t
        }
    }
}
