import Foundation

/// The `decoder` of a tokenizer.json: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace and
/// Sequence. Each maps the list of token strings to a new list (HF's decode_chain); the results are joined.
indirect enum TextDecoder {
    case byteLevel
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(TextPattern, [Unicode.Scalar])
    case sequence([TextDecoder])

    static func parse(_ j: TJ) throws -> TextDecoder {
        let type = try j.typeName()
        switch type {
        case "ByteLevel": return .byteLevel
        case "Metaspace": return .metaspace(replacement: try j.scalar("replacement"), scheme: try PrependScheme.parse(j))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            return .strip(content: try j.scalar("content"), start: try j.int("start", default: 0), stop: try j.int("stop", default: 0))
        case "Replace":
            return .replace(try TextPattern.parse(try j.require("pattern")), Array(try j.string("content").unicodeScalars))
        case "Sequence": return .sequence(try j.require("decoders").array().map(parse))
        default: throw j.unsupported("decoder", type)
        }
    }

    func chain(_ tokens: [[Unicode.Scalar]]) throws -> [[Unicode.Scalar]] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                var tb: [UInt8] = []
                tb.reserveCapacity(t.count)
                var ok = true
                for c in t {
                    let v = Int(c.value)
                    if v < ByteLevelMap.charToByte.count, ByteLevelMap.charToByte[v] >= 0 {
                        tb.append(UInt8(ByteLevelMap.charToByte[v]))
                    } else { ok = false; break }
                }
                bytes += ok ? tb : t.utf8Bytes
            }
            return [Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)]
        case .metaspace(let rep, let scheme):
            return tokens.enumerated().map { i, t in
                var out: [Unicode.Scalar] = []
                out.reserveCapacity(t.count)
                for c in t {
                    if c == rep {
                        if !(i == 0 && scheme != .never) { out.append(" ") }
                    } else {
                        out.append(c)
                    }
                }
                return out
            }
        case .byteFallback:
            var out: [[Unicode.Scalar]] = []
            var pending: [UInt8] = []
            func flush() {
                if pending.isEmpty { return }
                if let s = TextDecoder.validUTF8(pending) {
                    out.append(s)
                } else {
                    for _ in pending { out.append(["\u{FFFD}"]) }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = TextDecoder.byteToken(t) { pending.append(b); continue }
                flush()
                out.append(t)
            }
            flush()
            return out
        case .fuse:
            return [tokens.flatMap { $0 }]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                var lo = 0
                while lo < start, lo < t.count, t[lo] == content { lo += 1 }
                var hi = t.count
                while t.count - hi < stop, hi > lo, t[hi - 1] == content { hi -= 1 }
                return Array(t[lo..<hi])
            }
        case .replace(let p, let content):
            return try tokens.map { try p.replaceAll($0, with: content) }
        case .sequence(let ds):
            var t = tokens
            for d in ds { t = try d.chain(t) }
            return t
        }
    }

    /// The scalars of `bytes` when they are valid UTF-8.
    static func validUTF8(_ bytes: [UInt8]) -> [Unicode.Scalar]? {
        var it = bytes.makeIterator()
        var dec = UTF8()
        var out: [Unicode.Scalar] = []
        while true {
            switch dec.decode(&it) {
            case .scalarValue(let c): out.append(c)
            case .emptyInput: return out
            case .error: return nil
            }
        }
    }

    /// <0xNN> -> NN
    static func byteToken(_ t: [Unicode.Scalar]) -> UInt8? {
        guard t.count == 6, t[0] == "<", t[1] == "0", t[2] == "x", t[5] == ">" else { return nil }
        func hex(_ c: Unicode.Scalar) -> UInt8? {
            switch c.value {
            case 0x30...0x39: return UInt8(c.value - 0x30)
            case 0x41...0x46: return UInt8(c.value - 0x41 + 10)
            case 0x61...0x66: return UInt8(c.value - 0x61 + 10)
            default: return nil
            }
        }
        guard let h = hex(t[3]), let l = hex(t[4]) else { return nil }
        return h << 4 | l
    }
}

/// The `post_processor`: TemplateProcessing (the `single` template), ByteLevel (no change to ids), and
/// Sequence of these.
indirect enum PostProcessor {
    case template([TemplatePiece])
    case byteLevel
    case sequence([PostProcessor])

    enum TemplatePiece { case sequence, special([Int32]) }

    static func parse(_ j: TJ) throws -> PostProcessor {
        let type = try j.typeName()
        switch type {
        case "ByteLevel": return .byteLevel
        case "Sequence": return .sequence(try j.require("processors").array().map(parse))
        case "TemplateProcessing":
            var specials: [String: [Int32]] = [:]
            if let sj = try j.field("special_tokens") {
                for k in try sj.object().keys {
                    let e = try sj.require(k)
                    specials[k] = try e.require("ids").array().map { j in
                        let id = try j.int()
                        guard id >= 0, id <= Int(Int32.max) else { throw j.error("invalid token id \(id)") }
                        return Int32(id)
                    }
                }
            }
            func template(_ key: String) throws -> [TemplatePiece] {
                try j.require(key).array().map { p in
                    if let s = try p.field("SpecialToken") {
                        let name = try s.string("id")
                        guard let ids = specials[name] else {
                            throw s.error("special token \(StrictJSON.quote(name)) is missing from special_tokens")
                        }
                        return .special(ids)
                    }
                    if let s = try p.field("Sequence") {
                        let which = try s.string("id")
                        guard which == "A" || which == "B" else { throw s.error("unknown sequence id '\(which)'") }
                        return .sequence
                    }
                    throw p.error("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}")
                }
            }
            _ = try template("pair")
            return .template(try template("single"))
        default: throw j.unsupported("post_processor", type)
        }
    }

    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .byteLevel: return ids
        case .sequence(let ps):
            var t = ids
            for p in ps { t = p.process(t) }
            return t
        case .template(let pieces):
            var out: [Int32] = []
            out.reserveCapacity(ids.count + 4)
            for p in pieces {
                switch p {
                case .sequence: out += ids
                case .special(let s): out += s
                }
            }
            return out
        }
    }
}
