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
    /// The height of the tree below and including this node (a literal or name is 1); the parser bounds
    /// it (CTLimits.maxExpressionHeight), which bounds the evaluator's recursion.
    let height: Int

    init(kind: CTExprKind, pos: Int) {
        self.kind = kind
        self.pos = pos
        height = 1 + CTExpr.childHeight(kind)
    }

    static func childHeight(_ k: CTExprKind) -> Int {
        func h(_ e: CTExpr?) -> Int { e?.height ?? 0 }
        func hs(_ es: [CTExpr]) -> Int { es.reduce(0) { max($0, $1.height) } }
        func ha(_ a: CTCallArgs) -> Int { max(hs(a.positional), a.keywords.reduce(0) { max($0, $1.value.height) }) }
        switch k {
        case .literal, .name: return 0
        case .list(let a), .tuple(let a), .concat(let a): return hs(a)
        case .dict(let p): return p.reduce(0) { max($0, $1.0.height, $1.1.height) }
        case .getattr(let o, _), .not(let o), .neg(let o), .pos(let o): return o.height
        case .getitem(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): return max(a.height, b.height)
        case .slice(let o, let a, let b, let c): return max(o.height, h(a), h(b), h(c))
        case .call(let f, let args), .filter(let f, _, let args), .test(let f, _, let args): return max(f.height, ha(args))
        case .compare(let f, let ops): return ops.reduce(f.height) { max($0, $1.1.height) }
        case .cond(let t, let a, let b): return max(t.height, a.height, h(b))
        }
    }
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
