import Foundation

/// Python 3.11's `eval` of the arithmetic d1's Countdown scorer lets through (`^[\d+\-*/().\s]+$`), with
/// the outcome d1 sees: a number, or failure (any exception, which d1 turns into `float("Inf")`).
///
/// What Python does with these characters, and what this evaluator does:
/// - Tokens: ints (`0`, `000`, `[1-9][0-9]*`; a nonzero literal with a leading zero, `05`, is a
///   SyntaxError; more than 4300 digits is one too), floats (`1.`, `.5`, `05.5`), `+ - * / ** //`,
///   parentheses (at most 200 open at once), `...` (Ellipsis) and `.`. Spaces, tabs and form feeds
///   separate tokens; `\n` and `\r` are line breaks, ignored inside parentheses and a syntax error
///   outside them; every other character (non-ASCII digits and spaces, `\v`, `\x1c`-`\x1f`) is a
///   SyntaxError.
/// - Grammar: sum := term (('+'|'-') term)*; term := factor (('*'|'/'|'//') factor)*;
///   factor := ('+'|'-') factor | power; power := primary ['**' factor]; primary := atom ('(' ... ')')*.
/// - A call (`2(3)`), the empty tuple `()` and Ellipsis never give a number: a call raises TypeError,
///   and every operation on a tuple or Ellipsis either raises or gives a tuple (`()*3`), which d1's
///   `abs(result - target)` then raises on. Either way the problem is not solved, so all are failure.
/// - ints are exact (arbitrary size), `/` is true division (int/int correctly rounded, OverflowError when
///   too large), `//` floors, `**` of ints with a negative exponent goes through floats, a negative float
///   to a fractional power gives a complex number (CPython's complex arithmetic is reproduced), floats are
///   IEEE doubles with CPython's ZeroDivisionError/OverflowError rules.
/// - Python 3.11's compiler raises RecursionError for expression trees deeper than about 3000 nodes
///   (the exact depth depends on the caller's stack; `maxTreeDepth` is the depth measured for d1's
///   scorer run as a script), and its parser overflows its stack on deep parentheses with long sign
///   chains (`maxParserCost`).
///
/// Bounds (Python has none, so an input could run it out of time or memory; the verdicts differ only
/// there): an int over `maxIntBits` bits, or more than `maxWork` limb operations in all, is failure.
enum PythonArithmetic {
    static let maxIntBits = 1 << 17
    static let maxWork = 1 << 28
    /// The deepest expression tree (nodes on the longest root-to-leaf path) Python 3.11 compiles
    /// when called from d1's `evaluate_equation` under `python parse_and_get_acc.py`.
    static let maxTreeDepth = 2988
    static let maxParenLevel = 200
    /// CPython 3.11's parser stack (MAXSTACK 6000) as measured on these expressions: a leaf nested in P
    /// parentheses, U unary signs and W powers (as base or exponent) needs 28·P + U + 2·W <= 5975,
    /// else MemoryError ("Parser stack overflowed").
    static let maxParserCost = 5975

    struct Fail: Error {}

    enum Value {
        case int(BigInt)
        case float(Double)
        case complex(Double, Double)
    }

    /// Evaluates `text` (already stripped, as d1's `eval(equation_str.strip(), ...)`); nil is failure.
    static func evaluate(_ text: [Unicode.Scalar]) -> Value? {
        var p = Parser(tokens: [], work: 0)
        guard let toks = tokenize(text) else { return nil }
        p.tokens = toks
        do {
            let (v, _, cost) = try p.parseSum()
            guard p.peek == .end, cost <= maxParserCost else { return nil }
            return v
        } catch { return nil }
    }

    // MARK: tokens

    enum Token: Equatable {
        case int([UInt8]), float(String)
        case plus, minus, star, slash, doubleStar, doubleSlash, lparen, rparen, dot, ellipsis, end
    }

    static func tokenize(_ s: [Unicode.Scalar]) -> [Token]? {
        var out: [Token] = []
        var i = 0
        var level = 0
        let n = s.count
        func ascii(_ k: Int) -> UInt8? { k < n && s[k].value < 128 ? UInt8(s[k].value) : nil }
        func isD(_ k: Int) -> Bool { if let c = ascii(k) { return c >= 0x30 && c <= 0x39 }; return false }
        while i < n {
            guard let c = ascii(i) else { return nil }
            switch c {
            case 0x20, 0x09, 0x0C: i += 1
            case 0x0A, 0x0D:
                if level == 0 { return nil }
                i += 1
            case 0x28:
                if level >= maxParenLevel { return nil }
                level += 1; out.append(.lparen); i += 1
            case 0x29:
                if level == 0 { return nil }
                level -= 1; out.append(.rparen); i += 1
            case 0x2B: out.append(.plus); i += 1
            case 0x2D: out.append(.minus); i += 1
            case 0x2A:
                if ascii(i + 1) == 0x2A { out.append(.doubleStar); i += 2 } else { out.append(.star); i += 1 }
            case 0x2F:
                if ascii(i + 1) == 0x2F { out.append(.doubleSlash); i += 2 } else { out.append(.slash); i += 1 }
            case 0x2E:
                if isD(i + 1) {
                    var j = i + 1
                    while isD(j) { j += 1 }
                    out.append(.float("0." + String(decoding: s[(i + 1)..<j].map { UInt8($0.value) }, as: UTF8.self)))
                    i = j
                } else if ascii(i + 1) == 0x2E && ascii(i + 2) == 0x2E {
                    out.append(.ellipsis); i += 3
                } else {
                    out.append(.dot); i += 1
                }
            case 0x30...0x39:
                var j = i
                while isD(j) { j += 1 }
                let intDigits = s[i..<j].map { UInt8($0.value) }
                if ascii(j) == 0x2E {
                    var k = j + 1
                    while isD(k) { k += 1 }
                    let frac = s[(j + 1)..<k].map { UInt8($0.value) }
                    out.append(.float(String(decoding: intDigits, as: UTF8.self) + "." + (frac.isEmpty ? "0" : String(decoding: frac, as: UTF8.self))))
                    i = k
                } else {
                    if intDigits.count > 1, intDigits[0] == 0x30, intDigits.contains(where: { $0 != 0x30 }) { return nil }
                    if intDigits.count > 4300 { return nil }
                    out.append(.int(intDigits))
                    i = j
                }
            default: return nil
            }
        }
        if level != 0 { return nil }
        out.append(.end)
        return out
    }

    // MARK: parser-evaluator

    struct Parser {
        var tokens: [Token]
        var pos = 0
        var work: Int

        var nest = 0

        var peek: Token { tokens[pos] }

        /// (value, depth of its tree, parser-stack cost of its deepest leaf)
        mutating func parseSum() throws -> (Value, Int, Int) {
            try leftAssociative([.plus, .minus]) { try $0.parseTerm() }
        }

        mutating func parseTerm() throws -> (Value, Int, Int) {
            try leftAssociative([.star, .slash, .doubleSlash]) { try $0.parseFactor() }
        }

        /// One precedence level of binary operators (sums, terms): `operand`s joined left to right by `ops`.
        mutating func leftAssociative(_ ops: [Token], _ operand: (inout Parser) throws -> (Value, Int, Int)) throws -> (Value, Int, Int) {
            var (v, d, c) = try operand(&self)
            while ops.contains(peek) {
                let op = peek; pos += 1
                let (r, rd, rc) = try operand(&self)
                d = max(d, rd) + 1
                c = max(c, rc)
                try checkDepth(d)
                v = try binary(op, v, r)
            }
            return (v, d, c)
        }

        /// Unary chains are read iteratively (no recursion per sign).
        mutating func parseFactor() throws -> (Value, Int, Int) {
            // Every level of this recursion is a level of the tree (a power's exponent) or a parenthesis.
            nest += 1
            defer { nest -= 1 }
            if nest > PythonArithmetic.maxTreeDepth + PythonArithmetic.maxParenLevel + 1 { throw Fail() }
            var signs: [Token] = []
            while peek == .plus || peek == .minus { signs.append(peek); pos += 1 }
            var (v, d, c) = try parsePower()
            for s in signs.reversed() {
                d += 1
                if s == .minus { v = negate(v) }
            }
            try checkDepth(d)
            return (v, d, c + signs.count)
        }

        mutating func parsePower() throws -> (Value, Int, Int) {
            var (base, d, c) = try parseAtom()
            if peek == .lparen { throw Fail() }  // a call: TypeError (or SyntaxError in its arguments)
            if peek == .doubleStar {
                pos += 1
                let (e, ed, ec) = try parseFactor()
                d = max(d, ed) + 1
                c = max(c, ec) + 2
                base = try power(base, e, work: &work)
            }
            try checkDepth(d)
            return (base, d, c)
        }

        mutating func parseAtom() throws -> (Value, Int, Int) {
            switch peek {
            case .int(let digits):
                pos += 1
                return (.int(BigInt(decimal: digits)), 1, 0)
            case .float(let text):
                pos += 1
                return (.float(Double(text) ?? .infinity), 1, 0)
            case .lparen:
                pos += 1
                if peek == .rparen { throw Fail() }  // () is an empty tuple
                let (v, d, c) = try parseSum()
                guard peek == .rparen else { throw Fail() }
                pos += 1
                return (v, d, c + 28)
            default:
                throw Fail()  // Ellipsis, '.', an operator, or the end
            }
        }

        func checkDepth(_ d: Int) throws { if d > PythonArithmetic.maxTreeDepth { throw Fail() } }

        mutating func binary(_ op: Token, _ a: Value, _ b: Value) throws -> Value {
            switch op {
            case .plus: return try add(a, b, work: &work)
            case .minus: return try subtract(a, b, work: &work)
            case .star: return try multiply(a, b, work: &work)
            case .slash: return try trueDivide(a, b, work: &work)
            case .doubleSlash: return try floorDivide(a, b, work: &work)
            default: throw Fail()
            }
        }
    }

    // MARK: operations

    static func negate(_ v: Value) -> Value {
        switch v {
        case .int(let i): return .int(i.negated)
        case .float(let f): return .float(-f)
        case .complex(let r, let i): return .complex(-r, -i)
        }
    }

    static func toDouble(_ v: Value) throws -> Double {
        switch v {
        case .int(let i): guard let d = i.toDouble() else { throw Fail() }; return d
        case .float(let f): return f
        case .complex: throw Fail()
        }
    }

    static func toComplex(_ v: Value) throws -> (Double, Double) {
        if case .complex(let r, let i) = v { return (r, i) }
        return (try toDouble(v), 0.0)
    }

    static func isComplex(_ a: Value, _ b: Value) -> Bool {
        if case .complex = a { return true }
        if case .complex = b { return true }
        return false
    }

    static func charge(_ w: inout Int, _ a: BigInt, _ b: BigInt, multiplicative: Bool) throws {
        let la = a.mag.limbs.count + 1, lb = b.mag.limbs.count + 1
        w += multiplicative ? la * lb : la + lb
        if w > maxWork { throw Fail() }
    }

    static func checkSize(_ x: BigInt) throws -> BigInt {
        if x.mag.bitWidth > maxIntBits { throw Fail() }
        return x
    }

    static func subtract(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if isComplex(a, b) {
            let (ar, ai) = try toComplex(a), (br, bi) = try toComplex(b)
            return .complex(ar - br, ai - bi)
        }
        if case .int(let x) = a, case .int(let y) = b {
            try charge(&work, x, y, multiplicative: false)
            return .int(try checkSize(BigInt.sum(x, y.negated)))
        }
        return .float(try toDouble(a) - toDouble(b))
    }

    static func add(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if case .int(let x) = a, case .int(let y) = b {
            try charge(&work, x, y, multiplicative: false)
            return .int(try checkSize(BigInt.sum(x, y)))
        }
        if isComplex(a, b) {
            let (ar, ai) = try toComplex(a), (br, bi) = try toComplex(b)
            return .complex(ar + br, ai + bi)
        }
        return .float(try toDouble(a) + toDouble(b))
    }

    static func cprod(_ a: (Double, Double), _ b: (Double, Double)) -> (Double, Double) {
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }

    /// CPython's `_Py_c_quot` (Smith's algorithm); nil where it sets EDOM (division by zero).
    static func cquot(_ a: (Double, Double), _ b: (Double, Double)) -> (Double, Double)? {
        let absR = b.0 < 0 ? -b.0 : b.0
        let absI = b.1 < 0 ? -b.1 : b.1
        if absR >= absI {
            if absR == 0.0 { return nil }
            let ratio = b.1 / b.0
            let denom = b.0 + b.1 * ratio
            return ((a.0 + a.1 * ratio) / denom, (a.1 - a.0 * ratio) / denom)
        } else if absI >= absR {
            let ratio = b.0 / b.1
            let denom = b.0 * ratio + b.1
            return ((a.0 * ratio + a.1) / denom, (a.1 * ratio - a.0) / denom)
        }
        return (.nan, .nan)
    }

    static func multiply(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if case .int(let x) = a, case .int(let y) = b {
            if x.mag.bitWidth + y.mag.bitWidth > maxIntBits + 1 { throw Fail() }
            try charge(&work, x, y, multiplicative: true)
            return .int(try checkSize(BigInt.product(x, y)))
        }
        if isComplex(a, b) {
            let p = cprod(try toComplex(a), try toComplex(b))
            return .complex(p.0, p.1)
        }
        return .float(try toDouble(a) * toDouble(b))
    }

    static func trueDivide(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if case .int(let x) = a, case .int(let y) = b {
            if y.isZero { throw Fail() }
            try charge(&work, x, y, multiplicative: true)
            guard let q = BigInt.trueDivide(x, y) else { throw Fail() }
            return .float(q)
        }
        if isComplex(a, b) {
            guard let q = cquot(try toComplex(a), try toComplex(b)) else { throw Fail() }
            return .complex(q.0, q.1)
        }
        let x = try toDouble(a), y = try toDouble(b)
        if y == 0 { throw Fail() }
        return .float(x / y)
    }

    /// CPython's float floor division (`_float_div_mod`).
    static func floatFloorDiv(_ vx: Double, _ wx: Double) -> Double {
        var mod = fmod(vx, wx)
        var div = (vx - mod) / wx
        if mod != 0 || mod.isNaN {
            if (wx < 0) != (mod < 0) {
                mod += wx
                div -= 1.0
            }
        }
        if div != 0 || div.isNaN {
            var fd = floor(div)
            if div - fd > 0.5 { fd += 1.0 }
            return fd
        }
        return copysign(0.0, vx / wx)
    }

    static func floorDivide(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if isComplex(a, b) { throw Fail() }  // TypeError
        if case .int(let x) = a, case .int(let y) = b {
            if y.isZero { throw Fail() }
            try charge(&work, x, y, multiplicative: true)
            return .int(BigInt.floorDivide(x, y))
        }
        let x = try toDouble(a), y = try toDouble(b)
        if y == 0 { throw Fail() }
        return .float(floatFloorDiv(x, y))
    }

    static func isOddInteger(_ x: Double) -> Bool { fmod(abs(x), 2.0) == 1.0 }

    /// CPython's `float_pow`.
    static func floatPow(_ v: Value, _ w: Value) throws -> Value {
        var iv = try toDouble(v)
        let iw = try toDouble(w)
        if iw == 0 { return .float(1.0) }
        if iv.isNaN { return .float(iv) }
        if iw.isNaN { return .float(iv == 1.0 ? 1.0 : iw) }
        if iw.isInfinite {
            iv = abs(iv)
            if iv == 1.0 { return .float(1.0) }
            if (iw > 0.0) == (iv > 1.0) { return .float(abs(iw)) }
            return .float(0.0)
        }
        if iv.isInfinite {
            let odd = isOddInteger(iw)
            if iw > 0.0 { return .float(odd ? iv : abs(iv)) }
            return .float(odd ? copysign(0.0, iv) : 0.0)
        }
        if iv == 0.0 {
            let odd = isOddInteger(iw)
            if iw < 0.0 { throw Fail() }  // ZeroDivisionError
            return .float(odd ? iv : 0.0)
        }
        var negateResult = false
        if iv < 0.0 {
            if iw != floor(iw) { return try complexPow(v, w) }
            iv = -iv
            negateResult = isOddInteger(iw)
        }
        if iv == 1.0 { return .float(negateResult ? -1.0 : 1.0) }
        var ix = Foundation.pow(iv, iw)
        if ix.isInfinite { throw Fail() }  // OverflowError (ERANGE)
        if negateResult { ix = -ix }
        return .float(ix)
    }

    /// CPython 3.11's `complex_pow`: exponents with a small integer value by repeated multiplication
    /// (`c_powi`), others by polar form (`_Py_c_pow`); EDOM is ZeroDivisionError, an infinite part
    /// OverflowError.
    static func complexPow(_ v: Value, _ w: Value) throws -> Value {
        let a = try toComplex(v), b = try toComplex(w)
        var edom = false
        var p: (Double, Double)
        if b.1 == 0.0 && b.0 == floor(b.0) && abs(b.0) <= 100.0 {
            let n = Int(b.0)
            func powu(_ x: (Double, Double), _ n: Int) -> (Double, Double) {
                var r = (1.0, 0.0), pp = x, mask = 1
                while mask > 0 && n >= mask {
                    if n & mask != 0 { r = cprod(r, pp) }
                    mask <<= 1
                    pp = cprod(pp, pp)
                }
                return r
            }
            if n > 0 { p = powu(a, n) } else if let q = cquot((1.0, 0.0), powu(a, -n)) { p = q } else { edom = true; p = (0, 0) }
        } else if b.0 == 0.0 && b.1 == 0.0 {
            p = (1.0, 0.0)
        } else if a.0 == 0.0 && a.1 == 0.0 {
            if b.1 != 0.0 || b.0 < 0.0 { edom = true }
            p = (0.0, 0.0)
        } else {
            let vabs = hypot(a.0, a.1)
            var len = Foundation.pow(vabs, b.0)
            let at = atan2(a.1, a.0)
            var phase = at * b.0
            if b.1 != 0.0 {
                len /= exp(at * b.1)
                phase += b.1 * log(vabs)
            }
            if phase.isInfinite { edom = true }  // glibc's cos/sin of ±inf set EDOM
            p = (len * cos(phase), len * sin(phase))
        }
        if edom { throw Fail() }
        if p.0.isInfinite || p.1.isInfinite { throw Fail() }
        return .complex(p.0, p.1)
    }

    static func power(_ a: Value, _ b: Value, work: inout Int) throws -> Value {
        if isComplex(a, b) { return try complexPow(a, b) }
        if case .int(let x) = a, case .int(let y) = b {
            if y.negative { return try floatPow(a, b) }
            // Exact power; |x| <= 1 and a zero exponent need no work.
            if y.isZero { return .int(BigInt(1)) }
            if x.isZero { return .int(BigInt(0)) }
            if x.mag.limbs == [1] {
                let odd = y.mag.limbs[0] & 1 == 1
                return .int(x.negative && odd ? BigInt(-1) : BigInt(1))
            }
            // |x| >= 2: the result has more than y bits.
            guard y.mag.bitWidth <= 32, let e = y.mag.limbs.first, Int(e) <= maxIntBits,
                  (x.mag.bitWidth - 1) * Int(e) <= maxIntBits else { throw Fail() }
            var result = BigInt(1), base = x, k = Int(e)
            while k > 0 {
                if k & 1 == 1 {
                    try charge(&work, result, base, multiplicative: true)
                    result = BigInt.product(result, base)
                }
                k >>= 1
                if k > 0 {
                    try charge(&work, base, base, multiplicative: true)
                    base = BigInt.product(base, base)
                }
            }
            return .int(try checkSize(result))
        }
        return try floatPow(a, b)
    }

    /// d1's verdict on a successful evaluation: `abs(result - target) < 1e-5` (for an int result, exact
    /// equality; a complex result's modulus, where an infinite modulus raises in d1 and is not solved).
    static func isClose(_ v: Value, to target: Int) -> Bool {
        switch v {
        case .int(let i): return i == BigInt(target)
        case .float(let f): return abs(f - Double(target)) < 1e-5
        case .complex(let r, let i):
            let m = hypot(r - Double(target), i - 0.0)
            return m.isFinite && m < 1e-5
        }
    }
}

// MARK: - arbitrary-precision integers

/// A natural number as little-endian 32-bit limbs without trailing zero limbs (zero has none).
struct BigNat: Equatable {
    var limbs: [UInt32]

    init(_ limbs: [UInt32]) { self.limbs = limbs; normalize() }
    init(_ v: UInt64) {
        limbs = v == 0 ? [] : (v >> 32 == 0 ? [UInt32(v)] : [UInt32(truncatingIfNeeded: v), UInt32(v >> 32)])
    }

    mutating func normalize() { while let l = limbs.last, l == 0 { limbs.removeLast() } }

    var isZero: Bool { limbs.isEmpty }
    var bitWidth: Int { limbs.isEmpty ? 0 : limbs.count * 32 - limbs.last!.leadingZeroBitCount }
    func bit(_ k: Int) -> Bool {
        let w = k >> 5
        return k >= 0 && w < limbs.count && (limbs[w] >> UInt32(k & 31)) & 1 == 1
    }
    /// Whether any bit below `k` is set.
    func anyBitBelow(_ k: Int) -> Bool {
        if k <= 0 { return false }
        let w = k >> 5
        for i in 0..<min(w, limbs.count) where limbs[i] != 0 { return true }
        if w < limbs.count, k & 31 != 0, limbs[w] & ((1 << UInt32(k & 31)) - 1) != 0 { return true }
        return false
    }

    static func compare(_ a: BigNat, _ b: BigNat) -> Int {
        if a.limbs.count != b.limbs.count { return a.limbs.count < b.limbs.count ? -1 : 1 }
        var i = a.limbs.count - 1
        while i >= 0 {
            if a.limbs[i] != b.limbs[i] { return a.limbs[i] < b.limbs[i] ? -1 : 1 }
            i -= 1
        }
        return 0
    }

    static func sum(_ a: BigNat, _ b: BigNat) -> BigNat {
        let (l, s) = a.limbs.count >= b.limbs.count ? (a.limbs, b.limbs) : (b.limbs, a.limbs)
        var out = [UInt32](repeating: 0, count: l.count + 1)
        var carry: UInt64 = 0
        for i in 0..<l.count {
            let t = UInt64(l[i]) + (i < s.count ? UInt64(s[i]) : 0) + carry
            out[i] = UInt32(truncatingIfNeeded: t)
            carry = t >> 32
        }
        out[l.count] = UInt32(carry)
        return BigNat(out)
    }

    /// a - b for a >= b.
    static func difference(_ a: BigNat, _ b: BigNat) -> BigNat {
        var out = a.limbs
        var borrow: Int64 = 0
        for i in 0..<out.count {
            let t = Int64(out[i]) - (i < b.limbs.count ? Int64(b.limbs[i]) : 0) + borrow
            out[i] = UInt32(truncatingIfNeeded: t)
            borrow = t >> 32
        }
        return BigNat(out)
    }

    static func product(_ a: BigNat, _ b: BigNat) -> BigNat {
        if a.isZero || b.isZero { return BigNat([]) }
        var out = [UInt32](repeating: 0, count: a.limbs.count + b.limbs.count)
        for i in 0..<a.limbs.count {
            let x = UInt64(a.limbs[i])
            if x == 0 { continue }
            var carry: UInt64 = 0
            for j in 0..<b.limbs.count {
                let t = x * UInt64(b.limbs[j]) + UInt64(out[i + j]) + carry
                out[i + j] = UInt32(truncatingIfNeeded: t)
                carry = t >> 32
            }
            var k = i + b.limbs.count
            while carry != 0 {
                let t = UInt64(out[k]) + carry
                out[k] = UInt32(truncatingIfNeeded: t)
                carry = t >> 32
                k += 1
            }
        }
        return BigNat(out)
    }

    func shiftedLeft(_ bits: Int) -> BigNat {
        if isZero || bits == 0 { return self }
        let w = bits >> 5, s = UInt32(bits & 31)
        var out = [UInt32](repeating: 0, count: limbs.count + w + 1)
        for i in 0..<limbs.count {
            let v = UInt64(limbs[i]) << UInt64(s)
            out[i + w] |= UInt32(truncatingIfNeeded: v)
            out[i + w + 1] |= UInt32(truncatingIfNeeded: v >> 32)
        }
        return BigNat(out)
    }

    func shiftedRight(_ bits: Int) -> BigNat {
        let w = bits >> 5, s = UInt32(bits & 31)
        if w >= limbs.count { return BigNat([]) }
        var out = [UInt32](repeating: 0, count: limbs.count - w)
        for i in 0..<out.count {
            var v = UInt64(limbs[i + w]) >> UInt64(s)
            if s != 0, i + w + 1 < limbs.count { v |= UInt64(limbs[i + w + 1]) << UInt64(32 - s) }
            out[i] = UInt32(truncatingIfNeeded: v)
        }
        return BigNat(out)
    }

    /// (a / b, a % b) for b != 0 (Knuth's algorithm D).
    static func divMod(_ a: BigNat, _ b: BigNat) -> (BigNat, BigNat) {
        precondition(!b.isZero)
        if compare(a, b) < 0 { return (BigNat([]), a) }
        if b.limbs.count == 1 {
            let d = UInt64(b.limbs[0])
            var q = [UInt32](repeating: 0, count: a.limbs.count)
            var r: UInt64 = 0
            var i = a.limbs.count - 1
            while i >= 0 {
                let cur = (r << 32) | UInt64(a.limbs[i])
                q[i] = UInt32(cur / d)
                r = cur % d
                i -= 1
            }
            return (BigNat(q), BigNat(r))
        }
        let s = b.limbs.last!.leadingZeroBitCount
        let v = b.shiftedLeft(s).limbs
        var u = a.shiftedLeft(s).limbs
        while u.count < a.limbs.count + 1 { u.append(0) }
        let n = v.count, m = u.count - n
        var q = [UInt32](repeating: 0, count: m)
        let vTop = UInt64(v[n - 1]), vNext = UInt64(v[n - 2])
        var j = m - 1
        while j >= 0 {
            let num = (UInt64(u[j + n]) << 32) | UInt64(u[j + n - 1])
            var qhat = num / vTop
            var rhat = num % vTop
            while qhat >= (1 << 32) || qhat * vNext > ((rhat << 32) | UInt64(u[j + n - 2])) {
                qhat -= 1
                rhat += vTop
                if rhat >= (1 << 32) { break }
            }
            var borrow: Int64 = 0
            var carry: UInt64 = 0
            for i in 0..<n {
                let p = qhat * UInt64(v[i]) + carry
                carry = p >> 32
                let t = Int64(u[i + j]) - Int64(p & 0xFFFF_FFFF) + borrow
                u[i + j] = UInt32(truncatingIfNeeded: t)
                borrow = t >> 32
            }
            let t = Int64(u[j + n]) - Int64(carry) + borrow
            u[j + n] = UInt32(truncatingIfNeeded: t)
            if t < 0 {
                qhat -= 1
                var c: UInt64 = 0
                for i in 0..<n {
                    let s2 = UInt64(u[i + j]) + UInt64(v[i]) + c
                    u[i + j] = UInt32(truncatingIfNeeded: s2)
                    c = s2 >> 32
                }
                u[j + n] = UInt32(truncatingIfNeeded: UInt64(u[j + n]) + c)
            }
            q[j] = UInt32(truncatingIfNeeded: qhat)
            j -= 1
        }
        return (BigNat(q), BigNat(Array(u[0..<n])).shiftedRight(s))
    }

    /// The double nearest to (self + δ)·2^e, δ in (0, 1) when `sticky` (a nonzero remainder below the
    /// last bit), ties to even; nil when it rounds to 2^1024 or beyond (Python's OverflowError). Exact
    /// when `sticky` is false; with `sticky`, self must carry at least 55 significant bits.
    func roundedToDouble(exponent e: Int, sticky: Bool) -> Double? {
        let nb = bitWidth
        if nb == 0 { return 0.0 }
        let top = e + nb - 1
        let lsb = max(top - 52, -1074)
        let drop = lsb - e
        var kept: UInt64
        if drop <= 0 {
            kept = 0
            for (i, l) in limbs.enumerated() { kept |= UInt64(l) << UInt64(32 * i) }  // nb <= 53 here
            let d = scalbn(Double(kept), e)
            return top >= 1024 ? nil : d
        }
        let shifted = shiftedRight(drop)
        kept = 0
        for (i, l) in shifted.limbs.enumerated() where i < 2 { kept |= UInt64(l) << UInt64(32 * i) }
        let half = bit(drop - 1)
        let lower = anyBitBelow(drop - 1) || sticky
        if half && (lower || kept & 1 == 1) { kept += 1 }
        if kept == 0 { return 0.0 }
        let resultTop = lsb + (64 - kept.leadingZeroBitCount) - 1
        if resultTop >= 1024 { return nil }
        return scalbn(Double(kept), lsb)
    }
}

/// A signed arbitrary-precision integer (Python's int) over `BigNat`.
struct BigInt: Equatable {
    var negative: Bool
    var mag: BigNat

    init(negative: Bool, mag: BigNat) { self.negative = negative && !mag.isZero; self.mag = mag }
    init(_ v: Int) { self.init(negative: v < 0, mag: BigNat(v.magnitude.toUInt64)) }
    /// From ASCII decimal digits.
    init(decimal digits: [UInt8]) {
        var m = BigNat([])
        var i = 0
        let billion = BigNat(1_000_000_000)
        while i < digits.count {
            let end = min(i + 9, digits.count)
            var chunk: UInt64 = 0, scale: UInt64 = 1
            for k in i..<end { chunk = chunk * 10 + UInt64(digits[k] - 0x30); scale *= 10 }
            m = BigNat.sum(BigNat.product(m, scale == 1_000_000_000 ? billion : BigNat(scale)), BigNat(chunk))
            i = end
        }
        self.init(negative: false, mag: m)
    }

    var isZero: Bool { mag.isZero }
    var negated: BigInt { BigInt(negative: !negative, mag: mag) }

    static func sum(_ a: BigInt, _ b: BigInt) -> BigInt {
        if a.negative == b.negative { return BigInt(negative: a.negative, mag: BigNat.sum(a.mag, b.mag)) }
        let c = BigNat.compare(a.mag, b.mag)
        if c == 0 { return BigInt(0) }
        return c > 0 ? BigInt(negative: a.negative, mag: BigNat.difference(a.mag, b.mag))
                     : BigInt(negative: b.negative, mag: BigNat.difference(b.mag, a.mag))
    }

    static func product(_ a: BigInt, _ b: BigInt) -> BigInt { BigInt(negative: a.negative != b.negative, mag: BigNat.product(a.mag, b.mag)) }

    /// Python's a // b (floor), b != 0.
    static func floorDivide(_ a: BigInt, _ b: BigInt) -> BigInt {
        let (q, r) = BigNat.divMod(a.mag, b.mag)
        if a.negative == b.negative { return BigInt(negative: false, mag: q) }
        return BigInt(negative: true, mag: r.isZero ? q : BigNat.sum(q, BigNat(1)))
    }

    /// Python's `float(int)`: correctly rounded; nil is OverflowError.
    func toDouble() -> Double? {
        guard let d = mag.roundedToDouble(exponent: 0, sticky: false) else { return nil }
        return negative ? -d : d
    }

    /// Python's int / int: the correctly rounded quotient; nil is OverflowError. b != 0.
    static func trueDivide(_ a: BigInt, _ b: BigInt) -> Double? {
        let neg = a.negative != b.negative
        if a.isZero { return neg ? -0.0 : 0.0 }
        let shift = 55 - (a.mag.bitWidth - b.mag.bitWidth)
        let num = shift > 0 ? a.mag.shiftedLeft(shift) : a.mag
        let den = shift < 0 ? b.mag.shiftedLeft(-shift) : b.mag
        let (q, r) = BigNat.divMod(num, den)
        guard let d = q.roundedToDouble(exponent: -shift, sticky: !r.isZero) else { return nil }
        return neg ? -d : d
    }
}

private extension UInt {
    var toUInt64: UInt64 { UInt64(self) }
}
