import Foundation

/// A character tokenizer for the built-in tasks and small text data sets, sized to fit the smallest
/// preset (vocab 64, eos 62, mask 63).
///
/// The character set is exactly these 62 characters, with ids 0..<62 in this order:
///
///     id 0       space
///     ids 1-10   0 1 2 3 4 5 6 7 8 9
///     ids 11-36  a b c ... z   (lowercase only: uppercase letters are not in the set)
///     ids 37-51  + - * / ( ) = , : ; . ? ! ' "
///     ids 52-60  < > [ ] % # & $ @
///     id 61      newline ("\n")
///
/// (`_` is deliberately absent: `decode` shows the mask token as `_`.) The model's reserved ids (EOS and
/// mask) must lie outside 0..<62, so the model vocab needs at least 64 ids.
public struct CharTokenizer: Sendable {
    /// The character set, in id order.
    public static let characters: [Character] = Array(" 0123456789abcdefghijklmnopqrstuvwxyz+-*/()=,:;.?!'\"<>[]%#&$@\n")

    public let vocabSize: Int
    public let eosId: Int
    public let maskId: Int
    private let ids: [Character: Int32]

    /// Number of character ids (62).
    public static var characterCount: Int { characters.count }

    /// Binds the character set to a model's vocabulary: the characters take ids 0..<62, and EOS and mask
    /// (the model's reserved ids) must be distinct from those and inside the vocabulary.
    public init(vocabSize: Int, eosId: Int, maskId: Int) throws {
        let n = Self.characters.count
        let reserved = Set([eosId, maskId]).count
        guard vocabSize >= n + reserved else {
            throw GiftError(.config, "tokenizer needs \(n + reserved) ids (\(n) characters + eos and mask), "
                            + "model vocab has \(vocabSize)")
        }
        for (name, id) in [("eos_token_id", eosId), ("mask_token_id", maskId)] {
            guard id >= 0 && id < vocabSize else {
                throw GiftError(.config, "\(name) \(id) is outside the model vocab of \(vocabSize)")
            }
            guard id >= n else {
                throw GiftError(.config, "\(name) \(id) collides with the character tokenizer's ids 0..<\(n); "
                                + "the character tokenizer needs the model's reserved ids at \(n) or above")
            }
        }
        self.vocabSize = vocabSize; self.eosId = eosId; self.maskId = maskId
        var m: [Character: Int32] = [:]
        for (i, c) in Self.characters.enumerated() { m[c] = Int32(i) }
        ids = m
    }

    /// The ids of `s`, one per character. A character outside the set is an error naming it.
    public func encode(_ s: String) throws -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(s.count)
        for c in s {
            guard let id = ids[c] else {
                throw GiftError(.data, "character \(Self.describe(c)) is not in the character tokenizer's set "
                                + "(space, digits, lowercase a-z, newline and +-*/()=,:;.?!'\"<>[]%#&$@)")
            }
            out.append(id)
        }
        return out
    }

    /// The text of `ids`, stopping at the first EOS; the mask id shows as `_`, any other id outside the
    /// character set as `?`.
    public func decode(_ ids: [Int32]) -> String {
        var s = ""
        for id in ids {
            let i = Int(id)
            if i == eosId { break }
            if i == maskId { s.append("_") }
            else if i >= 0 && i < Self.characters.count { s.append(Self.characters[i]) }
            else { s.append("?") }
        }
        return s
    }

    /// `'x'`, or the scalar value for invisible characters.
    static func describe(_ c: Character) -> String {
        let scalars = c.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
        if c.isWhitespace || c.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) {
            return "(\(scalars))"
        }
        return "'\(c)' (\(scalars))"
    }
}
