import ArgumentParser
import Foundation
import GiftCore

/// `gift data prepare`: tokenize once, train many times.
struct DataPrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize a JSONL file once into a memory-mapped data set for gift train --data DIR.",
        discussion: """
        Reads --data exactly as gift train would (the --model folder's tokenizer.json, or vocab.json + merges.txt, and chat template,
        --data-format, --max-length) and writes --out: tokens.bin (Int32 ids), index.bin (offset, prompt
        and response length, source line per example) and manifest.json (counts, XXH64 checksums of both
        files, of the tokenizer files and of the chat template, and the options). gift train --data DIR maps
        the files, checks every offset against their sizes and both checksums, and refuses a set prepared
        with another tokenizer or template than its --model's, naming both hashes. Training on the prepared
        set gives the same examples, data fingerprint and losses as training on the JSONL itself.
        --jsonl-out also writes the examples as {"prompt_ids": [...], "response_ids": [...]} lines, to diff
        against another pipeline.
        Example: gift data prepare --model LLaDA-8B-Instruct --data tulu3.jsonl --max-length 2048 --out tulu3-llada
        """)

    @Option(help: "Model folder (its tokenizer.json or vocab.json + merges.txt, and tokenizer_config.json's chat template make the ids).") var model: String
    @Option(help: "JSONL file to prepare.") var data: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "JSONL records: auto (by fields), messages, prompt-response, s1k (d1's layout) or ids.") var dataFormat: String = "auto"
    @Option(help: "As gift train's: cut examples to N-1 tokens, room for one EOS (counted; 0: keep all).") var maxLength: Int = 0
    @Flag(help: "With --max-length: an example that does not fit is an error naming its line, instead of being cut.") var refuseLong = false
    @Flag(help: "Skip malformed JSONL lines (counted) instead of stopping at the first.") var skipBadLines = false
    @Option(help: "s1K records: the system prompt that leads the user turn (default: d1's SFT code's).") var s1kSystemPrompt: String?
    @Option(help: "s1K records: the reasoning tag (<TAG>thinking</TAG>).") var s1kReasoningTag = "reasoning"
    @Option(help: "s1K records: the answer tag (<TAG>attempt</TAG>).") var s1kAnswerTag = "answer"
    @Option(help: "Also write the prepared examples as {\"prompt_ids\", \"response_ids\"} JSONL lines to this file.") var jsonlOut: String?

    func run() throws {
        guard let fmt = DataFormat(rawValue: dataFormat) else {
            throw ValidationError("--data-format must be one of " + DataFormat.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard maxLength >= 0 else { throw ValidationError("--max-length must be >= 0") }
        var job = PrepareJob(model: model, data: data, out: out)
        job.format = fmt; job.maxLength = maxLength > 0 ? maxLength : nil
        job.refuseLong = refuseLong; job.skipBadLines = skipBadLines; job.jsonlOut = jsonlOut
        job.s1k = S1KLayout(systemPrompt: s1kSystemPrompt ?? S1KLayout.d1SystemPrompt, reasoningTag: s1kReasoningTag, answerTag: s1kAnswerTag)
        let t0 = Date()
        let (report, tokens) = try job.run()
        print(String(format: "prepared %@ into %@: %@, %d tokens, in %.1f s", data, out, report.summary, tokens, Date().timeIntervalSince(t0)))
    }
}
