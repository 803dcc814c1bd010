import Foundation

/// One training example: token ids of the prompt and of the response (the part the model learns to
/// generate), and where it came from.
public struct Example: Equatable, Sendable {
    public var prompt: [Int32]
    public var response: [Int32]
    /// 1-based line of the source JSONL file; 0 for a generated example.
    public var line: Int

    public init(prompt: [Int32], response: [Int32], line: Int = 0) {
        self.prompt = prompt; self.response = response; self.line = line
    }

    /// prompt.count + response.count.
    public var length: Int { prompt.count + response.count }
}
