import Foundation

// The interpreter: walks the syntax tree with jinja2's run-time semantics (default Undefined, Python
// operators, for-loop scoping: a loop body's assignments vanish at the end of each iteration).

/// A run-time error at a scalar offset of the source.
struct CTRuntimeError: Error {
    let message: String
    var pos: Int
    /// Set for `raise_exception(msg)` from the template.
    var raised = false
}

final class CTFrame {
    var vars: [String: CTValue] = [:]
    let parent: CTFrame?
    init(parent: CTFrame?) { self.parent = parent }

    func lookup(_ name: String) -> CTValue? {
        var f: CTFrame? = self
        while let cur = f {
            if let v = cur.vars[name] { return v }
            f = cur.parent
        }
        return nil
    }
}

enum CTFlow { case normal, breakLoop, continueLoop }

final class CTEvaluator {
    var out = ""
    var loopDepth = 0
    /// Evaluation steps taken (CTLimits.maxSteps).
    var steps = 0
    let now: () -> Date

    init(now: @escaping () -> Date = Date.init) { self.now = now }

    static let globals: Set<String> = ["range", "raise_exception", "strftime_now", "namespace", "dict"]

    func fail(_ message: String, _ pos: Int) -> CTRuntimeError { CTRuntimeError(message: message, pos: pos) }

    // MARK: limits (CTLimits)

    /// Takes `n` steps of the budget at `pos`.
    @inline(__always) func step(_ pos: Int, _ n: Int = 1) throws {
        steps &+= n
        if steps > CTLimits.maxSteps {
            throw fail("the template ran out of its budget of \(CTLimits.maxSteps) evaluation steps (statements, "
                       + "expressions, loop iterations; it would run too long)", pos)
        }
    }

    func stringTooLong(_ bytes: Int, _ pos: Int) -> CTRuntimeError {
        fail("the template built a string of \(bytes) bytes, more than the limit of \(CTLimits.maxStringBytes)", pos)
    }

    func listTooLong(_ count: Int, _ pos: Int) -> CTRuntimeError {
        fail("the template built a list of \(count) items, more than the limit of \(CTLimits.maxListLength)", pos)
    }

    /// `v` once its size is within the limits, its size paid for in steps (about one per 64 bytes or
    /// 16 items).
    func checked(_ v: CTValue, _ pos: Int) throws -> CTValue {
        switch v {
        case .string(let s):
            let n = s.utf8.count
            if n > CTLimits.maxStringBytes { throw stringTooLong(n, pos) }
            try step(pos, n >> 6)
        case .list(let a), .tuple(let a):
            if a.count > CTLimits.maxListLength { throw listTooLong(a.count, pos) }
            try step(pos, a.count >> 4)
        case .dict(let d):
            if d.count > CTLimits.maxListLength { throw listTooLong(d.count, pos) }
            try step(pos, d.count >> 4)
        default: break
        }
        return v
    }

    /// Refuses values nested more than CTLimits.maxValueNesting levels deep, and (with `into`) a value
    /// that holds the namespace it is being stored in (a cycle, which printing would follow forever).
    /// The walk is paid for in steps (one per 4 containers visited).
    func checkNesting(_ v: CTValue, _ pos: Int, into target: CTNamespace? = nil) throws {
        var visited = 0
        func walk(_ v: CTValue, _ level: Int) throws {
            switch v {
            case .list, .tuple, .dict, .namespace, .loop, .method: break
            default: return
            }
            if level > CTLimits.maxValueNesting {
                throw fail("the template built a value nested more than \(CTLimits.maxValueNesting) levels deep", pos)
            }
            visited += 1
            if visited & 3 == 0 { try step(pos) }
            switch v {
            case .list(let a), .tuple(let a): for x in a { try walk(x, level + 1) }
            case .dict(let d): for k in d.keys { try walk(d[k]!, level + 1) }
            case .namespace(let ns):
                if let target, ns === target {
                    throw fail("a namespace cannot hold itself (the value assigned contains the namespace)", pos)
                }
                for k in ns.attrs.keys { try walk(ns.attrs[k]!, level + 1) }
            case .loop(let l): for x in l.items { try walk(x, level + 1) }
            case .method(let r, _): try walk(r, level)
            default: break
            }
        }
        try walk(v, 1)
    }

    /// Appends rendered text to the output, within CTLimits.maxStringBytes.
    func emit(_ s: String, _ pos: Int) throws {
        let n = out.utf8.count + s.utf8.count
        if n > CTLimits.maxStringBytes {
            throw fail("the rendered text would be \(n) bytes, more than the limit of \(CTLimits.maxStringBytes)", pos)
        }
        try step(pos, s.utf8.count >> 6)
        out += s
    }

    /// str(v) for output and concatenation: within the string limit (repr of a large value is cut short
    /// just past the limit, so it is refused here).
    func text(_ v: CTValue, _ pos: Int) throws -> String {
        let s = v.pyStr
        if s.utf8.count > CTLimits.maxStringBytes { throw stringTooLong(s.utf8.count, pos) }
        return s
    }

    // MARK: statements

    func exec(_ nodes: [CTNode], _ frame: CTFrame) throws -> CTFlow {
        for n in nodes {
            let flow = try exec(n, frame)
            if flow != .normal { return flow }
        }
        return .normal
    }

    func exec(_ node: CTNode, _ frame: CTFrame) throws -> CTFlow {
        try step(node.pos)
        switch node.kind {
        case .text(let t):
            try emit(t, node.pos)
        case .output(let e):
            try emit(try text(try eval(e, frame), e.pos), e.pos)
        case .ifChain(let branches, let otherwise):
            for (test, body) in branches {
                if try eval(test, frame).truthy { return try exec(body, frame) }
            }
            return try exec(otherwise, frame)
        case .forLoop(let target, let iterable, let condition, let body, let otherwise):
            let seq = try iterate(try eval(iterable, frame), iterable.pos)
            var items = seq
            if let condition {
                items = []
                for item in seq {
                    try step(node.pos)
                    let f = CTFrame(parent: frame)
                    try assign(target, item, f, node.pos)
                    if try eval(condition, f).truthy { items.append(item) }
                }
            }
            if items.isEmpty { return try exec(otherwise, frame) }
            let loop = CTLoop(items: items, depth0: 0)  // depth counts recursive calls only (unsupported)
            loopDepth += 1
            defer { loopDepth -= 1 }
            for (k, item) in items.enumerated() {
                try step(node.pos)
                loop.index0 = k
                let f = CTFrame(parent: frame)
                f.vars["loop"] = .loop(loop)
                try assign(target, item, f, node.pos)
                if try exec(body, f) == .breakLoop { break }
            }
        case .set(let target, let e):
            try assign(target, try eval(e, frame), frame, node.pos)
        case .setBlock(let target, let filters, let body):
            let saved = out
            out = ""
            _ = try exec(body, frame)
            var v = CTValue.string(out)
            out = saved
            for (name, args, pos) in filters {
                v = try checked(try CTFilters.apply(name, v, try evalArgs(args, frame), pos, self), pos)
            }
            try assign(target, v, frame, node.pos)
        case .breakLoop:
            if loopDepth == 0 { throw fail("'break' outside of a for loop", node.pos) }
            return .breakLoop
        case .continueLoop:
            if loopDepth == 0 { throw fail("'continue' outside of a for loop", node.pos) }
            return .continueLoop
        case .generation(let body):
            return try exec(body, frame)
        }
        return .normal
    }

    func assign(_ target: CTTarget, _ value: CTValue, _ frame: CTFrame, _ pos: Int) throws {
        switch target {
        case .name(let n):
            frame.vars[n] = value
        case .tuple(let targets):
            let items = try iterate(value, pos)
            guard items.count == targets.count else {
                throw fail(items.count > targets.count ? "too many values to unpack (expected \(targets.count))"
                           : "not enough values to unpack (expected \(targets.count), got \(items.count))", pos)
            }
            for (t, v) in zip(targets, items) { try assign(t, v, frame, pos) }
        case .namespaceAttr(let n, let attr):
            guard case .namespace(let ns) = frame.lookup(n) ?? .emptyUndefined else {
                throw fail("cannot assign attribute on non-namespace object", pos)
            }
            if attr.hasPrefix("_") {
                throw fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got "
                           + "\(CTPy.stringRepr(attr)). Please rename the attribute.", pos)
            }
            try checkNesting(.namespace(CTNamespace(CTDict([(attr, value)]))), pos, into: ns)
            ns.attrs[attr] = value
        }
    }

    /// Python's iter() as a for loop sees it.
    func iterate(_ v: CTValue, _ pos: Int) throws -> [CTValue] {
        switch v {
        case .undefined: return []
        case .list(let a), .tuple(let a):
            try step(pos, a.count >> 4)
            return a
        case .dict(let d):
            try step(pos, d.count >> 4)
            return d.keys.map { .string($0) }
        case .string(let s):
            let n = s.unicodeScalars.count
            if n > CTLimits.maxListLength { throw listTooLong(n, pos) }
            try step(pos, n >> 4)
            return s.unicodeScalars.map { .string(String($0)) }
        case .namespace, .loop, .none, .bool, .int, .float, .function, .method:
            throw fail("'\(v.pyTypeName)' object is not iterable", pos)
        }
    }

    // MARK: expressions

    func undefinedError(_ v: CTValue, _ pos: Int) -> CTRuntimeError {
        if case .undefined(let h) = v { return fail(h.message, pos) }
        return fail("the value is undefined", pos)
    }

    func eval(_ e: CTExpr, _ frame: CTFrame) throws -> CTValue {
        try step(e.pos)
        switch e.kind {
        case .literal(let l): return l.value
        case .name(let n):
            if let v = frame.lookup(n) { return v }
            if CTEvaluator.globals.contains(n) { return .function(n) }
            return .undefined(.name(n))
        case .list(let items):
            let v = CTValue.list(try items.map { try eval($0, frame) })
            try checkNesting(v, e.pos)
            return v
        case .tuple(let items):
            let v = CTValue.tuple(try items.map { try eval($0, frame) })
            try checkNesting(v, e.pos)
            return v
        case .dict(let pairs):
            var d = CTDict()
            for (k, v) in pairs {
                guard case .string(let key) = try eval(k, frame) else {
                    throw fail("unsupported construct: dict keys that are not strings", k.pos)
                }
                d[key] = try eval(v, frame)
            }
            try checkNesting(.dict(d), e.pos)
            return .dict(d)
        case .getattr(let obj, let name):
            return try getattr(try defined(obj, frame), name, e.pos)
        case .getitem(let obj, let key):
            return try getitem(try defined(obj, frame), try eval(key, frame), e.pos)
        case .slice(let obj, let a, let b, let c):
            let o = try eval(obj, frame)
            func opt(_ x: CTExpr?) throws -> CTValue? { try x.map { try eval($0, frame) } }
            return try checked(try slice(o, try opt(a), try opt(b), try opt(c), e.pos), e.pos)
        case .call(let callee, let args):
            let f = try defined(callee, frame)
            return try checked(try call(f, try evalArgs(args, frame), e.pos), e.pos)
        case .filter(let v, let name, let args):
            return try checked(try CTFilters.apply(name, try eval(v, frame), try evalArgs(args, frame), e.pos, self), e.pos)
        case .test(let v, let name, let args):
            return .bool(try CTFilters.test(name, try eval(v, frame), try evalArgs(args, frame), e.pos, self))
        case .not(let x): return .bool(!(try eval(x, frame).truthy))
        case .neg(let x):
            let v = try eval(x, frame)
            switch v.numeric {
            case .int(let i)?:
                if i == Int.min { throw fail("integer overflow (gift's chat templates use 64-bit integers)", e.pos) }
                return .int(-i)
            case .float(let d)?: return .float(-d)
            case nil:
                if v.isUndefined { throw undefinedError(v, e.pos) }
                throw fail("bad operand type for unary -: '\(v.pyTypeName)'", e.pos)
            }
        case .pos(let x):
            let v = try eval(x, frame)
            switch v.numeric {
            case .int(let i)?: return .int(i)
            case .float(let d)?: return .float(d)
            case nil:
                if v.isUndefined { throw undefinedError(v, e.pos) }
                throw fail("bad operand type for unary +: '\(v.pyTypeName)'", e.pos)
            }
        case .binary(let op, let l, let r):
            return try binary(op, try eval(l, frame), try eval(r, frame), e.pos)
        case .concat(let parts):
            var total = 0
            let strings = try parts.map { p -> String in
                let s = try text(try eval(p, frame), p.pos)
                total += s.utf8.count
                if total > CTLimits.maxStringBytes { throw stringTooLong(total, e.pos) }
                return s
            }
            return try checked(.string(strings.joined()), e.pos)
        case .compare(let first, let ops):
            var left = try eval(first, frame)
            for (op, rexpr) in ops {
                let right = try eval(rexpr, frame)
                if !(try compare(op, left, right, rexpr.pos)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .and(let l, let r):
            let a = try eval(l, frame)
            if a.truthy { return try eval(r, frame) }
            return a
        case .or(let l, let r):
            let a = try eval(l, frame)
            if a.truthy { return a }
            return try eval(r, frame)
        case .cond(let test, let then, let otherwise):
            if try eval(test, frame).truthy { return try eval(then, frame) }
            if let otherwise { return try eval(otherwise, frame) }
            return .undefined(CTUndefinedHint(message: "the inline if-expression on line evaluated to false and no else section was defined."))
        }
    }

    /// The value of `e`; an Undefined one is an error reported at `e` (attribute, item or call of it).
    func defined(_ e: CTExpr, _ frame: CTFrame) throws -> CTValue {
        let v = try eval(e, frame)
        if v.isUndefined { throw undefinedError(v, e.pos) }
        return v
    }

    struct Args {
        var positional: [CTValue]
        var keywords: [(String, CTValue)]

        func kw(_ name: String) -> CTValue? { keywords.first { $0.0 == name }?.1 }

        /// The argument at `index` or named `name` (nil when absent).
        func arg(_ index: Int, _ name: String) -> CTValue? {
            if index < positional.count { return positional[index] }
            return kw(name)
        }
    }

    func evalArgs(_ a: CTCallArgs, _ frame: CTFrame) throws -> Args {
        Args(positional: try a.positional.map { try eval($0, frame) },
             keywords: try a.keywords.map { ($0.name, try eval($0.value, frame)) })
    }

    static let dictMethods: Set<String> = ["get", "items", "keys", "values", "copy"]
    static let dictUnsafe: Set<String> = ["clear", "fromkeys", "pop", "popitem", "setdefault", "update"]
    static let stringMethods: Set<String> = ["strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                             "endswith", "lower", "upper", "title", "capitalize", "replace", "find",
                                             "rfind", "index", "rindex", "count", "join", "isdigit", "isalpha",
                                             "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal",
                                             "removeprefix", "removesuffix", "swapcase", "casefold", "zfill",
                                             "partition", "rpartition"]
    static let listMethods: Set<String> = ["count", "index", "copy"]

    /// jinja2's sandboxed getattr: the attribute if the object has it, else the item, else Undefined.
    func getattr(_ obj: CTValue, _ name: String, _ pos: Int) throws -> CTValue {
        switch obj {
        case .undefined: throw undefinedError(obj, pos)
        case .dict(let d):
            if CTEvaluator.dictMethods.contains(name) { return .method(obj, name) }
            if CTEvaluator.dictUnsafe.contains(name) {
                return .undefined(CTUndefinedHint(message: "access to attribute '\(name)' of 'dict' object is unsafe."))
            }
            return d[name] ?? .undefined(.attribute(of: obj, name))
        case .string:
            if CTEvaluator.stringMethods.contains(name) { return .method(obj, name) }
        case .list, .tuple:
            if CTEvaluator.listMethods.contains(name) { return .method(obj, name) }
        case .namespace(let ns):
            return ns.attrs[name] ?? .undefined(.attribute(of: obj, name))
        case .loop(let l):
            if let v = loopAttribute(l, name) { return v }
        default: break
        }
        return .undefined(.attribute(of: obj, name))
    }

    func loopAttribute(_ l: CTLoop, _ name: String) -> CTValue? {
        let n = l.items.count, i = l.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem": return i > 0 ? l.items[i - 1] : .undefined(CTUndefinedHint(message: "there is no previous item"))
        case "nextitem": return i < n - 1 ? l.items[i + 1] : .undefined(CTUndefinedHint(message: "there is no next item"))
        case "cycle": return .method(.loop(l), "cycle")
        default: return nil
        }
    }

    /// jinja2's sandboxed getitem: the item, else (for a string key) the attribute, else Undefined.
    func getitem(_ obj: CTValue, _ key: CTValue, _ pos: Int) throws -> CTValue {
        switch obj {
        case .undefined: throw undefinedError(obj, pos)
        case .dict(let d):
            if case .string(let k) = key, let v = d[k] { return v }
        case .list(let a), .tuple(let a):
            if case .int(let i)? = key.numeric {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined(.element(of: obj, key))
            }
            if case .float = key { throw fail("\(obj.pyTypeName) indices must be integers or slices, not float", pos) }
        case .string(let s):
            if case .int(let i)? = key.numeric {
                let u = Array(s.unicodeScalars)
                let j = i < 0 ? i + u.count : i
                if j >= 0 && j < u.count { return .string(String(u[j])) }
                return .undefined(.element(of: obj, key))
            }
        default: break
        }
        if case .string(let name) = key { return try getattr(obj, name, pos) }
        return .undefined(.element(of: obj, key))
    }

    /// Python's slice.indices(len).
    static func sliceIndices(_ count: Int, _ start: Int?, _ stop: Int?, _ step: Int) -> [Int] {
        func clamp(_ v: Int?, _ def: Int, lower: Int, upper: Int) -> Int {
            guard var x = v else { return def }
            if x < 0 { x += count; if x < lower { x = lower } } else if x > upper { x = upper }
            return x
        }
        var out: [Int] = []
        if step > 0 {
            let a = clamp(start, 0, lower: 0, upper: count), b = clamp(stop, count, lower: 0, upper: count)
            var i = a
            while i < b {
                out.append(i)
                let (n, o) = i.addingReportingOverflow(step)
                if o { break }
                i = n
            }
        } else {
            let a = clamp(start, count - 1, lower: -1, upper: count - 1)
            let b = clamp(stop, -1, lower: -1, upper: count - 1)
            var i = a
            while i > b {
                out.append(i)
                let (n, o) = i.addingReportingOverflow(step)
                if o { break }
                i = n
            }
        }
        return out
    }

    func sliceBound(_ v: CTValue?, _ pos: Int) throws -> Int? {
        guard let v else { return nil }
        switch v {
        case .none: return nil
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: throw fail("slice indices must be integers or None", pos)
        }
    }

    func slice(_ obj: CTValue, _ a: CTValue?, _ b: CTValue?, _ c: CTValue?, _ pos: Int) throws -> CTValue {
        if obj.isUndefined { throw undefinedError(obj, pos) }
        let start = try sliceBound(a, pos), stop = try sliceBound(b, pos)
        let step = try sliceBound(c, pos) ?? 1
        if step == 0 { throw fail("slice step cannot be zero", pos) }
        switch obj {
        case .list(let x): return .list(CTEvaluator.sliceIndices(x.count, start, stop, step).map { x[$0] })
        case .tuple(let x): return .tuple(CTEvaluator.sliceIndices(x.count, start, stop, step).map { x[$0] })
        case .string(let s):
            let u = Array(s.unicodeScalars)
            return .string(CTPy.fromScalars(CTEvaluator.sliceIndices(u.count, start, stop, step).map { u[$0] }))
        default:
            return .undefined(CTUndefinedHint(message: "\(obj.pyTypeDescription) is not subscriptable"))
        }
    }

    // MARK: operators

    func binary(_ op: CTBinaryOp, _ a: CTValue, _ b: CTValue, _ pos: Int) throws -> CTValue {
        if a.isUndefined { throw undefinedError(a, pos) }
        if b.isUndefined { throw undefinedError(b, pos) }
        let typeError = fail("unsupported operand type(s) for \(op.rawValue): '\(a.pyTypeName)' and '\(b.pyTypeName)'", pos)
        if let x = a.numeric, let y = b.numeric {
            if case .int(let i) = x, case .int(let j) = y {
                switch op {
                case .add: let (r, o) = i.addingReportingOverflow(j); if !o { return .int(r) }
                case .sub: let (r, o) = i.subtractingReportingOverflow(j); if !o { return .int(r) }
                case .mul: let (r, o) = i.multipliedReportingOverflow(by: j); if !o { return .int(r) }
                case .div:
                    if j == 0 { throw fail("division by zero", pos) }
                    return .float(Double(i) / Double(j))
                case .floordiv:
                    if j == 0 { throw fail("integer division or modulo by zero", pos) }
                    if i == Int.min && j == -1 { break }
                    let q = i / j
                    return .int((i % j != 0 && ((i < 0) != (j < 0))) ? q - 1 : q)
                case .mod:
                    if j == 0 { throw fail("integer division or modulo by zero", pos) }
                    if j == -1 { return .int(0) }
                    let r = i % j
                    return .int(r != 0 && ((r < 0) != (j < 0)) ? r + j : r)
                case .pow:
                    if j >= 0 {
                        var result = 1, base = i, e = j, overflow = false
                        while e > 0 {
                            if e & 1 == 1 { let (r, o) = result.multipliedReportingOverflow(by: base); result = r; overflow = overflow || o }
                            e >>= 1
                            if e > 0 { let (r, o) = base.multipliedReportingOverflow(by: base); base = r; overflow = overflow || o }
                        }
                        if !overflow { return .int(result) }
                    }
                    return .float(Foundation.pow(Double(i), Double(j)))
                }
                throw fail("integer overflow (gift's chat templates use 64-bit integers)", pos)
            }
            let p = x.asDouble, q = y.asDouble
            switch op {
            case .add: return .float(p + q)
            case .sub: return .float(p - q)
            case .mul: return .float(p * q)
            case .div:
                if q == 0 { throw fail("float division by zero", pos) }
                return .float(p / q)
            case .floordiv:
                if q == 0 { throw fail("float floor division by zero", pos) }
                return .float((p / q).rounded(.down))
            case .mod:
                if q == 0 { throw fail("float modulo", pos) }
                var r = fmod(p, q)
                if r != 0 && ((r < 0) != (q < 0)) { r += q }
                return .float(r)
            case .pow: return .float(Foundation.pow(p, q))
            }
        }
        switch (op, a, b) {
        case (.add, .string(let s), .string(let t)):
            if s.utf8.count + t.utf8.count > CTLimits.maxStringBytes { throw stringTooLong(s.utf8.count + t.utf8.count, pos) }
            return try checked(.string(s + t), pos)
        case (.add, .list(let s), .list(let t)):
            if s.count + t.count > CTLimits.maxListLength { throw listTooLong(s.count + t.count, pos) }
            return try checked(.list(s + t), pos)
        case (.add, .tuple(let s), .tuple(let t)):
            if s.count + t.count > CTLimits.maxListLength { throw listTooLong(s.count + t.count, pos) }
            return try checked(.tuple(s + t), pos)
        case (.mul, .string(let s), _), (.mul, _, .string(let s)):
            let n: Int
            if case .int(let k)? = (a.numeric != nil ? a : b).numeric, !(a.isFloat || b.isFloat) { n = k } else { throw typeError }
            let (bytes, o) = s.utf8.count.multipliedReportingOverflow(by: max(0, n))
            if o || bytes > CTLimits.maxStringBytes { throw stringTooLong(o ? Int.max : bytes, pos) }
            return try checked(.string(String(repeating: s, count: max(0, n))), pos)
        case (.mul, .list(let s), _), (.mul, _, .list(let s)):
            let n: Int
            if case .int(let k)? = (a.numeric != nil ? a : b).numeric, !(a.isFloat || b.isFloat) { n = k } else { throw typeError }
            let (count, o) = s.count.multipliedReportingOverflow(by: max(0, n))
            if o || count > CTLimits.maxListLength { throw listTooLong(o ? Int.max : count, pos) }
            return try checked(.list(Array([[CTValue]](repeating: s, count: max(0, n)).joined())), pos)
        case (.mod, .string, _):
            throw fail("unsupported construct: printf-style string formatting with %", pos)
        case (.add, .string, _):
            throw fail("can only concatenate str (not \"\(b.pyTypeName)\") to str", pos)
        case (.add, .list, _):
            throw fail("can only concatenate list (not \"\(b.pyTypeName)\") to list", pos)
        default:
            throw typeError
        }
    }

    func compare(_ op: CTCompareOp, _ a: CTValue, _ b: CTValue, _ pos: Int) throws -> Bool {
        switch op {
        case .eq: return a.pyEquals(b)
        case .ne: return !a.pyEquals(b)
        case .in: return try contains(b, a, pos)
        case .notIn: return !(try contains(b, a, pos))
        case .lt, .le, .gt, .ge:
            if a.isUndefined { throw undefinedError(a, pos) }
            if b.isUndefined { throw undefinedError(b, pos) }
            let (x, y) = (op == .lt || op == .le) ? (a, b) : (b, a)
            guard let less = CTPy.lessThan(x, y) else {
                throw fail("'\(op.rawValue)' not supported between instances of '\(a.pyTypeName)' and '\(b.pyTypeName)'", pos)
            }
            if op == .lt || op == .gt { return less }
            return less || x.pyEquals(y)
        }
    }

    /// Python's `needle in haystack`.
    func contains(_ haystack: CTValue, _ needle: CTValue, _ pos: Int) throws -> Bool {
        switch haystack {
        case .undefined: return false
        case .string(let s):
            guard case .string(let t) = needle else {
                if needle.isUndefined { throw undefinedError(needle, pos) }
                throw fail("'in <string>' requires string as left operand, not \(needle.pyTypeName)", pos)
            }
            try step(pos, s.utf8.count >> 6)
            return CTFilters.find(Array(s.unicodeScalars), Array(t.unicodeScalars), from: 0) != nil
        case .list(let a), .tuple(let a):
            try step(pos, a.count >> 4)
            return a.contains { $0.pyEquals(needle) }
        case .dict(let d):
            if case .string(let k) = needle { return d[k] != nil }
            return false
        case .namespace(let ns):
            if case .string(let k) = needle { return ns.attrs[k] != nil }
            return false
        default:
            throw fail("argument of type '\(haystack.pyTypeName)' is not iterable", pos)
        }
    }

    // MARK: calls

    func call(_ f: CTValue, _ args: Args, _ pos: Int) throws -> CTValue {
        switch f {
        case .undefined: throw undefinedError(f, pos)
        case .function(let name): return try callGlobal(name, args, pos)
        case .method(let receiver, let name): return try CTFilters.callMethod(receiver, name, args, pos, self)
        default: throw fail("\(f.pyTypeDescription) is not callable", pos)
        }
    }
}

extension CTValue {
    var isFloat: Bool { if case .float = self { return true }; return false }
}
