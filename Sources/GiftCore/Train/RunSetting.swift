/// One run-config setting as `RunSettings.all` declares it: its config-file key (and with it its
/// `gift train` flag), the kind of its value, its help, its checks and whether it defines a checkpoint.
/// `RunConfig.json` and `set`, `gift train`'s flags and help, and `Resume.definingFields` all read these;
/// the default is the `RunConfig` property's initial value.
public struct RunSetting: Sendable {
    /// What the value is. On the command line a switch takes no value (it sets true); the others take one.
    public enum Kind: Sendable, Equatable {
        case integer, number, text, `switch`
        case choice([String])
    }

    /// Whether resuming refuses a checkpoint made with another value (`Resume.checkCompatible`).
    public enum Defines: Sendable, Equatable {
        case no, yes
        /// Made defining after checkpoints were first written: the value (as the checkpoint check prints
        /// it) that those checkpoints trained with, so they still resume.
        case addedLater(olderCheckpoints: String)
    }

    public let key: String
    public let kind: Kind
    public let help: String
    public let defines: Defines
    /// The help's default where the value itself would not read well (a long prompt); nil: the value.
    let defaultNote: String?
    /// The value in its config-file form (the JSON type config.json has always had).
    let read: @Sendable (RunConfig) -> Any
    /// Sets the value from a file or command-line value, refusing a wrong type or range.
    let write: @Sendable (inout RunConfig, Value) throws -> Void

    init(_ key: String, _ kind: Kind, defines: Defines = .no, defaultNote: String? = nil, _ help: String,
         read: @escaping @Sendable (RunConfig) -> Any, write: @escaping @Sendable (inout RunConfig, Value) throws -> Void) {
        self.key = key; self.kind = kind; self.defines = defines; self.defaultNote = defaultNote; self.help = help
        self.read = read; self.write = write
    }

    /// `--micro-batch` for micro_batch.
    public var flag: String { "--" + key.replacingOccurrences(of: "_", with: "-") }

    /// A value on its way into the config, with what an error names: the file or flag, and the key.
    struct Value {
        let json: StrictJSON, key: String, source: String

        func bad(_ want: String) -> GiftError { GiftError(.config, "\(source): field '\(key)' must be \(want), got \(json.brief)") }
        func string() throws -> String { guard case .string(let s) = json else { throw bad("a string") }; return s }
        func number() throws -> Double {
            guard case .number(let t) = json, let d = Double(t), d.isFinite else { throw bad("a number") }
            return d
        }
        func integer() throws -> Int { guard let i = json.intValue else { throw bad("an integer") }; return i }
        func bool() throws -> Bool { guard case .bool(let b) = json else { throw bad("true or false") }; return b }
    }
}

// MARK: the kinds of setting `RunSettings.all` is made of

extension RunSetting {
    typealias Path<T> = WritableKeyPath<RunConfig, T> & Sendable

    /// A range a number must lie in, named as an error says it.
    struct Bound: Sendable {
        let contains: @Sendable (Double) -> Bool, name: String
        static let positive = Bound(contains: { $0 > 0 }, name: "a positive number")
        static let fraction = Bound(contains: { $0 >= 0 && $0 < 1 }, name: "a number in [0, 1)")
    }

    /// An integer of at least `min` (0 or 1) and, with `max`, at most `max`.
    static func integer<T: FixedWidthInteger & Sendable>(_ key: String, _ path: Path<T>, min: Int, max: Int? = nil,
                                                        defines: Defines = .no, _ help: String) -> RunSetting {
        RunSetting(key, .integer, defines: defines, help, read: { $0[keyPath: path] }) { c, v in
            let i = try v.integer()
            if i < min { throw v.bad(min > 0 ? "a positive integer" : "a non-negative integer") }
            if let max, i > max { throw v.bad(orList((min...max).map(String.init))) }
            c[keyPath: path] = T(i)
        }
    }

    static func number(_ key: String, _ path: Path<Double>, _ bound: Bound? = nil, defines: Defines = .no,
                       _ help: String) -> RunSetting {
        RunSetting(key, .number, defines: defines, help, read: { $0[keyPath: path] }) { c, v in
            let d = try v.number()
            if let bound, !bound.contains(d) { throw v.bad(bound.name) }
            c[keyPath: path] = d
        }
    }

    /// A string; `valid` (with what it must be, for the error) refuses some.
    static func text(_ key: String, _ path: Path<String>, valid: (test: @Sendable (String) -> Bool, want: String)? = nil,
                     defaultNote: String? = nil, _ help: String) -> RunSetting {
        RunSetting(key, .text, defaultNote: defaultNote, help, read: { $0[keyPath: path] }) { c, v in
            let s = try v.string()
            if let valid, !valid.test(s) { throw v.bad(valid.want) }
            c[keyPath: path] = s
        }
    }

    /// How an error lists the choices: "one of a, b, c" or "a, b or c" (each setting keeps the wording
    /// its error always had).
    enum Listing: Sendable { case oneOf, alternatives }

    /// One of an enum's raw values.
    static func choice<E: CaseIterable & RawRepresentable & Sendable>(_ key: String, _ path: Path<E>, listed: Listing = .oneOf,
                                                                      defines: Defines = .no, _ help: String) -> RunSetting
    where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let want = listed == .oneOf ? "one of " + names.joined(separator: ", ") : orList(names)
        return RunSetting(key, .choice(names), defines: defines, help, read: { $0[keyPath: path].rawValue }) { c, v in
            guard let e = E(rawValue: try v.string()) else { throw v.bad(want) }
            c[keyPath: path] = e
        }
    }

    /// true or false; on the command line a switch without a value (setting true).
    static func toggle(_ key: String, _ path: Path<Bool>, defines: Defines = .no, _ help: String) -> RunSetting {
        RunSetting(key, .switch, defines: defines, help, read: { $0[keyPath: path] }) { c, v in c[keyPath: path] = try v.bool() }
    }

    /// "a", "a or b", "a, b or c".
    static func orList(_ words: [String]) -> String {
        words.count < 2 ? words.joined() : words.dropLast().joined(separator: ", ") + " or " + words.last!
    }
}

// MARK: help

extension RunSetting {
    /// `--micro-batch <micro-batch>`, or for a switch `--skip-bad-lines`.
    public var usage: String { kind == .switch ? flag : "\(flag) <\(flag.dropFirst(2))>" }

    /// The help with the value's kind and default: "Sequences per micro-batch (per rank). (integer; default: 8)".
    public var helpText: String {
        var notes: [String] = []
        switch kind {
        case .integer: notes.append("integer")
        case .number: notes.append("number")
        case .choice(let names): notes.append("values: " + names.joined(separator: ", "))
        case .text, .switch: break
        }
        let value = defaultNote ?? "\(read(RunConfig()))"
        if kind != .switch && !value.isEmpty { notes.append("default: " + value) }
        return notes.isEmpty ? help : "\(help) (\(notes.joined(separator: "; ")))"
    }
}
