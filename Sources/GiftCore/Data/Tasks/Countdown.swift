import Foundation

/// Countdown with three numbers: reach the target with an arithmetic expression that uses each number
/// exactly once, with + - * and exact / and parentheses.
///
/// Prompt: the numbers, "to", the target, a colon: `"7 15 3 to 36:"` (three numbers from 1...20 in a
/// shuffled order, a target in 1...100; at most 16 characters). Answer: the expression the generator
/// drew, printed with the parentheses it needs: `"15+7*3"` (at most 10 characters). Any expression
/// `verify` accepts is a right answer.
public enum Countdown {
    public static let numberRange = 1...20
    public static let targetRange = 1...100
    /// "20 20 20 to 100:"
    public static let maxPromptLength = 16
    /// Three two-digit numbers, two operators, one pair of parentheses: "(20-19)*18" is 10.
    public static let maxAnswerLength = 10

    /// The prompt of a problem: `"3 7 15 to 46:"`.
    public static func prompt(numbers: [Int], target: Int) -> String {
        numbers.map(String.init).joined(separator: " ") + " to \(target):"
    }

    /// The numbers and target of a prompt (`"<n> <n> ... to <target>:"`, surrounding whitespace
    /// ignored), or nil when it is not one.
    public static func parsePrompt(_ prompt: String) -> (numbers: [Int], target: Int)? {
        var s = Substring(prompt.trimmingCharacters(in: .whitespacesAndNewlines))
        guard s.hasSuffix(":") else { return nil }
        s = s.dropLast()
        let parts = s.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[parts.count - 2] == "to" else { return nil }
        var nums: [Int] = []
        for p in parts[..<(parts.count - 2)] {
            guard let v = plainInt(p) else { return nil }
            nums.append(v)
        }
        guard let t = plainInt(parts[parts.count - 1]) else { return nil }
        return (nums, t)
    }

    static func plainInt(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(s)
    }

    /// Whether `output` (surrounding whitespace ignored) is an expression of integers, + - * /, and
    /// parentheses (spaces allowed between tokens; no unary minus, no leading zeros) in which every
    /// division is exact, that uses exactly the prompt's numbers (as a multiset, each once) and equals
    /// its target. Anything unparsable, or a prompt that is not a Countdown prompt, is false.
    public static func verify(prompt: String, output: String) -> Bool {
        guard let (numbers, target) = parsePrompt(prompt),
              let (value, used) = evaluate(output) else { return false }
        return value == target && used.sorted() == numbers.sorted()
    }

    /// The value of an expression and the numbers it uses (in order), or nil when it does not parse,
    /// a division is not exact (or by zero), or a value overflows.
    public static func evaluate(_ expression: String) -> (value: Int, numbers: [Int])? {
        var p = ExprParser(Array(expression.trimmingCharacters(in: .whitespacesAndNewlines).utf8))
        guard let v = p.expr(depth: 0) else { return nil }
        p.skipSpace()
        guard p.i == p.b.count else { return nil }
        return (v, p.numbers)
    }

    struct ExprParser {
        let b: [UInt8]
        var i = 0
        var numbers: [Int] = []
        init(_ b: [UInt8]) { self.b = b }

        mutating func skipSpace() { while i < b.count && b[i] == 0x20 { i += 1 } }
        mutating func peek() -> UInt8? { skipSpace(); return i < b.count ? b[i] : nil }

        mutating func expr(depth: Int) -> Int? {
            guard depth < 64, var v = term(depth: depth) else { return nil }
            while let c = peek(), c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                i += 1
                guard let r = term(depth: depth) else { return nil }
                let (x, o) = c == UInt8(ascii: "+") ? v.addingReportingOverflow(r) : v.subtractingReportingOverflow(r)
                if o { return nil }
                v = x
            }
            return v
        }

        mutating func term(depth: Int) -> Int? {
            guard var v = factor(depth: depth) else { return nil }
            while let c = peek(), c == UInt8(ascii: "*") || c == UInt8(ascii: "/") {
                i += 1
                guard let r = factor(depth: depth) else { return nil }
                if c == UInt8(ascii: "*") {
                    let (x, o) = v.multipliedReportingOverflow(by: r)
                    if o { return nil }
                    v = x
                } else {
                    guard r != 0, v % r == 0 else { return nil }
                    v /= r
                }
            }
            return v
        }

        mutating func factor(depth: Int) -> Int? {
            guard let c = peek() else { return nil }
            if c == UInt8(ascii: "(") {
                i += 1
                guard let v = expr(depth: depth + 1), peek() == UInt8(ascii: ")") else { return nil }
                i += 1
                return v
            }
            let s = i
            while i < b.count && b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") { i += 1 }
            let n = i - s
            guard n >= 1, n <= 9, n == 1 || b[s] != UInt8(ascii: "0") else { return nil }
            let v = b[s..<i].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            numbers.append(v)
            return v
        }
    }

    // MARK: generation

    indirect enum Expr {
        case num(Int)
        case op(UInt8, Expr, Expr)

        static let ops: [UInt8] = Array("+-*/".utf8)
        static func prec(_ o: UInt8) -> Int { o == UInt8(ascii: "+") || o == UInt8(ascii: "-") ? 1 : 2 }

        /// Exact integer value, or nil when a division is not exact.
        var value: Int? {
            switch self {
            case .num(let v): return v
            case .op(let o, let l, let r):
                guard let a = l.value, let b = r.value else { return nil }
                switch o {
                case UInt8(ascii: "+"): return a + b
                case UInt8(ascii: "-"): return a - b
                case UInt8(ascii: "*"): return a * b
                default: return b != 0 && a % b == 0 ? a / b : nil
                }
            }
        }

        /// Printed with the parentheses precedence and left associativity require (a right operand of
        /// equal precedence keeps them unless both operators are + or both are *).
        var text: String {
            switch self {
            case .num(let v): return String(v)
            case .op(let o, let l, let r):
                var ls = l.text, rs = r.text
                if case .op(let lo, _, _) = l, Expr.prec(lo) < Expr.prec(o) { ls = "(\(ls))" }
                if case .op(let ro, _, _) = r {
                    let assoc = ro == o && (o == UInt8(ascii: "+") || o == UInt8(ascii: "*"))
                    if Expr.prec(ro) < Expr.prec(o) || (Expr.prec(ro) == Expr.prec(o) && !assoc) { rs = "(\(rs))" }
                }
                return ls + String(Character(Unicode.Scalar(o))) + rs
            }
        }
    }

    /// `n` distinct problems of `split` with one answer each, deterministic in (seed, split); each prefix
    /// of the result is the result for a smaller n. A problem (its sorted numbers and target) belongs
    /// to train or test by a fixed hash, so train and test sets never share one, whatever the seeds.
    /// Each attempt k draws three numbers, a shape ((a o b) o c or a o (b o c)) and two operators from
    /// CounterRNG(seed, "COUNTDOWN", k), and is kept when every division is exact, the value is in
    /// targetRange, the problem is in `split` and not yet taken. Each split holds about 8 100 problems
    /// (of about 16 200 in all); asking for more returns them all, after at most 5 million attempts
    /// (a few seconds); up to n = 5000 takes under 0.1 s.
    public static func generate(n: Int, seed: UInt64, split: TaskSplit) -> [(prompt: String, answer: String)] {
        var out: [(prompt: String, answer: String)] = []
        var seen = Set<String>()
        let span = numberRange.count
        var k: UInt64 = 0
        let maxAttempts = UInt64(min(5_000_000, 100_000 + 400 * max(n, 0)))
        while out.count < n && k < maxAttempts {
            let r = CounterRNG(seed, 0x434F_554E_5444_4F57, k)  // "COUNTDOW"
            k += 1
            let nums = (0..<3).map { numberRange.lowerBound + uniformIndex(r.bits(UInt64($0)), span) }
            let o1 = Expr.ops[Int(r.bits(3) & 3)], o2 = Expr.ops[Int(r.bits(4) & 3)]
            let e: Expr = r.bits(5) & 1 == 0
                ? .op(o2, .op(o1, .num(nums[0]), .num(nums[1])), .num(nums[2]))
                : .op(o1, .num(nums[0]), .op(o2, .num(nums[1]), .num(nums[2])))
            guard let v = e.value, targetRange.contains(v) else { continue }
            let key = nums.sorted().map(String.init).joined(separator: " ") + " to \(v)"
            guard TaskSplit.of(key: "countdown " + key) == split, seen.insert(key).inserted else { continue }
            // The prompt shows the numbers in another order than the answer's (one of the 6 permutations).
            let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
            let shown = perms[uniformIndex(r.bits(6), 6)].map { nums[$0] }
            out.append((prompt(numbers: shown, target: v), e.text))
        }
        return out
    }
}
