import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The global functions of chat templates: jinja2's range, dict and namespace, and transformers'
// raise_exception and strftime_now.

extension CTFilters {
    /// datetime.now().strftime(fmt): the C library's strftime (Python's, which never sets LC_TIME, runs in
    /// the C locale; so does gift, which never calls setlocale), with Python's own %f.
    static func strftime(_ fmt: String, _ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var secs = time_t(t.rounded(.down))
        let micros = Int(((t - t.rounded(.down)) * 1_000_000).rounded(.down))
        let f = fmt.replacingOccurrences(of: "%f", with: String(format: "%06d", micros))
        var tmv = tm()
        localtime_r(&secs, &tmv)
        var buf = [Int8](repeating: 0, count: 1024)
        #if canImport(Glibc)
        let n = Glibc.strftime(&buf, buf.count, f, &tmv)
        #else
        let n = Foundation.strftime(&buf, buf.count, f, &tmv)
        #endif
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension CTEvaluator {
    func callGlobal(_ name: String, _ args: Args, _ pos: Int) throws -> CTValue {
        switch name {
        case "raise_exception":
            let msg = args.arg(0, "message") ?? .emptyUndefined
            throw CTRuntimeError(message: msg.pyStr, pos: pos, raised: true)
        case "strftime_now":
            guard case .string(let fmt)? = args.arg(0, "format") else {
                throw fail("strftime_now() takes a format string", pos)
            }
            return .string(CTFilters.strftime(fmt, now()))
        case "range":
            let ints = try args.positional.map { v -> Int in
                guard case .int(let i)? = v.numeric, !v.isFloat else {
                    throw fail("'\(v.pyTypeName)' object cannot be interpreted as an integer", pos)
                }
                return i
            }
            var start = 0, stop = 0, step = 1
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw fail("range expected 1 to 3 integer arguments, got \(ints.count)", pos)
            }
            if step == 0 { throw fail("range() arg 3 must not be zero", pos) }
            var out: [CTValue] = []
            var i = start
            while step > 0 ? i < stop : i > stop {
                out.append(.int(i))
                if out.count > CTLimits.maxRange { throw fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(CTLimits.maxRange)).", pos) }
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
            return .list(out)
        case "namespace", "dict":
            var d = CTDict()
            if let first = args.positional.first {
                guard args.positional.count == 1, case .dict(let given) = first else {
                    throw fail("\(name)() takes at most one positional argument, a dict", pos)
                }
                d = given
            }
            for (k, v) in args.keywords {
                if name == "namespace" && k.hasPrefix("_") {
                    throw fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got "
                               + "\(CTPy.stringRepr(k)). Please rename the attribute.", pos)
                }
                d[k] = v
            }
            try checkNesting(.dict(d), pos)
            return name == "namespace" ? .namespace(CTNamespace(d)) : .dict(d)
        default:
            throw fail("unknown function '\(name)'", pos)
        }
    }
}
