import Foundation

/// The character classes the tokenizer regexes and pre-tokenizers use, as Oniguruma and Rust define them
/// for Unicode text: \p{L} (general category L*), \p{N} (N*), \s (White_Space), \w (Alphabetic, marks,
/// decimal digits, connector punctuation, joiners).
enum UClass {
    static let letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 4, other: UInt8 = 8

    /// ASCII classes: A-Z a-z letters, 0-9 numbers, \t \n \v \f \r and ' ' spaces, the rest other.
    static let ascii: [UInt8] = (0..<128).map { (c: Int) -> UInt8 in
        switch c {
        case 0x41...0x5A, 0x61...0x7A: return letter
        case 0x30...0x39: return number
        case 0x09...0x0D, 0x20: return space
        default: return other
        }
    }

    /// The classes of the Basic Multilingual Plane, computed once (a few milliseconds) on first use.
    static let bmp: [UInt8] = (0..<0x10000).map { (v: Int) -> UInt8 in
        guard let c = Unicode.Scalar(UInt32(v)) else { return other }  // surrogates never occur in text
        return v < 128 ? ascii[v] : slow(c)
    }

    /// One of letter, number, space, other.
    @inline(__always) static func of(_ c: Unicode.Scalar) -> UInt8 {
        let v = c.value
        if v < 128 { return ascii[Int(v)] }
        if v < 0x10000 { return bmp[Int(v)] }
        return slow(c)
    }

    static func slow(_ c: Unicode.Scalar) -> UInt8 {
        let p = c.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    @inline(__always) static func isL(_ c: Unicode.Scalar) -> Bool { of(c) == letter }
    @inline(__always) static func isN(_ c: Unicode.Scalar) -> Bool { of(c) == number }
    @inline(__always) static func isS(_ c: Unicode.Scalar) -> Bool { of(c) == space }

    /// Rust's char::is_whitespace (White_Space).
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool { of(c) == space }

    /// Rust's char::is_numeric (Nd, Nl, No).
    static func isNumeric(_ c: Unicode.Scalar) -> Bool { of(c) == number }

    /// \w of Rust's regex and Oniguruma (UTS #18).
    static func isWord(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 128 { return ascii[Int(v)] & (letter | number) != 0 || v == 0x5F }
        if v == 0x200C || v == 0x200D { return true }
        let p = c.properties
        if p.isAlphabetic { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// The Punctuation pre-tokenizer's test: ASCII punctuation, or general category P*.
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 128 {
            return (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v)
        }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}

extension Array where Element == Unicode.Scalar {
    /// The UTF-8 bytes of these scalars.
    var utf8Bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for c in self { appendUTF8(c, to: &out) }
        return out
    }
    /// A String holding exactly these scalars (no normalization).
    var scalarText: String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: self)
        return String(v)
    }
}

@inline(__always) func appendUTF8(_ c: Unicode.Scalar, to out: inout [UInt8]) {
    let v = c.value
    if v < 0x80 { out.append(UInt8(v)) } else if v < 0x800 {
        out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else if v < 0x10000 {
        out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    }
}

/// A byte string usable as a dictionary key: compared and hashed byte by byte (Swift's String compares
/// by canonical equivalence, which would merge distinct vocabulary entries such as "é" and "e\u{301}").
struct ByteKey: Hashable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ s: String) { bytes = Array(s.utf8) }
    static func == (a: ByteKey, b: ByteKey) -> Bool { a.bytes == b.bytes }
    func hash(into h: inout Hasher) { bytes.withUnsafeBytes { h.combine(bytes: $0) } }
}
