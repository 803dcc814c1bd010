import Foundation

/// A piece of the text on its way through the pipeline: either an added token already (id set), or text
/// still to split and tokenize. `atStart`: the piece begins at offset 0 of the original text (what
/// Metaspace's prepend_scheme "first" looks at).
struct TextPiece {
    var s: [Unicode.Scalar]
    var id: Int32?
    var atStart: Bool
}

enum PrependScheme: String { case always, first, never }

extension PrependScheme {
    /// Metaspace's prepend_scheme, or the older add_prefix_space.
    static func parse(_ j: TJ) throws -> PrependScheme {
        if let f = try j.field("prepend_scheme") {
            let s = try f.string()
            guard let p = PrependScheme(rawValue: s) else { throw f.error("unknown prepend_scheme '\(s)'") }
            if try j.field("add_prefix_space")?.bool() == false, p != .never {
                throw j.error("add_prefix_space does not match declared prepend_scheme")
            }
            return p
        }
        return try j.bool("add_prefix_space", default: true) ? .always : .never
    }
}

/// The GPT-2 byte-to-character table of the ByteLevel components.
enum ByteLevelMap {
    static let byteToChar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }()
    /// Character value -> byte, -1 where the character is not in the table (indexed up to 0x144).
    static let charToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, c) in byteToChar.enumerated() { t[Int(c.value)] = Int16(b) }
        return t
    }()

    static func map(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for c in s {
            let v = c.value
            if v < 0x80 {
                out.append(byteToChar[Int(v)])
            } else if v < 0x800 {
                out.append(byteToChar[Int(0xC0 | (v >> 6))]); out.append(byteToChar[Int(0x80 | (v & 0x3F))])
            } else if v < 0x10000 {
                out.append(byteToChar[Int(0xE0 | (v >> 12))]); out.append(byteToChar[Int(0x80 | ((v >> 6) & 0x3F))])
                out.append(byteToChar[Int(0x80 | (v & 0x3F))])
            } else {
                out.append(byteToChar[Int(0xF0 | (v >> 18))]); out.append(byteToChar[Int(0x80 | ((v >> 12) & 0x3F))])
                out.append(byteToChar[Int(0x80 | ((v >> 6) & 0x3F))]); out.append(byteToChar[Int(0x80 | (v & 0x3F))])
            }
        }
        return out
    }
}

indirect enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TextPattern, SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case punctuation(SplitBehavior)
    case whitespace, whitespaceSplit
    case sequence([PreTokenizer])

    static func parse(_ j: TJ) throws -> PreTokenizer {
        let type = try j.typeName()
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try j.bool("add_prefix_space", default: true),
                              useRegex: try j.bool("use_regex", default: true))
        case "Split":
            return .split(try TextPattern.parse(try j.require("pattern")), try SplitBehavior.parse(try j.require("behavior")),
                          invert: try j.bool("invert", default: false))
        case "Digits": return .digits(individual: try j.bool("individual_digits", default: false))
        case "Metaspace":
            return .metaspace(replacement: try j.scalar("replacement"), scheme: try PrependScheme.parse(j),
                              split: try j.bool("split", default: true))
        case "Punctuation":
            return .punctuation(try j.field("behavior").map(SplitBehavior.parse) ?? .isolated)
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "Sequence": return .sequence(try j.require("pretokenizers").array().map(parse))
        default: throw j.unsupported("pre_tokenizer", type)
        }
    }

    /// Splits every text piece into `ranges`, dropping empty results.
    @inline(__always)
    static func splitEach(_ pieces: inout [TextPiece], _ f: ([Unicode.Scalar]) throws -> [Range<Int>]) rethrows {
        var out: [TextPiece] = []
        out.reserveCapacity(pieces.count * 2)
        for p in pieces {
            if p.id != nil { out.append(p); continue }
            for r in try f(p.s) where !r.isEmpty {
                out.append(TextPiece(s: Array(p.s[r]), id: nil, atStart: p.atStart && r.lowerBound == 0))
            }
        }
        pieces = out
    }

    /// Throws only when a Split regex exceeds its backtracking budget (ScalarRegex).
    func apply(_ pieces: inout [TextPiece]) throws {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count * 4)
            for var p in pieces {
                if p.id != nil { out.append(p); continue }
                if addPrefixSpace, p.s.first != " " { p.s.insert(" ", at: 0) }
                if useRegex {
                    for r in ScalarRegex.gpt2Matches(p.s) where !r.isEmpty {
                        out.append(TextPiece(s: ByteLevelMap.map(Array(p.s[r])), id: nil, atStart: p.atStart && r.lowerBound == 0))
                    }
                } else {
                    p.s = ByteLevelMap.map(p.s)
                    out.append(p)
                }
            }
            pieces = out
        case .split(let pattern, let behavior, let invert):
            try PreTokenizer.splitEach(&pieces) { Splitting.split(try pattern.findMatches($0), behavior, invert: invert) }
        case .digits(let individual):
            PreTokenizer.splitEach(&pieces) {
                Splitting.split(Splitting.charMatches($0, UClass.isNumeric), individual ? .isolated : .contiguous)
            }
        case .punctuation(let behavior):
            PreTokenizer.splitEach(&pieces) { Splitting.split(Splitting.charMatches($0, UClass.isPunctuation), behavior) }
        case .whitespaceSplit:
            PreTokenizer.splitEach(&pieces) { Splitting.split(Splitting.charMatches($0, UClass.isWhitespace), .removed) }
        case .whitespace:
            // \w+|[^\w\s]+, keeping only the matches
            PreTokenizer.splitEach(&pieces) { s in
                var out: [Range<Int>] = []
                var i = 0
                while i < s.count {
                    let c = s[i]
                    if UClass.isWord(c) {
                        var j = i + 1
                        while j < s.count, UClass.isWord(s[j]) { j += 1 }
                        out.append(i..<j); i = j
                    } else if !UClass.isWhitespace(c) {
                        var j = i + 1
                        while j < s.count, !UClass.isWord(s[j]), !UClass.isWhitespace(s[j]) { j += 1 }
                        out.append(i..<j); i = j
                    } else {
                        i += 1
                    }
                }
                return out
            }
        case .metaspace(let rep, let scheme, let split):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count * 4)
            for var p in pieces {
                if p.id != nil { out.append(p); continue }
                for k in p.s.indices where p.s[k] == " " { p.s[k] = rep }
                switch scheme {
                case .always: if p.s.first != rep { p.s.insert(rep, at: 0) }
                case .first: if p.s.first != rep, p.atStart { p.s.insert(rep, at: 0) }
                case .never: break
                }
                if split {
                    for r in Splitting.split(Splitting.charMatches(p.s, { $0 == rep }), .mergedWithNext) {
                        out.append(TextPiece(s: Array(p.s[r]), id: nil, atStart: p.atStart && r.lowerBound == 0))
                    }
                } else {
                    out.append(p)
                }
            }
            pieces = out
        case .sequence(let ps):
            for p in ps { try p.apply(&pieces) }
        }
    }
}
