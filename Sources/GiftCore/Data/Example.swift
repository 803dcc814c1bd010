import Foundation

/// One training example: token ids of the prompt and of the response (the part the model learns to
/// generate), and where it came from. Its ids live in arrays, or (an example of a prepared set) in the
/// set's memory-mapped token file, read only when `prompt` or `response` is asked for: lengths, truncation
/// and copies never touch the tokens, so each rank reads only the examples it trains on.
public struct Example: Equatable, Sendable {
    enum Storage: Sendable {
        case arrays([Int32], [Int32])
        /// Token positions of the prompt and of the response in a mapped file (prompt ends where the
        /// response begins, unless truncation dropped the prompt's first tokens).
        case mapped(TokenFile, prompt: Range<Int>, response: Range<Int>)
    }
    var storage: Storage
    /// 1-based line of the source JSONL file; 0 for a generated example.
    public var line: Int

    public init(prompt: [Int32], response: [Int32], line: Int = 0) {
        storage = .arrays(prompt, response); self.line = line
    }

    init(file: TokenFile, prompt: Range<Int>, response: Range<Int>, line: Int) {
        storage = .mapped(file, prompt: prompt, response: response); self.line = line
    }

    public var prompt: [Int32] {
        get {
            switch storage {
            case .arrays(let p, _): return p
            case .mapped(let f, let p, _): return f.ids(p)
            }
        }
        set { storage = .arrays(newValue, response) }
    }

    public var response: [Int32] {
        get {
            switch storage {
            case .arrays(_, let r): return r
            case .mapped(let f, _, let r): return f.ids(r)
            }
        }
        set { storage = .arrays(prompt, newValue) }
    }

    public var promptCount: Int {
        switch storage { case .arrays(let p, _): return p.count; case .mapped(_, let p, _): return p.count }
    }
    public var responseCount: Int {
        switch storage { case .arrays(_, let r): return r.count; case .mapped(_, _, let r): return r.count }
    }
    /// prompt.count + response.count.
    public var length: Int { promptCount + responseCount }

    /// The last `p` prompt tokens and the first `r` response tokens (truncation), without reading ids.
    func keeping(promptSuffix p: Int, responsePrefix r: Int) -> Example {
        precondition(p <= promptCount && r <= responseCount)
        var e = self
        switch storage {
        case .arrays(let a, let b): e.storage = .arrays(Array(a.suffix(p)), Array(b.prefix(r)))
        case .mapped(let f, let a, let b): e.storage = .mapped(f, prompt: (a.upperBound - p)..<a.upperBound, response: b.lowerBound..<(b.lowerBound + r))
        }
        return e
    }

    public static func == (a: Example, b: Example) -> Bool {
        a.line == b.line && a.promptCount == b.promptCount && a.responseCount == b.responseCount
            && a.prompt == b.prompt && a.response == b.response
    }
}

/// A memory-mapped file of little-endian Int32 ids (a prepared set's tokens.bin), bounds checked by its
/// opener; shared by the examples that point into it.
final class TokenFile: Sendable {
    let data: Data
    init(_ data: Data) { self.data = data }
    var count: Int { data.count / 4 }

    func ids(_ r: Range<Int>) -> [Int32] {
        precondition(r.lowerBound >= 0 && r.upperBound <= count, "token range \(r) outside the mapped file (\(count) ids)")
        return data.withUnsafeBytes { raw in
            (r).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        }
    }
}
