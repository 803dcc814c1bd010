import Foundation

/// A data set tokenized once by `gift data prepare` and memory-mapped at train time. A folder of:
/// - `tokens.bin`: every example's prompt ids then response ids, little-endian Int32, example after example;
/// - `index.bin`: per example four little-endian UInt64: token offset, prompt length, response length, and
///   the 1-based line of the source JSONL;
/// - `manifest.json` (written last): the format version, counts, the XXH64 of both files, of the
///   tokenizer.json and of the chat template that made the ids, and the options (data format, max length,
///   s1K layout), so a run can refuse ids made by another tokenizer or template.
/// Nothing read from the files is trusted before it is checked against the files' sizes.
public enum PreparedDataset {
    public static let formatName = "gift-prepared-v1"
    public static let manifestFile = "manifest.json", tokensFile = "tokens.bin", indexFile = "index.bin"
    static let indexFields = 4

    /// Whether `path` is a prepared data set folder (holds a manifest.json).
    public static func isPrepared(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            && FileManager.default.fileExists(atPath: path + "/" + manifestFile)
    }

    /// What made a prepared set's ids: the hashes a run compares with its model folder's.
    public struct Provenance: Equatable, Sendable {
        /// XXH64 (hex) of tokenizer.json's bytes (of the slow files' names, sizes and bytes in their
        /// place: TextModel.tokenizerFiles), "none" without a tokenizer.
        public var tokenizerHash: String
        /// XXH64 (hex) of the chat template's text followed by the special tokens it sees (bos/eos/pad/unk,
        /// sorted by name), "none" without a template.
        public var templateHash: String
        public var tokenizerFile: String, templateFile: String

        /// The provenance of a model folder (a preset or a folder without a tokenizer: "none").
        public static func of(modelDir dir: String) throws -> Provenance {
            guard let files = TextModel.tokenizerFiles(in: dir) else {
                return Provenance(tokenizerHash: "none", templateHash: "none", tokenizerFile: dir + "/tokenizer.json", templateFile: "")
            }
            let tm = try TextModel.load(dir)
            return Provenance(tokenizerHash: try tokenizerHash(files), templateHash: templateHash(tm),
                              tokenizerFile: files.joined(separator: " + "), templateFile: tm.templateName)
        }

        /// One file: the XXH64 of its bytes (as before the slow files were read). Several: of each one's
        /// name, byte count and bytes, so that a change in any of them, or bytes moved between them, shows.
        static func tokenizerHash(_ files: [String]) throws -> String {
            if files.count == 1 { return hex(XXH64.hash(try TextModel.readBytes(files[0]))) }
            var h = XXH64()
            for f in files {
                let b = try TextModel.readBytes(f)
                h.add(Array("\((f as NSString).lastPathComponent)\u{0}\(b.count)\u{0}".utf8))
                h.add(b)
            }
            return hex(h.digest)
        }

        static func templateHash(_ tm: TextModel) -> String {
            guard let src = tm.templateSource else { return "none" }
            var h = XXH64()
            h.add(Array(src.utf8))
            for k in tm.variables.keys.sorted() {
                if case .string(let s)? = tm.variables[k] { h.add(Array("\u{0}\(k)=\(s)".utf8)) }
            }
            return hex(h.digest)
        }
    }

    static func hex(_ v: UInt64) -> String { String(format: "%016llx", v) }

    // MARK: writing

    /// Writes `examples` as a prepared set in `dir` (created), the manifest last. `options` are recorded as
    /// given (data format, max length, ...); `report` is what reading the source kept and dropped.
    public static func write(_ examples: [Example], to dir: String, provenance: Provenance, source: String,
                             options: [String: Any], report: DatasetReport) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw GiftError(.io, "cannot create \(dir): \(error.localizedDescription)")
        }
        // a stale manifest must not describe the new files while they are written
        try? fm.removeItem(atPath: dir + "/" + manifestFile)
        let total = examples.reduce(0) { $0 + $1.length }
        var tokens = [Int32](); tokens.reserveCapacity(total)
        var index = [UInt64](); index.reserveCapacity(examples.count * indexFields)
        for e in examples {
            index += [UInt64(tokens.count), UInt64(e.prompt.count), UInt64(e.response.count), UInt64(max(0, e.line))]
            tokens += e.prompt; tokens += e.response
        }
        let tokData = tokens.map { $0.littleEndian }.withUnsafeBytes { Data($0) }
        let idxData = index.map { $0.littleEndian }.withUnsafeBytes { Data($0) }
        try writeData(tokData, path: dir + "/" + tokensFile)
        try writeData(idxData, path: dir + "/" + indexFile)
        let m: [String: Any] = [
            "format": formatName, "examples": examples.count, "tokens": total,
            "tokens_file": tokensFile, "tokens_xxh64": hex(tokData.withUnsafeBytes { XXH64.hash($0) }),
            "index_file": indexFile, "index_xxh64": hex(idxData.withUnsafeBytes { XXH64.hash($0) }),
            "tokenizer_xxh64": provenance.tokenizerHash, "tokenizer_file": provenance.tokenizerFile,
            "chat_template_xxh64": provenance.templateHash, "chat_template_file": provenance.templateFile,
            "source": source, "options": options,
            "report": ["examples": report.examples, "skipped_bad_lines": report.skippedBadLines,
                       "skipped_empty_response": report.skippedEmptyResponse, "truncated": report.truncated],
            "longest_example": examples.map(\.length).max() ?? 0, "max_id": Int(tokens.max() ?? 0),
        ]
        let json = try JSONSerialization.data(withJSONObject: m, options: [.prettyPrinted, .sortedKeys])
        try writeData(json, path: dir + "/" + manifestFile)
    }

    static func writeData(_ d: Data, path: String) throws {
        do { try d.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw GiftError(.io, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    // MARK: reading

    /// A prepared set, its two files mapped into memory and every index entry checked against them.
    public struct Mapped {
        public let dir: String
        /// The content's identity without reading the tokens: the manifest's checksums of both files.
        public var identity: UInt64 {
            var h = FNV1a()
            for k in ["tokens_xxh64", "index_xxh64"] { if case .string(let v)? = manifest[k] { h.add(v) } }
            h.add(count)
            return h.value
        }
        public let count: Int
        public let provenance: Provenance
        public let manifest: [String: StrictJSON]
        let tokens: TokenFile, index: Data
        /// The smallest and largest id of the token file (scanned at open, with its checksum); nil when
        /// opened without verifying (`open(verify: false)`: a rank that reads only its own examples).
        public let idRange: ClosedRange<Int32>?

        /// Index entry `i`: (offset, prompt length, response length, line), all checked at open.
        func entry(_ i: Int) -> (Int, Int, Int, Int) {
            index.withUnsafeBytes { raw in
                let b = raw.baseAddress! + i * indexFields * 8
                // clamped: a tampered value above Int.max stays too large and fails the checks in `open`
                func f(_ k: Int) -> Int { Int(clamping: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self))) }
                return (f(0), f(1), f(2), f(3))
            }
        }

        /// Tokens (prompt + response) of example `i`, without reading any other example's.
        public func length(_ i: Int) -> Int { let e = entry(i); return e.1 + e.2 }

        /// Example `i`, its ids left in the mapped file until asked for.
        public func example(_ i: Int) -> Example {
            let (off, p, r, line) = entry(i)
            return Example(file: tokens, prompt: off..<(off + p), response: (off + p)..<(off + p + r), line: line)
        }
    }

    /// Opens `dir`: the manifest's counts against the files' sizes, both checksums, then every index entry
    /// (offset + length within tokens.bin, no overlap, lengths that fit). Each fault is an error naming the
    /// file and the field. `verify` false skips the token file's checksum and id scan (the two passes over
    /// all of it): the index is still checksummed and checked, and the ids are checked as examples are read.
    public static func open(_ dir: String, verify: Bool = true) throws -> Mapped {
        let mpath = dir + "/" + manifestFile
        let man: [String: StrictJSON]
        do {
            guard case .object(let o) = try StrictJSON.parse(try TextModel.readBytes(mpath)) else {
                throw GiftError(.format, "\(mpath): expected a JSON object")
            }
            man = o
        } catch let e as StrictJSON.ParseError {
            throw GiftError(.format, "\(mpath): invalid JSON at byte \(e.offset): \(e.message)")
        }
        func str(_ k: String) throws -> String {
            guard case .string(let s)? = man[k] else { throw GiftError(.format, "\(mpath): field \"\(k)\" must be a string") }
            return s
        }
        func count(_ k: String) throws -> Int {
            guard let v = man[k]?.intValue, v >= 0 else { throw GiftError(.format, "\(mpath): field \"\(k)\" must be a non-negative integer") }
            return v
        }
        guard try str("format") == formatName else {
            throw GiftError(.format, "\(mpath): field \"format\" is \"\(try str("format"))\"; this gift reads \"\(formatName)\"")
        }
        let n = try count("examples"), total = try count("tokens")
        func mapped(_ field: String, bytes want: Int, hashField: String, verify: Bool = true) throws -> Data {
            let name = try str(field), path = dir + "/" + name
            guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else { throw GiftError(.format, "\(mpath): field \"\(field)\" must name a file inside \(dir)") }
            let d: Data
            do { d = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
                throw GiftError(.io, "cannot read \(path) (manifest field \"\(field)\"): \(error.localizedDescription)")
            }
            guard d.count == want else {
                throw GiftError(.format, "\(path) is \(d.count) bytes; \(mpath) (\"examples\" \(n), \"tokens\" \(total)) says \(want): truncated or replaced")
            }
            guard verify else { return d }
            let h = hex(d.withUnsafeBytes { XXH64.hash($0) })
            guard h == (try str(hashField)) else {
                throw GiftError(.format, "\(path): XXH64 \(h) differs from \(mpath) field \"\(hashField)\" \(try str(hashField)): the file was changed after gift data prepare wrote it")
            }
            return d
        }
        let (want, ovf) = n.multipliedReportingOverflow(by: indexFields * 8)
        guard !ovf, total <= Int.max / 4 else { throw GiftError(.format, "\(mpath): counts \"examples\" \(n) / \"tokens\" \(total) are impossibly large") }
        let index = try mapped("index_file", bytes: want, hashField: "index_xxh64")
        let tokens = try mapped("tokens_file", bytes: total * 4, hashField: "tokens_xxh64", verify: verify)
        let prov = Provenance(tokenizerHash: try str("tokenizer_xxh64"), templateHash: try str("chat_template_xxh64"),
                              tokenizerFile: (try? str("tokenizer_file")) ?? "?", templateFile: (try? str("chat_template_file")) ?? "?")
        // one sequential pass at open (with the checksum's): no id outside the vocab reaches the model
        let ids: ClosedRange<Int32>? = !verify ? nil : tokens.withUnsafeBytes { raw in
            var lo = Int32.max, hi = Int32.min
            for k in 0..<total { let v = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)); lo = min(lo, v); hi = max(hi, v) }
            return total == 0 ? 0...0 : lo...hi
        }
        let m = Mapped(dir: dir, count: n, provenance: prov, manifest: man, tokens: TokenFile(tokens), index: index, idRange: ids)
        var next = 0
        let ipath = dir + "/" + (try str("index_file"))
        for i in 0..<n {
            let (off, p, r, _) = m.entry(i)
            // each alone first, so the sum cannot overflow
            guard off <= total, p <= total, r <= total, off + p + r <= total else {
                throw GiftError(.format, "\(ipath): example \(i) (offset \(off), prompt_length \(p), response_length \(r)) reaches past the \(total) tokens of \(dir)/\(tokensFile)")
            }
            guard off == next else {
                throw GiftError(.format, "\(ipath): example \(i) field offset is \(off); the examples before it end at \(next)")
            }
            next = off + p + r
        }
        guard next == total else { throw GiftError(.format, "\(ipath): the examples cover \(next) of the \(total) tokens of \(dir)/\(tokensFile)") }
        return m
    }

    /// Refuses a set whose ids were made by another tokenizer or template than `model`'s, naming both.
    public static func checkProvenance(_ m: Mapped, model dir: String) throws {
        let mine = try Provenance.of(modelDir: dir), theirs = m.provenance
        if mine.tokenizerHash != theirs.tokenizerHash {
            throw GiftError(.mismatch, "\(m.dir)/\(manifestFile): the data was prepared with tokenizer \(theirs.tokenizerFile) (XXH64 \(theirs.tokenizerHash)); --model's \(mine.tokenizerFile) has XXH64 \(mine.tokenizerHash): prepare it again with this model")
        }
        if mine.templateHash != theirs.templateHash {
            throw GiftError(.mismatch, "\(m.dir)/\(manifestFile): the data was prepared with chat template \(theirs.templateFile) (XXH64 \(theirs.templateHash)); --model's \(mine.templateFile) has XXH64 \(mine.templateHash): prepare it again with this model")
        }
    }

    /// Every example of a prepared set for model `modelDir` with vocab `vocabSize`, ids left mapped (their
    /// range, scanned at open, checked against the vocab).
    public static func load(_ dir: String, modelDir: String, vocabSize: Int, verify: Bool = true) throws -> ([Example], DatasetReport, Mapped) {
        let m = try open(dir, verify: verify)
        try checkProvenance(m, model: modelDir)
        if let r = m.idRange, r.lowerBound < 0 || Int(r.upperBound) >= vocabSize {
            throw GiftError(.data, "\(dir)/\(tokensFile) holds ids \(r.lowerBound)...\(r.upperBound), outside the model vocab [0, \(vocabSize)) of \(modelDir)/config.json")
        }
        let out = (0..<m.count).map { m.example($0) }
        var report = DatasetReport(examples: m.count)
        if case .object(let r)? = m.manifest["report"] {
            report.skippedBadLines = r["skipped_bad_lines"]?.intValue ?? 0
            report.skippedEmptyResponse = r["skipped_empty_response"]?.intValue ?? 0
            report.truncated = r["truncated"]?.intValue ?? 0
        }
        return (out, report, m)
    }
}

/// `gift data prepare`: read a JSONL file as `gift train` would (the model folder's tokenizer and chat
/// template, `--data-format`, truncation to max length − 1) and write it as a prepared set.
public struct PrepareJob {
    public var model: String, data: String, out: String
    public var format = DataFormat.auto
    /// As gift train's --max-length: examples are cut to maxLength − 1 tokens (room for one EOS).
    public var maxLength: Int? = nil
    /// With maxLength: an example that does not fit is an error naming its line (instead of cut).
    public var refuseLong = false
    public var skipBadLines = false
    /// Also write the examples as {"prompt_ids", "response_ids"} lines here.
    public var jsonlOut: String? = nil
    /// s1K records: system prompt and tags (d1's unless set).
    public var s1k = S1KLayout()

    public init(model: String, data: String, out: String) { self.model = model; self.data = data; self.out = out }

    /// Prepares the set; returns what reading the source kept and dropped, and the tokens written.
    @discardableResult
    public func run() throws -> (DatasetReport, tokens: Int) {
        let cfgPath = model + "/" + ModelFolder.configFile
        guard let cfgData = FileManager.default.contents(atPath: cfgPath) else {
            throw GiftError(.io, "--model \(model): no \(ModelFolder.configFile) (a Hugging Face model folder is needed: its tokenizer makes the ids)")
        }
        let mc = try ModelConfig.parse(cfgData, source: cfgPath)
        let chat = TextModel.present(in: model) ? try TextModel.load(model).formatter(format) : nil
        chat?.s1k = s1k
        if chat == nil, format != .auto, format != .ids, format != .promptResponse {
            throw GiftError(.config, "--data-format \(format.rawValue) needs a model folder with \(TextModel.tokenizerFilesWanted) and a chat template; \(model) has none")
        }
        let charTok = chat == nil ? try? CharTokenizer(vocabSize: mc.vocab, eosId: mc.eosTokenId, maskId: mc.maskTokenId) : nil
        var (examples, report) = try JSONLReader.read(path: data, tokenizer: charTok, vocabSize: mc.vocab,
                                                      skipBadLines: skipBadLines, chat: chat)
        if let maxLength {
            guard maxLength >= 2 else { throw GiftError(.config, "--max-length must be at least 2 (one token and its EOS)") }
            if refuseLong, let e = examples.first(where: { $0.length > maxLength - 1 }) {
                throw GiftError(.data, "\(data):\(e.line): the example is \(e.length) tokens (prompt \(e.prompt.count), response \(e.response.count)); --max-length \(maxLength) leaves room for \(maxLength - 1) and an EOS")
            }
            let (cut, n) = Batching.truncateAll(examples, maxLength: maxLength - 1)
            examples = cut; report.truncated += n
        }
        guard !examples.isEmpty else { throw GiftError(.data, "\(data): no usable example (\(report.summary))") }
        let s = chat?.s1k ?? S1KLayout()
        let options: [String: Any] = [
            "data_format": format.rawValue, "max_length": maxLength ?? 0, "skip_bad_lines": skipBadLines,
            "s1k_system_prompt": s.systemPrompt, "s1k_reasoning": [s.reasoningOpen, s.reasoningClose],
            "s1k_answer": [s.answerOpen, s.answerClose], "vocab_size": mc.vocab,
        ]
        try PreparedDataset.write(examples, to: out, provenance: try .of(modelDir: model), source: data,
                                  options: options, report: report)
        if let jsonlOut { try JSONLReader.write(path: jsonlOut, examples: examples, tokenizer: nil) }
        return (report, examples.reduce(0) { $0 + $1.length })
    }
}
