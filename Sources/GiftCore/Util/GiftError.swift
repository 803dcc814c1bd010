import Foundation

/// Every error gift reports to a user: one message that names the file, line, field or tensor.
public struct GiftError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable { case usage, format, config, data, numeric, io, mismatch }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
    public var localizedDescription: String { message }
}
