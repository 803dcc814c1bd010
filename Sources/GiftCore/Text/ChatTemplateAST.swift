import Foundation

// The syntax tree of a parsed chat template. Every node carries the scalar offset it starts at, so run-time
// errors can name the line and column.

enum CTLiteral: Sendable {
    case none, bool(Bool), int(Int), float(Double), string(String)

    var value: CTValue {
        switch self {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .float(let d): return .float(d)
        case .string(let s): return .string(s)
        }
    }
}

struct CTKeywordArg: Sendable { let name: String; let value: CTExpr }

struct CTCallArgs: Sendable {
    var positional: [CTExpr] = []
    var keywords: [CTKeywordArg] = []
}

enum CTBinaryOp: String, Sendable { case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", mod = "%", pow = "**" }

enum CTCompareOp: String, Sendable { case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in" }

indirect enum CTExprKind: Sendable {
    case literal(CTLiteral)
    case name(String)
    case list([CTExpr])
    case tuple([CTExpr])
    case dict([(CTExpr, CTExpr)])
    case getattr(CTExpr, String)
    case getitem(CTExpr, CTExpr)
    case slice(CTExpr, CTExpr?, CTExpr?, CTExpr?)
    case call(CTExpr, CTCallArgs)
    case filter(CTExpr, String, CTCallArgs)
    case test(CTExpr, String, CTCallArgs)
    case not(CTExpr)
    case neg(CTExpr)
    case pos(CTExpr)
    case binary(CTBinaryOp, CTExpr, CTExpr)
    case concat([CTExpr])
    case compare(CTExpr, [(CTCompareOp, CTExpr)])
    case and(CTExpr, CTExpr)
    case or(CTExpr, CTExpr)
    case cond(test: CTExpr, then: CTExpr, otherwise: CTExpr?)
}

struct CTExpr: Sendable {
    let kind: CTExprKind
    let pos: Int
}

/// What `set` and `for` assign to.
enum CTTarget: Sendable {
    case name(String)
    case tuple([CTTarget])
    /// `ns.attr` (set only)
    case namespaceAttr(String, String)

    var names: [String] {
        switch self {
        case .name(let n): return [n]
        case .tuple(let t): return t.flatMap { $0.names }
        case .namespaceAttr(let n, _): return [n]
        }
    }
}

indirect enum CTNodeKind: Sendable {
    case text(String)
    case output(CTExpr)
    case ifChain([(CTExpr, [CTNode])], otherwise: [CTNode])
    case forLoop(target: CTTarget, iterable: CTExpr, condition: CTExpr?, body: [CTNode], otherwise: [CTNode])
    case set(CTTarget, CTExpr)
    /// `{% set x | filters %}...{% endset %}`; the filters apply to the captured text.
    case setBlock(CTTarget, filters: [(String, CTCallArgs, Int)], body: [CTNode])
    case breakLoop
    case continueLoop
    /// transformers' `{% generation %}...{% endgeneration %}` (renders its body)
    case generation([CTNode])
}

struct CTNode: Sendable {
    let kind: CTNodeKind
    let pos: Int
}
