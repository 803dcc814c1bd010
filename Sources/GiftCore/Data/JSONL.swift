import Foundation

/// What reading a data file kept and dropped.
public struct DatasetReport: Equatable, Sendable {
    /// Examples kept.
    public var examples: Int = 0
    /// Malformed lines skipped (only with skipBadLines; otherwise the first one is an error).
    public var skippedBadLines: Int = 0
    /// Lines whose response was empty (always skipped, never an error).
    public var skippedEmptyResponse: Int = 0
    /// Examples cut to the maximum length (see `Batching.truncate`).
    public var truncated: Int = 0

    public init(examples: Int = 0, skippedBadLines: Int = 0, skippedEmptyResponse: Int = 0, truncated: Int = 0) {
        self.examples = examples; self.skippedBadLines = skippedBadLines
        self.skippedEmptyResponse = skippedEmptyResponse; self.truncated = truncated
    }

    /// One line for logs: "1000 examples (2 bad lines skipped, 1 empty response skipped, 3 truncated)".
    public var summary: String {
        var parts: [String] = []
        if skippedBadLines > 0 { parts.append("\(skippedBadLines) bad line\(skippedBadLines == 1 ? "" : "s") skipped") }
        if skippedEmptyResponse > 0 {
            parts.append("\(skippedEmptyResponse) empty response\(skippedEmptyResponse == 1 ? "" : "s") skipped")
        }
        if truncated > 0 { parts.append("\(truncated) truncated") }
        return "\(examples) examples" + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
    }
}

/// Reads and writes JSONL data: one example a line, either text
/// `{"prompt": "...", "response": "..."}` (needs a tokenizer) or pre-tokenized
/// `{"prompt_ids": [1, 2], "response_ids": [3, 4]}`. Each side may use either form independently
/// (`prompt` with `response_ids` is fine); giving both forms of one side is an error. Other fields are
/// ignored. Blank lines are ignored; a UTF-8 byte order mark and CRLF line ends are accepted.
public enum JSONLReader {
    /// Reads every example of `path`.
    ///
    /// - A malformed line (invalid JSON or UTF-8, not an object, a missing or ill-typed field, a
    ///   non-integer id, a character outside the tokenizer's set) is an error `"<path>:<line>: <what>"`,
    ///   or, with `skipBadLines`, skipped and counted in `skippedBadLines`.
    /// - An empty response is skipped and counted in `skippedEmptyResponse`, never an error.
    /// - A token id outside [0, vocabSize) is always an error naming the line and the id, even with
    ///   `skipBadLines`: the data was tokenized for another model.
    /// - Text fields with `tokenizer == nil` are always an error (use prompt_ids/response_ids).
    /// - With `maxLength`, longer examples are cut by `Batching.truncate` and counted in `truncated`.
    /// A file with no usable example is not an error here: check `report.examples`.
    /// With `chat`, text records (messages, prompt/response text, s1K) go through the model folder's
    /// tokenizer and chat template (`ChatFormatter`); id records stay as they are.
    public static func read(path: String, tokenizer: CharTokenizer?, vocabSize: Int, skipBadLines: Bool,
                            maxLength: Int? = nil, chat: ChatFormatter? = nil) throws -> ([Example], DatasetReport) {
        var examples: [Example] = []
        var report = DatasetReport()
        for l in try TextLines.read(path, what: "data file", kind: "a JSONL file") {
            let line = l.bytes, lineNo = l.number
            do {
                if var e = try parseLine(line, tokenizer: tokenizer, vocabSize: vocabSize, chat: chat) {
                    e.line = lineNo
                    if let m = maxLength {
                        let (t, cut) = Batching.truncate(e, maxLength: m)
                        e = t
                        if cut { report.truncated += 1 }
                    }
                    examples.append(e)
                } else {
                    report.skippedEmptyResponse += 1
                }
            } catch let f as LineFault {
                switch f {
                case .bad(let what):
                    if skipBadLines { report.skippedBadLines += 1; continue }
                    throw GiftError(.data, "\(path):\(lineNo): \(what)")
                case .fatal(let what):
                    throw GiftError(.data, "\(path):\(lineNo): \(what)")
                }
            }
        }
        report.examples = examples.count
        return (examples, report)
    }

    /// Writes `examples` as JSONL: text form (`prompt`/`response`, decoded by `tokenizer`) when a
    /// tokenizer is given, id form (`prompt_ids`/`response_ids`) otherwise.
    public static func write(path: String, examples: [Example], tokenizer: CharTokenizer?) throws {
        var out = ""
        for e in examples {
            if let t = tokenizer {
                out += "{\"prompt\": \(quote(t.decode(e.prompt))), \"response\": \(quote(t.decode(e.response)))}\n"
            } else {
                out += "{\"prompt_ids\": [\(e.prompt.map(String.init).joined(separator: ", "))], "
                    + "\"response_ids\": [\(e.response.map(String.init).joined(separator: ", "))]}\n"
            }
        }
        try writeText(out, path: path)
    }

    /// Writes text pairs (a task generator's output) as `{"prompt": ..., "response": ...}` lines.
    public static func write(path: String, pairs: [(prompt: String, answer: String)]) throws {
        try writeText(pairs.map { "{\"prompt\": \(quote($0.prompt)), \"response\": \(quote($0.answer))}\n" }.joined(),
                      path: path)
    }

    static func writeText(_ s: String, path: String) throws {
        do { try Data(s.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw GiftError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// `s` as a JSON string literal.
    public static func quote(_ s: String) -> String { StrictJSON.quote(s) }

    // MARK: one line

    enum LineFault: Error { case bad(String), fatal(String) }

    /// The example of one non-blank line, or nil when its response is empty.
    static func parseLine(_ line: ArraySlice<UInt8>, tokenizer: CharTokenizer?, vocabSize: Int,
                          chat: ChatFormatter? = nil) throws -> Example? {
        let value: StrictJSON
        do { value = try StrictJSON.parse(Array(line)) } catch let e as StrictJSON.ParseError {
            throw LineFault.bad("invalid JSON: \(e.message) at column \(e.offset + 1)")
        }
        guard case .object(let fields) = value else {
            throw LineFault.bad("expected a JSON object like {\"prompt\": ..., \"response\": ...}, found \(value.kind)")
        }
        if let chat {
            do {
                let (e, isIds) = try chat.example(fields)
                if !isIds {
                    if let e, let bad = (e.prompt + e.response).first(where: { Int($0) >= vocabSize }) {
                        throw LineFault.fatal("token id \(bad) from the model folder's tokenizer is outside the model vocab [0, \(vocabSize)) of its config.json")
                    }
                    return e
                }
            } catch let f as ChatFormatter.Fault { throw LineFault.bad(f.message) }
        }
        func side(_ text: String) throws -> [Int32] {
            let idsKey = text + "_ids"
            switch (fields[text], fields[idsKey]) {
            case (nil, nil):
                throw LineFault.bad("missing field \"\(text)\" (each line needs \"prompt\" and \"response\" text, "
                                    + "or \"prompt_ids\" and \"response_ids\")")
            case (.some, .some):
                throw LineFault.bad("has both \"\(text)\" and \"\(idsKey)\"; give one")
            case (.some(let v), nil):
                guard case .string(let s) = v else {
                    throw LineFault.bad("field \"\(text)\" must be a string, found \(v.kind)")
                }
                guard let t = tokenizer else {
                    throw LineFault.fatal("field \"\(text)\" is text, and text data needs a tokenizer, which this "
                                          + "model has none of; give token ids as \"prompt_ids\"/\"response_ids\"")
                }
                do { return try t.encode(s) } catch let e as GiftError {
                    throw LineFault.bad("field \"\(text)\": \(e.message)")
                }
            case (nil, .some(let v)):
                guard case .array(let items) = v else {
                    throw LineFault.bad("field \"\(idsKey)\" must be an array of token ids, found \(v.kind)")
                }
                var ids: [Int32] = []
                ids.reserveCapacity(items.count)
                for (i, item) in items.enumerated() {
                    // an integer literal (no fraction or exponent), however large: too large is out of vocab
                    guard case .number(let raw) = item, !raw.contains(where: { ".eE".contains($0) }) else {
                        let shown: String
                        if case .number(let raw) = item { shown = raw } else { shown = item.kind }
                        throw LineFault.bad("\(idsKey)[\(i)] is not an integer token id: \(shown)")
                    }
                    guard let id = Int(raw), id >= 0, id < vocabSize else {
                        throw LineFault.fatal("token id \(raw) (\(idsKey)[\(i)]) is outside the model vocab "
                                              + "[0, \(vocabSize)): is this data tokenized for another model?")
                    }
                    ids.append(Int32(id))
                }
                return ids
            }
        }
        let prompt = try side("prompt")
        let response = try side("response")
        if response.isEmpty { return nil }
        return Example(prompt: prompt, response: response, line: 0)
    }
}
