/// `gift train`'s run-setting flags (`RunSettings.all`), read from the words ArgumentParser leaves
/// unrecognised: `--flag value`, `--flag=value`, or a switch alone. A value may start with one dash
/// (`--entropy-power -1` reaches the range check); a word starting with two is the next flag.
public struct RunSettingFlags: Sendable {
    /// In command-line order: a repeated flag's last value wins, as it did for an option.
    public let given: [(setting: RunSetting, value: StrictJSON)]

    /// `otherFlags`: the command's own flags, which a typo's suggestion may name too.
    public init(_ words: [String], otherFlags: [String] = []) throws {
        var given: [(setting: RunSetting, value: StrictJSON)] = []
        var rest = words[...]
        while let word = rest.popFirst() {
            guard word.hasPrefix("--") && word != "--" else { throw GiftError(.usage, "unexpected argument '\(word)'") }
            let name = String(word.prefix { $0 != "=" })
            let attached = name.count < word.count ? String(word.dropFirst(name.count + 1)) : nil
            guard let setting = RunSettings.byFlag[name] else {
                let near = Spelling.closest(to: name, among: RunSettings.all.map(\.flag) + otherFlags)
                throw GiftError(.usage, "unknown flag '\(name)'" + (near.map { "; did you mean '\($0)'?" } ?? "; see `gift help train`"))
            }
            if setting.kind == .switch {
                if let attached { throw GiftError(.usage, "\(name) takes no value, got '\(attached)'") }
                given.append((setting, .bool(true)))
                continue
            }
            let text: String
            if let attached {
                text = attached
            } else if let next = rest.first, !next.hasPrefix("--") {
                text = next
                rest.removeFirst()
            } else {
                throw GiftError(.usage, "missing value for '\(setting.usage)'")
            }
            given.append((setting, Self.json(text, kind: setting.kind)))
        }
        self.given = given
    }

    /// Whether the flag of `key` was given.
    public func sets(_ key: String) -> Bool { given.contains { $0.setting.key == key } }

    /// The word as the config file would hold it: a number as a JSON number, so the one check in
    /// `RunSetting` serves both; a word that is no number stays a string for the error to show.
    static func json(_ text: String, kind: RunSetting.Kind) -> StrictJSON {
        switch kind {
        case .integer, .number: return Double(text) != nil ? .number(text) : .string(text)
        case .text, .choice: return .string(text)
        case .switch: return .bool(true)
        }
    }
}
