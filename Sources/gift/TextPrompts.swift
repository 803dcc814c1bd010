import Foundation
import GiftCore

/// How `gift generate` turns prompts into ids and ids into text: the model folder's tokenizer.json and chat
/// template when it has them (as transformers' apply_chat_template(add_generation_prompt=True) and
/// batch_decode(skip_special_tokens=True) do for LLaDA's chat.py), the character tokenizer otherwise.
struct TextPrompts {
    let text: TextModel?
    let chars: CharTokenizer?
    let config: ModelConfig
    /// With a text model: encode --prompt as plain text, not as a user turn of the chat template.
    var plain = false

    init(modelDir: String, config: ModelConfig) throws {
        self.config = config
        text = TextModel.present(in: modelDir) ? try TextModel.load(modelDir) : nil
        chars = text == nil ? try? CharTokenizer(vocabSize: config.vocab, eosId: config.eosTokenId, maskId: config.maskTokenId) : nil
    }

    /// A --prompt: a single user turn rendered with the generation prompt (no special tokens added
    /// beyond the template's), plain tokenizer text without a template (or with `plain`).
    func encode(_ s: String) throws -> [Int32] {
        if let text {
            if text.template != nil, !plain {
                return try encode(conversation: [.object(["role": .string("user"), "content": .string(s)])], source: "--prompt")
            }
            return try text.tokenizer.encode(s, addSpecialTokens: true)
        }
        guard let chars else {
            _ = try CharTokenizer(vocabSize: config.vocab, eosId: config.eosTokenId, maskId: config.maskTokenId)
            throw GiftError(.config, "text prompts need the character tokenizer or a model folder with \(TextModel.tokenizerFilesWanted)")
        }
        return try chars.encode(s)
    }

    /// A conversation (a list of {"role", "content"}) through the chat template with the generation prompt.
    func encode(conversation ms: [StrictJSON], source: String) throws -> [Int32] {
        guard let text else { throw GiftError(.config, "\(source): conversations need a model folder with \(TextModel.tokenizerFilesWanted) and a chat template") }
        guard let t = text.template else { throw GiftError(.config, "\(source): the model folder's tokenizer_config.json has no chat_template") }
        let rendered: String
        do { rendered = try t.render(messages: ms, addGenerationPrompt: true, variables: text.variables) } catch let e as GiftError {
            throw GiftError(e.kind, "\(source): \(e.message)")
        }
        return try text.tokenizer.encode(rendered, addSpecialTokens: false)
    }

    /// --messages FILE: one conversation a line, a JSON list of messages or {"messages": [...]}.
    func readConversations(_ path: String) throws -> [(text: String?, ids: [Int32])] {
        guard let data = FileManager.default.contents(atPath: path) else { throw GiftError(.io, "cannot read messages file \(path)") }
        var out: [(text: String?, ids: [Int32])] = []
        for (n, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let at = "\(path):\(n + 1)"
            let v: StrictJSON
            do { v = try StrictJSON.parse(Array(line.utf8)) } catch let e as StrictJSON.ParseError {
                throw GiftError(.data, "\(at): invalid JSON: \(e.message) at column \(e.offset + 1)")
            }
            var ms: [StrictJSON]
            switch v {
            case .array(let a): ms = a
            case .object(let o):
                guard case .array(let a)? = o["messages"] else { throw GiftError(.data, "\(at): an object needs a list field \"messages\"") }
                ms = a
            default: throw GiftError(.data, "\(at): expected a JSON list of messages or {\"messages\": [...]}, found \(v.kind)")
            }
            // a trailing assistant turn is the answer of a data record: generate it afresh
            if case .object(let last)? = ms.last, case .string("assistant")? = last["role"] { ms.removeLast() }
            out.append((line, try encode(conversation: ms, source: at)))
        }
        return out
    }

    /// The text of generated ids: up to the first EOS, special tokens left out (the tokenizer's decode),
    /// or the character tokenizer's decoding.
    func decode(_ ids: [Int32]) throws -> String {
        let upToEOS = Array(ids.prefix { $0 != Int32(config.eosTokenId) })
        if let text { return try text.tokenizer.decode(upToEOS, skipSpecialTokens: true) }
        return chars?.decode(ids) ?? upToEOS.map(String.init).joined(separator: " ")
    }
}
