import Foundation

// jinja2's tests (`x is defined`, `x is string`, `selectattr(..., 'equalto', ...)`, ...).

extension CTFilters {
    static func test(_ name: String, _ v: CTValue, _ args: Args, _ pos: Int, _ ev: CTEvaluator) throws -> Bool {
        func other() throws -> CTValue {
            guard let o = args.positional.first ?? args.keywords.first?.1 else { throw fail("the '\(name)' test needs an argument", pos) }
            return o
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": return v.isFloat
        case "number": return v.numeric != nil
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v {
            case .undefined, .list, .tuple, .dict, .string: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .list, .tuple, .dict, .string: return true
            default: return false
            }
        case "callable":
            switch v {
            case .function, .method: return true
            default: return false
            }
        case "escaped": return false
        case "lower": if case .string(let s) = v { return s == s.lowercased() && s.lowercased() != s.uppercased() }; return false
        case "upper": if case .string(let s) = v { return s == s.uppercased() && s.lowercased() != s.uppercased() }; return false
        case "odd", "even":
            guard case .int(let i)? = v.numeric, !v.isFloat else { throw fail("the '\(name)' test needs an integer", pos) }
            return (i & 1 == 1) == (name == "odd")
        case "divisibleby":
            let o = try other()
            guard case .int(let i)? = v.numeric, case .int(let j)? = o.numeric else { throw fail("divisibleby needs integers", pos) }
            if j == 0 { throw fail("integer division or modulo by zero", pos) }
            return i % j == 0
        case "sameas":
            let o = try other()
            switch (v, o) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "eq", "equalto", "==": return try ev.compare(.eq, v, try other(), pos)
        case "ne", "!=": return try ev.compare(.ne, v, try other(), pos)
        case "lt", "lessthan", "<": return try ev.compare(.lt, v, try other(), pos)
        case "le", "<=": return try ev.compare(.le, v, try other(), pos)
        case "gt", "greaterthan", ">": return try ev.compare(.gt, v, try other(), pos)
        case "ge", ">=": return try ev.compare(.ge, v, try other(), pos)
        case "in": return try ev.contains(try other(), v, pos)
        case "filter":
            if case .string(let n) = v { return names.contains(n) }; return false
        case "test":
            if case .string(let n) = v { return testNames.contains(n) }; return false
        default: throw fail("unsupported construct: the '\(name)' test", pos)
        }
    }
}
