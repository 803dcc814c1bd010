import Foundation

/// Python 3 string semantics the d1 scorers rely on, on arrays of Unicode scalars (Python's `str` is a
/// sequence of code points: its `len`, indexing, `==`, `split`, `replace` and `strip` all work on code
/// points, not on Swift's grapheme clusters, and `==` has no canonical equivalence).
///
/// The character classes follow CPython 3.11's Unicode database (Unicode 14.0.0): `isspace` (also
/// `re`'s `\s` and what `strip()` removes), `isdecimal` (also `re`'s `\d` and the digits `float()` and
/// `int()` accept), `isdigit`, and `re`'s word characters (`isalnum()` or `_`, for `\b`).
typealias PyStr = [Unicode.Scalar]

enum PyText {
    static func str(_ s: String) -> PyStr { Array(s.unicodeScalars) }
    static func string(_ p: some Sequence<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: p)
        return String(v)
    }

    // MARK: character classes (CPython 3.11, Unicode 14.0.0)

    /// `str.isspace()`: the characters with bidirectional class WS, B or S, or category Zs.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    /// Blocks of ten decimal digits (general category Nd), each starting at its digit zero.
    static let decimalRanges: [(UInt32, UInt32)] = [
        (0x30, 0x39), (0x660, 0x669), (0x6F0, 0x6F9), (0x7C0, 0x7C9), (0x966, 0x96F), (0x9E6, 0x9EF),
        (0xA66, 0xA6F), (0xAE6, 0xAEF), (0xB66, 0xB6F), (0xBE6, 0xBEF), (0xC66, 0xC6F), (0xCE6, 0xCEF),
        (0xD66, 0xD6F), (0xDE6, 0xDEF), (0xE50, 0xE59), (0xED0, 0xED9), (0xF20, 0xF29), (0x1040, 0x1049),
        (0x1090, 0x1099), (0x17E0, 0x17E9), (0x1810, 0x1819), (0x1946, 0x194F), (0x19D0, 0x19D9), (0x1A80, 0x1A89),
        (0x1A90, 0x1A99), (0x1B50, 0x1B59), (0x1BB0, 0x1BB9), (0x1C40, 0x1C49), (0x1C50, 0x1C59), (0xA620, 0xA629),
        (0xA8D0, 0xA8D9), (0xA900, 0xA909), (0xA9D0, 0xA9D9), (0xA9F0, 0xA9F9), (0xAA50, 0xAA59), (0xABF0, 0xABF9),
        (0xFF10, 0xFF19), (0x104A0, 0x104A9), (0x10D30, 0x10D39), (0x11066, 0x1106F), (0x110F0, 0x110F9),
        (0x11136, 0x1113F), (0x111D0, 0x111D9), (0x112F0, 0x112F9), (0x11450, 0x11459), (0x114D0, 0x114D9),
        (0x11650, 0x11659), (0x116C0, 0x116C9), (0x11730, 0x11739), (0x118E0, 0x118E9), (0x11950, 0x11959),
        (0x11C50, 0x11C59), (0x11D50, 0x11D59), (0x11DA0, 0x11DA9), (0x16A60, 0x16A69), (0x16AC0, 0x16AC9),
        (0x16B50, 0x16B59), (0x1D7CE, 0x1D7FF), (0x1E140, 0x1E149), (0x1E2F0, 0x1E2F9), (0x1E950, 0x1E959),
        (0x1FBF0, 0x1FBF9),
    ]

    /// `str.isdigit()` adds Numeric_Type Digit to the decimals: superscripts, circled digits, ... (the
    /// characters of the digit class that are not in `decimalRanges`).
    static let digitOnlyRanges: [(UInt32, UInt32)] = [
        (0xB2, 0xB3), (0xB9, 0xB9), (0x1369, 0x1371), (0x19DA, 0x19DA), (0x2070, 0x2070), (0x2074, 0x2079),
        (0x2080, 0x2089), (0x2460, 0x2468), (0x2474, 0x247C), (0x2488, 0x2490), (0x24EA, 0x24EA), (0x24F5, 0x24FD),
        (0x24FF, 0x24FF), (0x2776, 0x277E), (0x2780, 0x2788), (0x278A, 0x2792), (0x10A40, 0x10A43),
        (0x10E60, 0x10E68), (0x11052, 0x1105A), (0x1F100, 0x1F10A),
    ]

    private static func find(_ v: UInt32, _ table: [(UInt32, UInt32)]) -> Int? {
        var lo = 0, hi = table.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if v < table[mid].0 { hi = mid - 1 } else if v > table[mid].1 { lo = mid + 1 } else { return mid }
        }
        return nil
    }

    /// The value of a decimal digit (`re`'s `\d`, `str.isdecimal()`), or nil.
    static func decimalValue(_ c: Unicode.Scalar) -> Int? {
        if c.value < 0x80 { return c.value >= 0x30 && c.value <= 0x39 ? Int(c.value - 0x30) : nil }
        guard let i = find(c.value, decimalRanges) else { return nil }
        return Int((c.value - decimalRanges[i].0) % 10)
    }
    static func isDecimal(_ c: Unicode.Scalar) -> Bool { decimalValue(c) != nil }
    static func isDigit(_ c: Unicode.Scalar) -> Bool { isDecimal(c) || find(c.value, digitOnlyRanges) != nil }
    static func isASCIIDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }

    /// `re`'s word character (`\w`, and the two sides of `\b`): `str.isalnum()` or `_`. `isalnum` is a
    /// letter (Lu Ll Lt Lm Lo) or any Numeric_Type; characters assigned after Unicode 14.0 are not word
    /// characters in CPython 3.11 (checked against CPython 3.11.7 for every code point with the Swift 6.3
    /// runtime's Unicode data).
    static func isWord(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 {
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        let p = c.properties
        guard let age = p.age, age.major < 14 || (age.major == 14 && age.minor == 0) else { return false }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return p.numericType != nil
        }
    }

    // MARK: str methods

    /// `s.strip()`.
    static func strip(_ s: PyStr) -> PyStr { strip(s[...]) }
    static func strip(_ s: ArraySlice<Unicode.Scalar>) -> PyStr {
        var a = s.startIndex, b = s.endIndex
        while a < b, isSpace(s[a]) { a += 1 }
        while b > a, isSpace(s[b - 1]) { b -= 1 }
        return Array(s[a..<b])
    }

    /// Whether `s` holds `sub` at `i`.
    static func hasAt(_ s: PyStr, _ i: Int, _ sub: PyStr) -> Bool {
        guard i >= 0, i + sub.count <= s.count else { return false }
        for k in 0..<sub.count where s[i + k] != sub[k] { return false }
        return true
    }

    /// `s.find(sub, start)` (first occurrence at or after `start`), or nil.
    static func find(_ s: PyStr, _ sub: PyStr, from start: Int = 0) -> Int? {
        if sub.isEmpty { return start <= s.count ? start : nil }
        guard s.count >= sub.count else { return nil }
        var i = max(start, 0)
        let first = sub[0]
        while i + sub.count <= s.count {
            if s[i] == first, hasAt(s, i, sub) { return i }
            i += 1
        }
        return nil
    }

    /// `s.rfind(sub)`, or nil.
    static func rfind(_ s: PyStr, _ sub: PyStr) -> Int? {
        guard s.count >= sub.count else { return nil }
        var i = s.count - sub.count
        while i >= 0 {
            if hasAt(s, i, sub) { return i }
            i -= 1
        }
        return nil
    }

    static func contains(_ s: PyStr, _ sub: PyStr) -> Bool { find(s, sub) != nil }

    /// `s.split(sep)` for a non-empty separator: left to right, non-overlapping.
    static func split(_ s: PyStr, _ sep: PyStr) -> [PyStr] {
        var parts: [PyStr] = []
        var start = 0
        var i = 0
        while let j = find(s, sep, from: i) {
            parts.append(Array(s[start..<j]))
            start = j + sep.count
            i = start
        }
        parts.append(Array(s[start...]))
        return parts
    }

    /// `s.replace(old, new)` for a non-empty `old`: left to right, non-overlapping.
    static func replace(_ s: PyStr, _ old: PyStr, _ new: PyStr) -> PyStr {
        guard let first = find(s, old) else { return s }
        var out: PyStr = Array(s[0..<first])
        out.reserveCapacity(s.count)
        var i = first
        while i < s.count {
            if s[i] == old[0], hasAt(s, i, old) {
                out.append(contentsOf: new)
                i += old.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
    static func replace(_ s: PyStr, _ old: String, _ new: String) -> PyStr { replace(s, str(old), str(new)) }

    /// The positions `re.search(pattern, ...)` would see for a literal: first occurrence.
    static func firstIndex(of c: Unicode.Scalar, in s: PyStr, from: Int) -> Int? {
        var i = from
        while i < s.count { if s[i] == c { return i }; i += 1 }
        return nil
    }

    // MARK: float() and int()

    /// What CPython does to a str before parsing a number (`_PyUnicode_TransformDecimalAndSpaceToASCII`):
    /// code points below 127 pass through, other whitespace becomes ' ', other decimal digits their ASCII
    /// digit; anything else makes the text invalid (nil).
    static func numberASCII(_ s: ArraySlice<Unicode.Scalar>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        for c in s {
            if c.value < 127 { out.append(UInt8(c.value)) }
            else if isSpace(c) { out.append(0x20) }
            else if let d = decimalValue(c) { out.append(UInt8(0x30 + d)) }
            else { return nil }
        }
        return out
    }

    /// C's isspace in the "C" locale, as CPython's Py_ISSPACE.
    static func isASCIISpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
    private static func isD(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// Removes underscores as CPython's `_Py_string_to_number_with_underscores` does: each one must
    /// follow a digit and precede a digit; nil when one does not.
    static func removeUnderscores(_ b: [UInt8]) -> [UInt8]? {
        guard b.contains(0x5F) else { return b }
        var out: [UInt8] = []
        var prev: UInt8 = 0
        for c in b {
            if c == 0x5F {
                if !isD(prev) { return nil }
            } else {
                out.append(c)
                if prev == 0x5F && !isD(c) { return nil }
            }
            prev = c
        }
        if prev == 0x5F { return nil }
        return out
    }

    /// Python's `float(s)` for a str, or nil where it raises ValueError.
    static func pyFloat(_ s: PyStr) -> Double? { pyFloat(s[...]) }
    static func pyFloat(_ s: ArraySlice<Unicode.Scalar>) -> Double? {
        guard var b = numberASCII(s) else { return nil }
        // PyFloat_FromString strips whitespace, then underscores are checked, then whitespace is stripped
        // again by the inner parser (the underscore check sees no leading/trailing whitespace).
        var lo = 0, hi = b.count
        while lo < hi, isASCIISpace(b[lo]) { lo += 1 }
        while hi > lo, isASCIISpace(b[hi - 1]) { hi -= 1 }
        b = Array(b[lo..<hi])
        guard let u = removeUnderscores(b) else { return nil }
        return asciiFloat(u)
    }

    /// `PyOS_string_to_double` over the whole of `b`: [sign] (inf | infinity | nan | decimal), case
    /// insensitive words, decimal = digits [. digits] [e [sign] digits] with at least one mantissa digit.
    static func asciiFloat(_ b: [UInt8]) -> Double? {
        var i = 0
        var negative = false
        if i < b.count, b[i] == 0x2B || b[i] == 0x2D { negative = b[i] == 0x2D; i += 1 }
        let rest = b[i...].map { $0 | 0x20 }  // lowercase letters; digits and '.' are unaffected below
        func word(_ w: String) -> Bool { rest.elementsEqual(Array(w.utf8)) }
        if word("inf") || word("infinity") { return negative ? -.infinity : .infinity }
        if word("nan") { return negative ? -Double.nan : Double.nan }
        var text = negative ? "-" : ""
        var intDigits = 0, fracDigits = 0
        var j = i
        while j < b.count, isD(b[j]) { j += 1; intDigits += 1 }
        text += String(decoding: b[i..<j], as: UTF8.self)
        if j < b.count, b[j] == 0x2E {
            let f = j + 1
            j += 1
            while j < b.count, isD(b[j]) { j += 1; fracDigits += 1 }
            text += "." + String(decoding: b[f..<j], as: UTF8.self)
        }
        guard intDigits + fracDigits > 0 else { return nil }
        if intDigits == 0 { text = text.replacingOccurrences(of: ".", with: "0.") }
        if j < b.count, b[j] == 0x45 || b[j] == 0x65 {
            var k = j + 1
            var expText = "e"
            if k < b.count, b[k] == 0x2B || b[k] == 0x2D { if b[k] == 0x2D { expText += "-" }; k += 1 }
            let ds = k
            while k < b.count, isD(b[k]) { k += 1 }
            guard k > ds else { return nil }
            // Exponents beyond any representable range saturate (strtod does the same).
            var digits = b[ds..<k].drop(while: { $0 == 0x30 })
            if digits.count > 9 { digits = Array("999999999".utf8)[...] }
            expText += digits.isEmpty ? "0" : String(decoding: digits, as: UTF8.self)
            text += expText
            j = k
        }
        guard j == b.count else { return nil }
        return Double(text)
    }

    /// Python's `int(s)` (base 10) for a str: nil where it raises ValueError, including CPython 3.11's
    /// limit of 4300 digits for int/str conversion. Returns the value's decimal digits without leading
    /// zeros and its sign (the value itself may be arbitrarily large).
    static func pyInt(_ s: PyStr) -> (negative: Bool, digits: [UInt8])? {
        guard let raw = numberASCII(s[...]) else { return nil }
        var lo = 0, hi = raw.count
        while lo < hi, isASCIISpace(raw[lo]) { lo += 1 }
        while hi > lo, isASCIISpace(raw[hi - 1]) { hi -= 1 }
        var b = Array(raw[lo..<hi])
        var negative = false
        if let f = b.first, f == 0x2B || f == 0x2D { negative = f == 0x2D; b.removeFirst() }
        guard let first = b.first, isD(first) else { return nil }
        var digits: [UInt8] = []
        var prev: UInt8 = 0
        for c in b {
            if c == 0x5F {
                if !isD(prev) { return nil }
            } else if isD(c) {
                digits.append(c)
            } else {
                return nil
            }
            prev = c
        }
        if prev == 0x5F { return nil }
        if digits.count > 4300 { return nil }
        let trimmed = Array(digits.drop(while: { $0 == 0x30 }))
        return (negative && !trimmed.isEmpty, trimmed.isEmpty ? [0x30] : trimmed)
    }
}
