import Foundation

// A recursive-descent parser with jinja2's grammar and precedence (jinja2/parser.py): condexpr < or < and
// < not < compare < + - < ~ < * / // % < ** < unary - + < postfix (. [] ()) and filters/tests.

struct CTParser {
    let tokens: [CTToken]
    var i = 0
    /// Syntactic nesting now (CTLimits.maxNesting): the recursion depth of this parser, so no template
    /// can overflow the stack.
    var depth = 0

    init(tokens: [CTToken]) { self.tokens = tokens }

    static func parse(_ tokens: [CTToken]) throws -> [CTNode] {
        var p = CTParser(tokens: tokens)
        let body = try p.statements(until: [])
        return body
    }

    var current: CTToken { tokens[i] }
    func look(_ k: Int = 1) -> CTToken { tokens[min(i + k, tokens.count - 1)] }
    mutating func advance() -> CTToken { let t = tokens[i]; if i < tokens.count - 1 { i += 1 }; return t }

    func fail(_ message: String, _ tok: CTToken? = nil) -> CTSyntaxError {
        CTSyntaxError(message: message, pos: (tok ?? current).pos)
    }

    /// One more level of nesting at `pos` (undo with `depth -= 1`).
    mutating func enter(_ pos: Int) throws {
        depth += 1
        if depth > CTLimits.maxNesting {
            throw CTSyntaxError(message: "nested too deeply (more than \(CTLimits.maxNesting) levels of blocks, brackets, "
                                + "operators and calls inside each other)", pos: pos)
        }
    }

    /// `e`, refused when its tree is higher than CTLimits.maxExpressionHeight (long left-associative chains).
    func bounded(_ e: CTExpr) throws -> CTExpr {
        if e.height > CTLimits.maxExpressionHeight {
            throw CTSyntaxError(message: "expression nested too deeply (its tree is more than \(CTLimits.maxExpressionHeight) "
                                + "levels high)", pos: e.pos)
        }
        return e
    }

    mutating func expectOp(_ o: String) throws {
        guard current.isOp(o) else { throw fail("expected '\(o)', got '\(current.describe)'") }
        _ = advance()
    }

    mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw fail("expected a name, got '\(current.describe)'") }
        _ = advance()
        return n
    }

    mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw fail("expected end of statement block, got '\(current.describe)'") }
        _ = advance()
    }

    mutating func skipOp(_ o: String) -> Bool {
        if current.isOp(o) { _ = advance(); return true }
        return false
    }

    mutating func skipName(_ n: String) -> Bool {
        if current.isName(n) { _ = advance(); return true }
        return false
    }

    // MARK: statements

    /// Nodes up to a block tag whose name is in `until`; the stream is left on that name (after `{%`).
    /// With an empty `until`, up to the end of the template.
    mutating func statements(until: Set<String>) throws -> [CTNode] {
        var out: [CTNode] = []
        while true {
            let t = current
            switch t.kind {
            case .eof:
                if until.isEmpty { return out }
                throw fail("unexpected end of template; expected one of: "
                           + until.sorted().map { "'\($0)'" }.joined(separator: ", "))
            case .data(let d):
                _ = advance()
                out.append(CTNode(kind: .text(d), pos: t.pos))
            case .variableBegin:
                _ = advance()
                let e = try tuple(condexpr: true)
                guard current.kind == .variableEnd else { throw fail("expected end of print statement, got '\(current.describe)'") }
                _ = advance()
                out.append(CTNode(kind: .output(e), pos: t.pos))
            case .blockBegin:
                _ = advance()
                if case .name(let n) = current.kind, until.contains(n) { return out }
                out.append(try statement(blockPos: t.pos))
            default:
                throw fail("unexpected '\(t.describe)'")
            }
        }
    }

    static let unsupportedTags: Set<String> = ["macro", "call", "filter", "block", "extends", "include", "import",
                                               "from", "with", "autoescape", "do"]

    mutating func statement(blockPos: Int) throws -> CTNode {
        let t = current
        try enter(t.pos)
        defer { depth -= 1 }
        guard case .name(let name) = t.kind else { throw fail("tag name expected") }
        switch name {
        case "if": return try parseIf()
        case "for": return try parseFor()
        case "set": return try parseSet()
        case "print":
            _ = advance()
            let e = try tuple(condexpr: true)
            try expectBlockEnd()
            return CTNode(kind: .output(e), pos: t.pos)
        case "break", "continue":
            _ = advance()
            try expectBlockEnd()
            return CTNode(kind: name == "break" ? .breakLoop : .continueLoop, pos: t.pos)
        case "generation":
            _ = advance()
            try expectBlockEnd()
            let body = try statements(until: ["endgeneration"])
            _ = advance()
            try expectBlockEnd()
            return CTNode(kind: .generation(body), pos: t.pos)
        default:
            if CTParser.unsupportedTags.contains(name) {
                throw fail("unsupported construct: the '\(name)' tag", t)
            }
            if name.hasPrefix("end") || name == "elif" || name == "else" {
                throw fail("unexpected tag '\(name)' (no open block it could close)", t)
            }
            throw fail("unknown tag '\(name)'", t)
        }
    }

    mutating func parseIf() throws -> CTNode {
        let start = advance()
        var branches: [(CTExpr, [CTNode])] = []
        var otherwise: [CTNode] = []
        while true {
            let test = try tuple(condexpr: false)
            try expectBlockEnd()
            let body = try statements(until: ["elif", "else", "endif"])
            branches.append((test, body))
            let tag = advance()
            if tag.isName("elif") { continue }
            if tag.isName("else") {
                try expectBlockEnd()
                otherwise = try statements(until: ["endif"])
                _ = advance()
            }
            try expectBlockEnd()
            break
        }
        return CTNode(kind: .ifChain(branches, otherwise: otherwise), pos: start.pos)
    }

    mutating func parseFor() throws -> CTNode {
        let start = advance()
        let target = try assignTarget(namespace: false, endNames: ["in"])
        guard skipName("in") else { throw fail("expected 'in', got '\(current.describe)'") }
        let iterable = try tuple(condexpr: false, endNames: ["recursive"])
        var condition: CTExpr? = nil
        if skipName("if") { condition = try expression() }
        if current.isName("recursive") { throw fail("unsupported construct: recursive for loops") }
        try expectBlockEnd()
        let body = try statements(until: ["endfor", "else"])
        var otherwise: [CTNode] = []
        if advance().isName("else") {
            try expectBlockEnd()
            otherwise = try statements(until: ["endfor"])
            _ = advance()
        }
        try expectBlockEnd()
        return CTNode(kind: .forLoop(target: target, iterable: iterable, condition: condition, body: body,
                                     otherwise: otherwise), pos: start.pos)
    }

    mutating func parseSet() throws -> CTNode {
        let start = advance()
        let target = try assignTarget(namespace: true, endNames: [])
        if skipOp("=") {
            let value = try tuple(condexpr: true)
            try expectBlockEnd()
            return CTNode(kind: .set(target, value), pos: start.pos)
        }
        var filters: [(String, CTCallArgs, Int)] = []
        while current.isOp("|") {
            _ = advance()
            let ft = current
            let name = try expectName()
            try CTParser.checkFilter(name, ft)
            var args = CTCallArgs()
            if current.isOp("(") { args = try callArgs() }
            filters.append((name, args, ft.pos))
        }
        try expectBlockEnd()
        let body = try statements(until: ["endset"])
        _ = advance()
        try expectBlockEnd()
        return CTNode(kind: .setBlock(target, filters: filters, body: body), pos: start.pos)
    }

    /// Names, `a, b` tuples and (for set) `ns.attr`.
    mutating func assignTarget(namespace: Bool, endNames: Set<String>) throws -> CTTarget {
        var items: [CTTarget] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(endNames) || current.isOp("=") || current.isOp("|") { break }
            let t = current
            if current.isOp("(") {
                _ = advance()
                try enter(t.pos)
                defer { depth -= 1 }
                let inner = try assignTarget(namespace: false, endNames: [])
                try expectOp(")")
                items.append(inner)
            } else {
                let n = try expectName()
                if namespace && current.isOp(".") {
                    _ = advance()
                    items.append(.namespaceAttr(n, try expectName()))
                } else {
                    if ["true", "false", "True", "False", "none", "None"].contains(n) {
                        throw fail("can't assign to '\(n)'", t)
                    }
                    items.append(.name(n))
                }
            }
            if current.isOp(",") { isTuple = true } else { break }
        }
        if items.isEmpty { throw fail("expected an assignment target, got '\(current.describe)'") }
        return isTuple ? .tuple(items) : items[0]
    }

    func isTupleEnd(_ endNames: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .eof: return true
        case .op(")"): return true
        case .name(let n): return endNames.contains(n)
        default: return false
        }
    }

    // MARK: expressions

    /// jinja2's parse_tuple: an expression, or a tuple when commas separate several.
    mutating func tuple(condexpr: Bool, endNames: Set<String> = [], explicitParens: Bool = false) throws -> CTExpr {
        let start = current.pos
        var items: [CTExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(endNames) { break }
            items.append(try condexpr ? expression() : parseOr())
            if current.isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let e = items.first { return e }
            if !explicitParens { throw fail("expected an expression, got '\(current.describe)'") }
        }
        return CTExpr(kind: .tuple(items), pos: start)
    }

    mutating func expression() throws -> CTExpr {
        var e = try parseOr()
        while current.isName("if") {
            let p = advance().pos
            let test = try parseOr()
            var otherwise: CTExpr? = nil
            if skipName("else") {
                try enter(p)
                defer { depth -= 1 }
                otherwise = try expression()
            }
            e = try bounded(CTExpr(kind: .cond(test: test, then: e, otherwise: otherwise), pos: p))
        }
        return e
    }

    // One function a precedence level, as in jinja2's parser (parse_or, parse_and, parse_not, ...): alike
    // in shape by design, each naming its own operators and the level below.
    mutating func parseOr() throws -> CTExpr {
        var l = try parseAnd()
        while current.isName("or") {
            let p = advance().pos
            l = try bounded(CTExpr(kind: .or(l, try parseAnd()), pos: p))
        }
        return l
    }

    mutating func parseAnd() throws -> CTExpr {
        var l = try parseNot()
        while current.isName("and") {
            let p = advance().pos
            l = try bounded(CTExpr(kind: .and(l, try parseNot()), pos: p))
        }
        return l
    }

    mutating func parseNot() throws -> CTExpr {
        if current.isName("not") {
            let p = advance().pos
            try enter(p)
            defer { depth -= 1 }
            return try bounded(CTExpr(kind: .not(try parseNot()), pos: p))
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> CTExpr {
        let start = current.pos
        let e = try parseMath1()
        var ops: [(CTCompareOp, CTExpr)] = []
        while true {
            if case .op(let o) = current.kind, let op = CTCompareOp(rawValue: o), op != .in, op != .notIn {
                _ = advance()
                ops.append((op, try parseMath1()))
            } else if current.isName("in") {
                _ = advance()
                ops.append((.in, try parseMath1()))
            } else if current.isName("not") && look().isName("in") {
                _ = advance(); _ = advance()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? e : try bounded(CTExpr(kind: .compare(e, ops), pos: start))
    }

    mutating func parseMath1() throws -> CTExpr {
        var l = try parseConcat()
        while current.isOp("+") || current.isOp("-") {
            let t = advance()
            l = try bounded(CTExpr(kind: .binary(t.isOp("+") ? .add : .sub, l, try parseConcat()), pos: t.pos))
        }
        return l
    }

    mutating func parseConcat() throws -> CTExpr {
        let start = current.pos
        var args = [try parseMath2()]
        while current.isOp("~") {
            _ = advance()
            args.append(try parseMath2())
        }
        return args.count == 1 ? args[0] : try bounded(CTExpr(kind: .concat(args), pos: start))
    }

    mutating func parseMath2() throws -> CTExpr {
        var l = try parsePow()
        while true {
            let op: CTBinaryOp
            switch current.kind {
            case .op("*"): op = .mul
            case .op("/"): op = .div
            case .op("//"): op = .floordiv
            case .op("%"): op = .mod
            default: return l
            }
            let t = advance()
            l = try bounded(CTExpr(kind: .binary(op, l, try parsePow()), pos: t.pos))
        }
    }

    mutating func parsePow() throws -> CTExpr {
        var l = try parseUnary(withFilter: true)
        while current.isOp("**") {
            let t = advance()
            l = try bounded(CTExpr(kind: .binary(.pow, l, try parseUnary(withFilter: true)), pos: t.pos))
        }
        return l
    }

    mutating func parseUnary(withFilter: Bool) throws -> CTExpr {
        let t = current
        var node: CTExpr
        if t.isOp("-") || t.isOp("+") {
            _ = advance()
            try enter(t.pos)
            defer { depth -= 1 }
            let operand = try parseUnary(withFilter: false)
            node = try bounded(CTExpr(kind: t.isOp("-") ? .neg(operand) : .pos(operand), pos: t.pos))
        } else {
            node = try primary()
        }
        node = try postfix(node)
        if withFilter { node = try filterExpr(node) }
        return node
    }

    mutating func primary() throws -> CTExpr {
        let t = current
        if t.isOp("(") || t.isOp("[") || t.isOp("{") { try enter(t.pos) }
        defer { if t.isOp("(") || t.isOp("[") || t.isOp("{") { depth -= 1 } }
        switch t.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return CTExpr(kind: .literal(.bool(true)), pos: t.pos)
            case "false", "False": return CTExpr(kind: .literal(.bool(false)), pos: t.pos)
            case "none", "None": return CTExpr(kind: .literal(.none), pos: t.pos)
            default: return CTExpr(kind: .name(n), pos: t.pos)
            }
        case .string(let s):
            _ = advance()
            var buf = s
            while case .string(let more) = current.kind { buf += more; _ = advance() }
            return CTExpr(kind: .literal(.string(buf)), pos: t.pos)
        case .integer(let v):
            _ = advance()
            return CTExpr(kind: .literal(.int(v)), pos: t.pos)
        case .float(let d):
            _ = advance()
            return CTExpr(kind: .literal(.float(d)), pos: t.pos)
        case .op("("):
            _ = advance()
            let e = try tuple(condexpr: true, explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            _ = advance()
            var items: [CTExpr] = []
            while !current.isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if current.isOp("]") { break }
                items.append(try expression())
            }
            try expectOp("]")
            return CTExpr(kind: .list(items), pos: t.pos)
        case .op("{"):
            _ = advance()
            var items: [(CTExpr, CTExpr)] = []
            while !current.isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if current.isOp("}") { break }
                let k = try expression()
                try expectOp(":")
                items.append((k, try expression()))
            }
            try expectOp("}")
            return CTExpr(kind: .dict(items), pos: t.pos)
        default:
            throw fail("unexpected '\(t.describe)'")
        }
    }

    mutating func postfix(_ node: CTExpr) throws -> CTExpr {
        var node = node
        while true {
            if current.isOp(".") || current.isOp("[") {
                node = try bounded(try subscriptExpr(node))
            } else if current.isOp("(") {
                let p = current.pos
                node = try bounded(CTExpr(kind: .call(node, try callArgs()), pos: p))
            } else {
                return node
            }
        }
    }

    mutating func filterExpr(_ node: CTExpr) throws -> CTExpr {
        var node = node
        while true {
            if current.isOp("|") {
                _ = advance()
                let t = current
                let name = try expectName()
                if current.isOp(".") { throw fail("unsupported construct: dotted filter names", t) }
                try CTParser.checkFilter(name, t)
                var args = CTCallArgs()
                if current.isOp("(") { args = try callArgs() }
                node = try bounded(CTExpr(kind: .filter(node, name, args), pos: t.pos))
            } else if current.isName("is") {
                let isTok = advance()
                let negated = skipName("not")
                let t = current
                let name = try expectName()
                try CTParser.checkTest(name, t)
                var args = CTCallArgs()
                if current.isOp("(") {
                    args = try callArgs()
                } else {
                    let startsArg: Bool
                    switch current.kind {
                    case .name(let n): startsArg = !["else", "or", "and"].contains(n)
                    case .string, .integer, .float, .op("("), .op("["), .op("{"): startsArg = true
                    default: startsArg = false
                    }
                    if startsArg {
                        if current.isName("is") { throw fail("you cannot chain multiple tests with is") }
                        args.positional = [try postfix(try primary())]
                    }
                }
                node = try bounded(CTExpr(kind: .test(node, name, args), pos: isTok.pos))
                if negated { node = try bounded(CTExpr(kind: .not(node), pos: isTok.pos)) }
            } else if current.isOp("(") {
                let p = current.pos
                node = try bounded(CTExpr(kind: .call(node, try callArgs()), pos: p))
            } else {
                return node
            }
        }
    }

    mutating func subscriptExpr(_ node: CTExpr) throws -> CTExpr {
        let t = advance()
        if t.isOp(".") {
            let a = current
            switch a.kind {
            case .name(let n):
                _ = advance()
                return CTExpr(kind: .getattr(node, n), pos: t.pos)
            case .integer(let v):
                _ = advance()
                return CTExpr(kind: .getitem(node, CTExpr(kind: .literal(.int(v)), pos: a.pos)), pos: t.pos)
            default:
                throw fail("expected name or number")
            }
        }
        try enter(t.pos)
        defer { depth -= 1 }
        var args: [CTExpr] = []
        while !current.isOp("]") {
            if !args.isEmpty { try expectOp(",") }
            args.append(try subscribed())
        }
        try expectOp("]")
        if args.count == 1 {
            if case .slice(_, let a, let b, let c) = args[0].kind {
                return CTExpr(kind: .slice(node, a, b, c), pos: t.pos)
            }
            return CTExpr(kind: .getitem(node, args[0]), pos: t.pos)
        }
        if args.contains(where: { if case .slice = $0.kind { return true }; return false }) {
            throw fail("unsupported construct: multi-dimensional slicing", t)
        }
        return CTExpr(kind: .getitem(node, CTExpr(kind: .tuple(args), pos: t.pos)), pos: t.pos)
    }

    /// An index or a slice `a:b:c` (returned as .slice with a placeholder base).
    mutating func subscribed() throws -> CTExpr {
        let start = current.pos
        var parts: [CTExpr?] = []
        if current.isOp(":") {
            _ = advance()
            parts = [nil]
        } else {
            let e = try expression()
            if !current.isOp(":") { return e }
            _ = advance()
            parts = [e]
        }
        if current.isOp(":") || current.isOp("]") || current.isOp(",") {
            parts.append(nil)
        } else {
            parts.append(try expression())
        }
        if current.isOp(":") {
            _ = advance()
            if current.isOp("]") || current.isOp(",") { parts.append(nil) } else { parts.append(try expression()) }
        } else {
            parts.append(nil)
        }
        let placeholder = CTExpr(kind: .literal(.none), pos: start)
        return CTExpr(kind: .slice(placeholder, parts[0], parts[1], parts[2]), pos: start)
    }

    mutating func callArgs() throws -> CTCallArgs {
        let open = current
        try expectOp("(")
        try enter(open.pos)
        defer { depth -= 1 }
        var args = CTCallArgs()
        var requireComma = false
        while !current.isOp(")") {
            if requireComma {
                try expectOp(",")
                if current.isOp(")") { break }
            }
            if current.isOp("*") || current.isOp("**") {
                throw fail("unsupported construct: *args / **kwargs in a call")
            }
            if case .name(let n) = current.kind, look().isOp("=") {
                _ = advance(); _ = advance()
                args.keywords.append(CTKeywordArg(name: n, value: try expression()))
            } else {
                if !args.keywords.isEmpty { throw fail("invalid syntax for function call expression", open) }
                args.positional.append(try expression())
            }
            requireComma = true
        }
        try expectOp(")")
        return args
    }

    static func checkFilter(_ name: String, _ t: CTToken) throws {
        guard CTFilters.names.contains(name) else {
            if CTFilters.jinjaNames.contains(name) {
                throw CTSyntaxError(message: "unsupported construct: the '\(name)' filter", pos: t.pos)
            }
            throw CTSyntaxError(message: "no filter named '\(name)'", pos: t.pos)
        }
    }

    static func checkTest(_ name: String, _ t: CTToken) throws {
        guard CTFilters.testNames.contains(name) else {
            if CTFilters.jinjaTestNames.contains(name) {
                throw CTSyntaxError(message: "unsupported construct: the '\(name)' test", pos: t.pos)
            }
            throw CTSyntaxError(message: "no test named '\(name)'", pos: t.pos)
        }
    }
}
