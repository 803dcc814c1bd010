import Foundation

/// How a JSONL line becomes a conversation (`--data-format`).
public enum DataFormat: String, CaseIterable, Sendable {
    /// By the fields present: `messages`; `question` (s1K); `prompt`/`response` text; `*_ids`.
    case auto
    /// `{"messages": [{"role": ..., "content": ...}, ...]}` (Tulu 3, Mixture-of-Thoughts); the last
    /// message is the assistant turn to learn.
    case messages
    /// `{"prompt": "...", "response": "..."}`: one user turn and one assistant turn.
    case promptResponse = "prompt-response"
    /// s1K / s1K-1.1: `question`, `thinking_trajectories` (a list; the first is used) or
    /// `deepseek_thinking_trajectory`, `attempt` or `deepseek_attempt`, laid out as d1's SFT code does.
    case s1k
    /// `prompt_ids`/`response_ids`: already tokenized, no template.
    case ids
}

/// s1K's layout as d1's SFT code writes it: the user turn is the system prompt, a blank line and the
/// question; the response is `<reasoning>TRAJECTORY</reasoning>\n<answer>ATTEMPT</answer>`.
public struct S1KLayout: Sendable, Equatable {
    /// d1's SYSTEM_PROMPT (it leads the user turn; d1 sends no system message).
    public static let d1SystemPrompt = "\nRespond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n...\n</answer>\n"
    public var systemPrompt = d1SystemPrompt
    public var reasoningOpen = "<reasoning>", reasoningClose = "</reasoning>\n"
    public var answerOpen = "<answer>", answerClose = "</answer>"
    public init() {}

    /// d1's layout with another system prompt or other tag names (`<tag>…</tag>`).
    public init(systemPrompt: String, reasoningTag: String, answerTag: String) {
        self.systemPrompt = systemPrompt
        reasoningOpen = "<\(reasoningTag)>"; reasoningClose = "</\(reasoningTag)>\n"
        answerOpen = "<\(answerTag)>"; answerClose = "</\(answerTag)>"
    }

    /// The conversation of one s1K record, or a message naming the missing field.
    func messages(_ f: [String: StrictJSON]) throws -> [StrictJSON] {
        func text(_ keys: [String]) throws -> String {
            for k in keys {
                switch f[k] {
                case .string(let s)?: return s
                case .array(let a)?:   // thinking_trajectories: a list of strings, the first is used
                    guard case .string(let s)? = a.first else { throw ChatFormatter.Fault("field \"\(k)\" must be a non-empty list of strings") }
                    return s
                case nil: continue
                case let v?: throw ChatFormatter.Fault("field \"\(k)\" must be a string, found \(v.kind)")
                }
            }
            throw ChatFormatter.Fault("missing field " + keys.map { "\"\($0)\"" }.joined(separator: " or ") + " (s1K format)")
        }
        let q = try text(["question"])
        let thinking = try text(["thinking_trajectories", "deepseek_thinking_trajectory"])
        let attempt = try text(["attempt", "deepseek_attempt"])
        let response = reasoningOpen + thinking + reasoningClose + answerOpen + attempt + answerClose
        return [ChatFormatter.message("user", systemPrompt + "\n\n" + q), ChatFormatter.message("assistant", response)]
    }
}

/// Turns JSONL records into token ids as the PyTorch SFT stack (dllm's map function over transformers'
/// `apply_chat_template` and the fast tokenizer) splits them: the prompt is the rendering of every
/// message but the last with the generation prompt; the response is the text the rendering of the whole
/// conversation adds after it (a rendering that does not start with the prompt is refused, naming the
/// template); each is tokenized without added special tokens. Splitting the text, not the tokens, keeps
/// the prompt's ids exactly those a sampler sees at inference: dllm masks the first len(prompt ids) of
/// the whole conversation's ids instead, which differs where BPE merges across the boundary (LLaDA's
/// template ends the prompt with "\n\n", which merges with a response starting with text: "\n", "\nIt").
public final class ChatFormatter: @unchecked Sendable {
    public let tokenizer: HFTokenizer
    public let template: ChatTemplate?
    public let templateName: String
    /// bos_token, eos_token (and pad_token, unk_token when present) as the template sees them.
    public let variables: [String: StrictJSON]
    public var format: DataFormat
    public var s1k = S1KLayout()

    struct Fault: Error { let message: String; init(_ m: String) { message = m } }

    public init(tokenizer: HFTokenizer, template: ChatTemplate?, templateName: String, variables: [String: StrictJSON],
                format: DataFormat = .auto) {
        self.tokenizer = tokenizer; self.template = template; self.templateName = templateName
        self.variables = variables; self.format = format
    }

    static func message(_ role: String, _ content: String) -> StrictJSON {
        .object(["role": .string(role), "content": .string(content)])
    }

    /// The format a record is in (`auto` decides by its fields).
    func resolve(_ f: [String: StrictJSON]) throws -> DataFormat {
        guard format == .auto else { return format }
        if f["messages"] != nil { return .messages }
        if f["question"] != nil { return .s1k }
        if f["prompt_ids"] != nil || f["response_ids"] != nil { return .ids }
        if f["prompt"] != nil || f["response"] != nil { return .promptResponse }
        throw Fault("no known fields (\"messages\"; \"question\" for s1K; \"prompt\"/\"response\"; \"prompt_ids\"/\"response_ids\"): found "
                    + (f.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")))
    }

    /// The conversation of a record in a text format.
    public func messages(_ f: [String: StrictJSON], format: DataFormat) throws -> [StrictJSON] {
        switch format {
        case .messages:
            guard case .array(let ms)? = f["messages"] else { throw Fault("field \"messages\" must be a list of {\"role\", \"content\"} objects") }
            for (i, m) in ms.enumerated() {
                guard case .object(let o) = m, case .string? = o["role"] else {
                    throw Fault("messages[\(i)] must be an object with a string \"role\"")
                }
            }
            return ms
        case .promptResponse:
            guard case .string(let p)? = f["prompt"], case .string(let r)? = f["response"] else {
                throw Fault("fields \"prompt\" and \"response\" must both be strings")
            }
            return [Self.message("user", p), Self.message("assistant", r)]
        case .s1k: return try s1k.messages(f)
        case .auto, .ids: throw Fault("internal: \(format.rawValue) has no conversation")
        }
    }

    /// Prompt and response ids of one conversation (the last message is the assistant turn to learn).
    public func encode(conversation ms: [StrictJSON]) throws -> (prompt: [Int32], response: [Int32]) {
        guard case .object(let last)? = ms.last, case .string("assistant")? = last["role"] else {
            throw Fault("the conversation does not end with an assistant turn (the response to learn)")
        }
        guard let template else {
            throw Fault("text data needs the model folder's chat template (tokenizer_config.json has no chat_template)")
        }
        let promptText: String, fullText: String
        do {
            promptText = try template.render(messages: Array(ms.dropLast()), addGenerationPrompt: true, variables: variables)
            fullText = try template.render(messages: ms, addGenerationPrompt: false, variables: variables)
        } catch let e as GiftError { throw Fault("chat template \(templateName): \(e.message)") }
        guard fullText.utf8.starts(with: promptText.utf8) else {
            throw Fault("with chat template \(templateName), the rendering of the whole conversation does not start with "
                        + "the prompt's (all messages but the last, with the generation prompt)")
        }
        let response = String(decoding: fullText.utf8.dropFirst(promptText.utf8.count), as: UTF8.self)
        return (try tokenizer.encode(promptText, addSpecialTokens: false), try tokenizer.encode(response, addSpecialTokens: false))
    }

    /// The example of one record, or nil for a text format whose response is empty. Id records are
    /// left to the caller (nil format returned through `isIds`).
    func example(_ f: [String: StrictJSON]) throws -> (Example?, isIds: Bool) {
        let fmt = try resolve(f)
        if fmt == .ids { return (nil, true) }
        let (p, r) = try encode(conversation: try messages(f, format: fmt))
        return (r.isEmpty ? nil : Example(prompt: p, response: r), false)
    }
}
