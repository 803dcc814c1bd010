import ArgumentParser
import GiftCore

/// `gift help train`'s list of run settings, made from `RunSettings.all`: ArgumentParser lays out an
/// argument type's values with their descriptions (as it does options), so each setting's usage is
/// given as a value of this type. Never parsed: the settings are `RunSettingFlags`' to read.
struct RunSettingsHelp: ExpressibleByArgument {
    init?(argument: String) { nil }
    static var allValueStrings: [String] { RunSettings.all.map(\.usage) }
    static var allValueDescriptions: [String: String] {
        Dictionary(uniqueKeysWithValues: RunSettings.all.map { ($0.usage, $0.helpText) })
    }
}
