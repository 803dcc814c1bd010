import Foundation

/// A model folder's text side as Hugging Face ships it: `tokenizer.json` (or, without one, Qwen2's or
/// Dream's slow files `vocab.json` + `merges.txt`: SlowBPEFiles), and `tokenizer_config.json` with the chat
/// template (or `chat_template.jinja` beside it) and the special tokens the template sees.
public struct TextModel: Sendable {
    public let tokenizer: HFTokenizer
    public let template: ChatTemplate?
    /// Where the template came from ("DIR/tokenizer_config.json" or "DIR/chat_template.jinja").
    public let templateName: String
    /// bos_token, eos_token, pad_token, unk_token, as transformers passes them to the template.
    public let variables: [String: StrictJSON]
    /// The template's text (for the prepared data's template hash).
    public var templateSource: String? = nil

    /// The pad id batches are left-padded with: the tokenizer config's pad_token, else the model's.
    public func padId(modelDefault: Int) -> Int32 {
        if case .string(let s)? = variables["pad_token"], let id = tokenizer.id(of: s) { return id }
        return Int32(modelDefault)
    }

    /// What a folder needs for text, as messages name it.
    public static let tokenizerFilesWanted = "tokenizer.json (or vocab.json + merges.txt + tokenizer_config.json)"

    /// The files `dir`'s tokenizer is read from: tokenizer.json where there is one, else the slow trio
    /// vocab.json, merges.txt, tokenizer_config.json; nil without either.
    public static func tokenizerFiles(in dir: String) -> [String]? {
        let json = dir + "/tokenizer.json"
        if FileManager.default.fileExists(atPath: json) { return [json] }
        return SlowBPEFiles.present(in: dir) ? SlowBPEFiles.files(in: dir) : nil
    }

    /// Whether `dir` has a tokenizer (text data then goes through it).
    public static func present(in dir: String) -> Bool { tokenizerFiles(in: dir) != nil }

    public static func load(_ dir: String) throws -> TextModel {
        guard let files = tokenizerFiles(in: dir) else {
            throw GiftError(.io, "\(dir): no \(tokenizerFilesWanted)")
        }
        let tok = files.count == 1 ? try HFTokenizer(path: files[0]) : try SlowBPEFiles.load(dir)
        var vars: [String: StrictJSON] = [:]
        var source: String? = nil, name = ""
        let cfgPath = dir + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: cfgPath) {
            let bytes = try readBytes(cfgPath)
            let v: StrictJSON
            do { v = try StrictJSON.parse(bytes) } catch let e as StrictJSON.ParseError {
                throw GiftError(.data, "\(cfgPath): invalid JSON: \(e.message) at byte \(e.offset)")
            }
            guard case .object(let o) = v else { throw GiftError(.data, "\(cfgPath): expected a JSON object, found \(v.kind)") }
            for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
                switch o[key] {
                case .string(let s)?: vars[key] = .string(s)
                case .object(let t)?:   // an AddedToken: {"content": "...", ...}
                    guard case .string(let s)? = t["content"] else { throw GiftError(.data, "\(cfgPath): \(key) has no string \"content\"") }
                    vars[key] = .string(s)
                case .null?, nil: break
                case let x?: throw GiftError(.data, "\(cfgPath): \(key) must be a string or a token object, found \(x.kind)")
                }
            }
            switch o["chat_template"] {
            case .string(let s)?: source = s; name = cfgPath
            case .array(let list)?:   // named templates: the "default" one
                for item in list {
                    if case .object(let t) = item, case .string("default")? = t["name"], case .string(let s)? = t["template"] {
                        source = s; name = cfgPath + " (template \"default\")"
                    }
                }
                if source == nil { throw GiftError(.data, "\(cfgPath): chat_template lists no template named \"default\"") }
            case .null?, nil: break
            case let x?: throw GiftError(.data, "\(cfgPath): chat_template must be a string or a list, found \(x.kind)")
            }
        }
        let jinja = dir + "/chat_template.jinja"
        if source == nil, FileManager.default.fileExists(atPath: jinja) {
            source = String(decoding: try readBytes(jinja), as: UTF8.self); name = jinja
        }
        let template = try source.map { try ChatTemplate(source: $0, name: name) }
        return TextModel(tokenizer: tok, template: template, templateName: name, variables: vars, templateSource: source)
    }

    static func readBytes(_ path: String) throws -> [UInt8] {
        do { return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw GiftError(.io, "cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// A formatter for JSONL records (`--data-format`).
    public func formatter(_ format: DataFormat) -> ChatFormatter {
        ChatFormatter(tokenizer: tokenizer, template: template, templateName: templateName, variables: variables, format: format)
    }
}
