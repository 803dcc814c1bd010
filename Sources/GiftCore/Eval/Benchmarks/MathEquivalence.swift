import Foundation

/// The MATH answer helpers of d1's eval/parser_helper.py (the "Hendrycks MATH" normalisation), rewritten
/// from their rules with the same outcomes on every input, exceptions included.
enum MathEquivalence {
    /// Something d1's helper raises (an IndexError, AssertionError or ValueError) where its caller
    /// catches everything.
    struct Raised: Error {}

    private static let boxedSpace = PyText.str("\\boxed ")
    private static let boxed = PyText.str("\\boxed")
    private static let fbox = PyText.str("\\fbox")
    private static let boxedBrace = PyText.str("\\boxed{")

    /// `last_boxed_only_string`: nil is Python's None.
    /// - With "\boxed " (a space) anywhere: "\boxed " + the text after its last occurrence, up to the first "$".
    /// - Else from the last "\boxed" (or, with none, the last "\fbox"): up to the first "}" that brings the
    ///   count of "{" minus "}" seen since then to zero; nil when none does. With neither, the whole text.
    static func lastBoxedOnly(_ s: PyStr) -> PyStr? {
        if PyText.contains(s, boxedSpace) {
            let after = PyText.split(s, boxedSpace).last!
            let upToDollar = after.firstIndex(of: "$").map { Array(after[..<$0]) } ?? after
            return boxedSpace + upToDollar
        }
        guard let idx = PyText.rfind(s, boxed) ?? PyText.rfind(s, fbox) else { return s }
        var open = 0
        var i = idx
        while i < s.count {
            if s[i] == "{" { open += 1 }
            if s[i] == "}" {
                open -= 1
                if open == 0 { return Array(s[idx...i]) }
            }
            i += 1
        }
        return nil
    }

    /// `remove_boxed`: throws for None (the TypeError of `"\\boxed " in None`). "\boxed " + rest gives the
    /// rest; "\boxed{...}" ending in "}" gives the inside; anything else (an "\fbox{...}", the whole text)
    /// comes back unchanged.
    static func removeBoxed(_ s: PyStr?) throws -> PyStr {
        guard let s else { throw Raised() }
        if PyText.contains(s, boxedSpace) {
            // d1 asserts the prefix; every string last_boxed_only_string returns that holds "\boxed "
            // starts with it, but keep the assertion's outcome.
            guard PyText.hasAt(s, 0, boxedSpace) else { throw Raised() }
            return Array(s[boxedSpace.count...])
        }
        if PyText.hasAt(s, 0, boxedBrace), s.last == "}", s.count >= boxedBrace.count + 1 {
            return Array(s[boxedBrace.count..<(s.count - 1)])
        }
        return s
    }

    // MARK: strip_string

    static func fixFracs(_ string: PyStr) throws -> PyStr {
        let substrs = PyText.split(string, PyText.str("\\frac"))
        var out = substrs[0]
        guard substrs.count > 1 else { return string }
        for sub in substrs.dropFirst() {
            out += PyText.str("\\frac")
            guard let a = sub.first else { throw Raised() }  // substr[0] on ""
            if a == "{" {
                out += sub
                continue
            }
            guard sub.count >= 2 else { return string }  // the assertion's `return string`
            let b = sub[1]
            let post = sub.count > 2 ? Array(sub[2...]) : []
            if b != "{" {
                out += ["{", a, "}", "{", b, "}"] + post
            } else {
                out += ["{", a, "}", b] + post
            }
        }
        return out
    }

    static func removeRightUnits(_ string: PyStr) throws -> PyStr {
        let marker = PyText.str("\\text{ ")
        guard PyText.contains(string, marker) else { return string }
        let splits = PyText.split(string, marker)
        guard splits.count == 2 else { throw Raised() }
        return splits[0]
    }

    static func fixSqrt(_ string: PyStr) throws -> PyStr {
        let sqrt = PyText.str("\\sqrt")
        guard PyText.contains(string, sqrt) else { return string }
        let splits = PyText.split(string, sqrt)
        var out = splits[0]
        for split in splits.dropFirst() {
            guard let a = split.first else { throw Raised() }  // split[0] on ""
            if a != "{" {
                out += sqrt + ["{", a, "}"] + split.dropFirst()
            } else {
                out += sqrt + split
            }
        }
        return out
    }

    /// `fix_a_slash_b`: with exactly one "/", both sides must be Python ints (else ValueError, which d1
    /// lets escape to is_equiv); when the text is exactly "{int(a)}/{int(b)}" it becomes
    /// "\frac{a}{b}", otherwise it is kept.
    static func fixASlashB(_ string: PyStr) throws -> PyStr {
        let parts = PyText.split(string, ["/"])
        guard parts.count == 2 else { return string }
        guard let a = PyText.pyInt(parts[0]), let b = PyText.pyInt(parts[1]) else { throw Raised() }
        func canonical(_ v: (negative: Bool, digits: [UInt8])) -> PyStr {
            (v.negative ? ["-"] : []) + v.digits.map { Unicode.Scalar($0) }
        }
        let ca = canonical(a), cb = canonical(b)
        guard string == ca + ["/"] + cb else { return string }
        return PyText.str("\\frac{") + ca + PyText.str("}{") + cb + ["}"]
    }

    static func stripString(_ input: PyStr) throws -> PyStr {
        var s = input
        s = PyText.replace(s, "\n", "")
        s = PyText.replace(s, "\\!", "")
        s = PyText.replace(s, "\\\\", "\\")
        s = PyText.replace(s, "tfrac", "frac")
        s = PyText.replace(s, "dfrac", "frac")
        s = PyText.replace(s, "\\left", "")
        s = PyText.replace(s, "\\right", "")
        s = PyText.replace(s, "^{\\circ}", "")
        s = PyText.replace(s, "^\\circ", "")
        s = PyText.replace(s, "\\$", "")
        s = try removeRightUnits(s)
        s = PyText.replace(s, "\\%", "")
        s = PyText.replace(s, " .", " 0.")
        s = PyText.replace(s, "{.", "{0.")
        if s.isEmpty { return s }
        if s[0] == "." { s = ["0"] + s }
        let eq = PyText.split(s, ["="])
        if eq.count == 2, eq[0].count <= 2 { s = eq[1] }
        s = try fixSqrt(s)
        s = PyText.replace(s, " ", "")
        s = try fixFracs(s)
        if s == PyText.str("0.5") { s = PyText.str("\\frac{1}{2}") }
        s = try fixASlashB(s)
        return s
    }

    /// `is_equiv` for two strings: the normalised forms are equal; when normalising either one raises,
    /// the raw strings are compared instead.
    static func isEquiv(_ a: PyStr, _ b: PyStr) -> Bool {
        do { return try stripString(a) == stripString(b) } catch { return a == b }
    }
}
