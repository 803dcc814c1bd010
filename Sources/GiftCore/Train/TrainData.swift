import Foundation

/// The examples of a run: a built-in task's generated training set or a JSONL file, truncated to
/// `max_length − 1` (room for at least one EOS), split into training and validation.
public struct TrainData: Sendable {
    public var train: [Example]
    public var validation: [Example]
    public var report: DatasetReport
    public var tokenizer: CharTokenizer?
    public var task: BuiltinTask?
    /// Longest example after truncation (tokens, without padding).
    public var maxExampleLength: Int
    /// A prepared set's identity (its files' checksums and the split, no token read), which ranks compare
    /// in place of hashing every example; nil for data read into memory.
    public var identity: UInt64? = nil
    /// Opened without the token file's checksum and id scan (ranks other than 0): ids are checked as a
    /// rank reads its own examples.
    public var idsUnchecked = false

    /// `verify` false: a prepared set is opened without reading its whole token file (rank 0 verifies it;
    /// every other rank reads only its own examples).
    public static func load(_ cfg: RunConfig, model c: ModelConfig, verify: Bool = true) throws -> TrainData {
        let tok = try? CharTokenizer(vocabSize: c.vocab, eosId: c.eosTokenId, maskId: c.maskTokenId)
        var examples: [Example], report: DatasetReport, task: BuiltinTask? = nil
        var prepared: PreparedDataset.Mapped? = nil
        if let t = try? BuiltinTask(name: cfg.data), !FileManager.default.fileExists(atPath: cfg.data) {
            task = t
            guard let tok else {
                // build it again to get the error that names both sizes
                _ = try CharTokenizer(vocabSize: c.vocab, eosId: c.eosTokenId, maskId: c.maskTokenId)
                throw GiftError(.config, "built-in task \(t.name) needs the character tokenizer")
            }
            // one EOS ends every answer, so the model learns where answers stop
            let pairs = t.generate(n: cfg.taskExamples, seed: cfg.seed, split: .train)
            examples = try BuiltinTask.examples(pairs, tokenizer: tok)
            report = DatasetReport(examples: examples.count, skippedBadLines: 0, skippedEmptyResponse: 0, truncated: 0)
        } else if PreparedDataset.isPrepared(cfg.data) {
            // a folder of gift data prepare: ids made by --model's tokenizer and template (checked), mapped
            (examples, report, prepared) = try PreparedDataset.load(cfg.data, modelDir: cfg.model, vocabSize: c.vocab, verify: verify)
        } else {
            guard FileManager.default.fileExists(atPath: cfg.data) else {
                throw GiftError(.io, "--data \(cfg.data): no such file, and not a built-in task (\(BuiltinTask.names.joined(separator: ", ")))")
            }
            // a model folder with a tokenizer.json: text records go through it and its chat template
            let chat = TextModel.present(in: cfg.model) ? try TextModel.load(cfg.model).formatter(cfg.dataFormat) : nil
            chat?.s1k = cfg.s1kLayout
            if chat == nil, cfg.dataFormat != .auto, cfg.dataFormat != .ids, cfg.dataFormat != .promptResponse {
                throw GiftError(.config, "--data-format \(cfg.dataFormat.rawValue) needs a model folder with \(TextModel.tokenizerFilesWanted) and a chat template; \(cfg.model) has none")
            }
            (examples, report) = try JSONLReader.read(path: cfg.data, tokenizer: chat == nil ? tok : nil, vocabSize: c.vocab,
                                                      skipBadLines: cfg.skipBadLines, chat: chat)
        }
        // room for the EOS every sequence gets beyond its response (--extra-eos 1), none with --extra-eos 0
        let (cut, truncated) = Batching.truncateAll(examples, maxLength: cfg.maxLength - cfg.extraEOS)
        report.truncated += truncated
        if cut.count < 2 { throw GiftError(.data, "\(cfg.data): \(cut.count) usable examples; training needs at least 2") }
        let (train, val) = Batching.split(cut, validationFraction: cfg.validationFraction, seed: cfg.seed)
        var data = TrainData(train: train, validation: val, report: report, tokenizer: tok, task: task,
                             maxExampleLength: cut.map(\.length).max() ?? 1)
        if let prepared {
            var h = FNV1a(); h.add(Int(truncatingIfNeeded: prepared.identity))
            for set in [train, val] { for e in set { h.add([e.line, e.promptCount, e.responseCount]) }; h.add(-1) }
            data.identity = h.value
            data.idsUnchecked = prepared.idRange == nil
        }
        return data
    }
}
