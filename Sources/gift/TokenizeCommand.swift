import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
/// `gift tokenize`: the ids gift sees, line by line, so anyone can diff them against their own pipeline.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of text lines (or decode ids) with a model folder's tokenizer.json and chat template.",
        usage: "gift tokenize --model <model> [<options>]",  // ArgumentParser never wraps USAGE; OPTIONS lists the rest
        discussion: """
        Reads standard input (or --file), one item a line, and prints one line per item; errors name the line. \
        The tokenizer is the folder's tokenizer.json, or without one Qwen2's or Dream's slow tokenizer files \
        vocab.json + merges.txt + tokenizer_config.json (read as transformers' Qwen2 converter builds them).

        A text line becomes a JSON array of ids, with special tokens added as the tokenizer's post-processor \
        says (--no-special-tokens leaves them out). With --decode each line is a JSON array of ids and becomes \
        the decoded text as a JSON string.

        With --chat each line is a JSON list of {"role", "content"} messages and becomes the chat template's \
        rendering, tokenized without added special tokens as transformers' apply_chat_template(tokenize=True) \
        does; --generation-prompt adds the assistant header, --text prints the rendering instead.

        Examples:
          echo 'Hello world' | gift tokenize --model runs/m
          echo '[{"role": "user", "content": "Hi"}]' | gift tokenize --model runs/m --chat --generation-prompt
        """)

    @Option(help: "A model folder with tokenizer.json or vocab.json + merges.txt (and tokenizer_config.json for --chat).") var model: String
    @Option(help: "Read this file instead of standard input.") var file: String?
    @Flag(help: "Decode: each line is a JSON array of ids.") var decode = false
    @Flag(help: "With --decode: leave special tokens out of the text.") var skipSpecialTokens = false
    @Flag(help: "Chat: each line is a JSON list of messages, rendered with the chat template first.") var chat = false
    @Flag(help: "With --chat: add the assistant's generation prompt.") var generationPrompt = false
    @Flag(help: "With --chat: print the rendered text (a JSON string) instead of ids.") var text = false
    @Flag(help: "Plain text: do not add the post-processor's special tokens.") var noSpecialTokens = false

    func run() throws {
        let tm = try TextModel.load(model)
        let input: String
        if let file {
            guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            input = String(decoding: d, as: UTF8.self)
        } else {
            input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        var lines = input.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        let source = file ?? "<stdin>"
        var out = ""
        for (i, line) in lines.enumerated() {
            func fail(_ what: String) -> GiftError { GiftError(.data, "\(source):\(i + 1): \(what)") }
            if decode || chat {
                let v: StrictJSON
                do { v = try StrictJSON.parse(Array(line.utf8)) } catch let e as StrictJSON.ParseError {
                    throw fail("invalid JSON: \(e.message) at column \(e.offset + 1)")
                }
                guard case .array(let items) = v else { throw fail("expected a JSON list, found \(v.kind)") }
                if decode {
                    var ids: [Int32] = []
                    for (j, item) in items.enumerated() {
                        guard case .number(let raw) = item, let id = Int32(raw), id >= 0, id < tm.tokenizer.vocabSize else {
                            throw fail("item \(j) is not a token id in [0, \(tm.tokenizer.vocabSize))")
                        }
                        ids.append(id)
                    }
                    out += StrictJSON.quote(try tm.tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)) + "\n"
                } else {
                    guard let template = tm.template else { throw GiftError(.data, "\(model)/tokenizer_config.json has no chat_template") }
                    let rendered: String
                    do { rendered = try template.render(messages: items, addGenerationPrompt: generationPrompt, variables: tm.variables) }
                    catch let e as GiftError { throw fail(e.message) }
                    out += text ? StrictJSON.quote(rendered) + "\n" : ids(try tm.tokenizer.encode(rendered, addSpecialTokens: false))
                }
            } else {
                out += ids(try tm.tokenizer.encode(line, addSpecialTokens: !noSpecialTokens))
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    func ids(_ x: [Int32]) -> String { "[" + x.map(String.init).joined(separator: ", ") + "]\n" }
}
