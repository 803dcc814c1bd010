import Foundation

/// A byte-level BPE tokenizer shipped as `vocab.json` + `merges.txt` + `tokenizer_config.json` and no
/// tokenizer.json: Qwen2's slow tokenizer files, and Dream's (Dream-org/Dream-v0-*-7B, whose
/// `DreamTokenizer` in tokenization_dream.py is a copy of transformers' slow Qwen2Tokenizer).
///
/// The pipeline is the one transformers' `Qwen2Converter` (convert_slow_tokenizer.py) and its v5
/// `Qwen2Tokenizer` build from these files, made of the same parts HFTokenizer runs for a tokenizer.json:
/// BPE (no unk, no byte fallback), the NFC normalizer, Split(Qwen2's regex, isolated) then
/// ByteLevel(use_regex false), the ByteLevel decoder, a post-processor that adds nothing (ByteLevel,
/// trim_offsets false), and `added_tokens_decoder`'s tokens with their flags at the ids its keys give.
///
/// What Dream's tokenization_dream.py does differently, checked against its source: nothing that changes
/// ids. It adds no BOS (it inherits PreTrainedTokenizer's build_inputs_with_special_tokens, which adds
/// none, though its config names bos_token <|beginoftext|>), applies NFC to the whole text (the fast
/// pipeline applies it around the added tokens; the two differ only for a combining mark right after a
/// special token, which has no composed form with '>'), ignores add_prefix_space, decodes invalid UTF-8
/// with errors="replace" (the ByteLevel decoder's lossy decoding) and without spaces between special tokens
/// (as the fast decoder), and keeps split_special_tokens false.
///
/// Where transformers v5's `Qwen2Tokenizer` differs: it assigns an added token that vocab.json lacks the
/// next free id rather than its key, and honours add_bos_token/add_eos_token; gift refuses keys that do
/// not run on from vocab.json's ids and, for the Qwen2 classes, those two flags set (Dream's code ignores
/// them); real Qwen2 and Dream files have neither.
///
/// The files come from the internet: each is at most `maxFileBytes`, the JSON is read by the bounded
/// `TJ` reader, and every refusal names the file and the line or JSON path.
enum SlowBPEFiles {
    static let vocabFile = "vocab.json", mergesFile = "merges.txt", configFile = "tokenizer_config.json"
    static let classes = ["Qwen2Tokenizer", "Qwen2TokenizerFast", "DreamTokenizer"]
    /// Qwen2.5's vocab.json is 2.8 MB and its merges.txt 1.7 MB.
    static let maxFileBytes = 64 << 20
    /// The config fields naming special tokens; HF makes them added special tokens.
    static let namedTokens = ["bos_token", "eos_token", "pad_token", "unk_token", "mask_token"]

    /// The three files' paths, in the order the prepared data's hash reads them.
    static func files(in dir: String) -> [String] { [vocabFile, mergesFile, configFile].map { dir + "/" + $0 } }

    static func present(in dir: String) -> Bool { files(in: dir).allSatisfy { FileManager.default.fileExists(atPath: $0) } }

    static func load(_ dir: String) throws -> HFTokenizer {
        let paths = files(in: dir)
        let cfg = try TJ.parse(try read(paths[2]), source: paths[2])
        let addPrefixSpace = try checkConfig(cfg)
        let (vocab, idToToken) = try BPEModel.vocabulary(try TJ.parse(try read(paths[0]), source: paths[0]), strict: true)
        let (pairs, lines) = try merges(try read(paths[1]), source: paths[1])
        let model = try BPEModel(vocab: vocab, idToToken: idToToken, merges: pairs,
                                 mergeError: { GiftError(.format, "\(paths[1]): line \(lines[$0]): \($1)") })
        let split = PreTokenizer.split(.regex(try ScalarRegex.make(ScalarRegex.qwen2Pattern, at: nil)), .isolated, invert: false)
        return HFTokenizer(source: paths[0], normalizer: .nfc,
                           preTokenizer: .sequence([split, .byteLevel(addPrefixSpace: addPrefixSpace, useRegex: false)]),
                           model: model, postProcessor: .byteLevel, decoder: .byteLevel,
                           added: try AddedVocabulary(try addedTokens(cfg, model: model), normalizer: .nfc))
    }

    /// The file's bytes, refused past `maxFileBytes` before it is read.
    static func read(_ path: String) throws -> [UInt8] {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maxFileBytes {
            throw GiftError(.format, "\(path): \(size.intValue) bytes, more than the limit of \(maxFileBytes) for a tokenizer file")
        }
        return try TextModel.readBytes(path)
    }

    /// Refuses a class or setting this pipeline does not reproduce; returns add_prefix_space.
    static func checkConfig(_ cfg: TJ) throws -> Bool {
        _ = try cfg.object()
        guard let cj = try cfg.field("tokenizer_class") else {
            throw cfg.error("no tokenizer_class: gift reads vocab.json + merges.txt for \(classes.joined(separator: ", ")) only")
        }
        let cls = try cj.string()
        guard classes.contains(cls) else {
            throw cj.error("tokenizer class \(StrictJSON.quote(cls)) is not supported with vocab.json + merges.txt "
                           + "(gift reads them for \(classes.joined(separator: ", ")); other tokenizers need a tokenizer.json)")
        }
        if let f = try cfg.field("split_special_tokens"), try f.bool() {
            throw f.error("true is not supported (gift splits special tokens out of the text, as the default false does)")
        }
        if cls == "DreamTokenizer" {
            // Dream's slow tokenizer ignores add_bos_token/add_eos_token and add_prefix_space; `errors` is its decode mode.
            if let f = try cfg.field("errors"), try f.string() != "replace" {
                throw f.error("only \"replace\" is supported (invalid UTF-8 decodes to U+FFFD)")
            }
            return false
        }
        for key in ["add_bos_token", "add_eos_token"] {
            if let f = try cfg.field(key), try f.bool() {
                throw f.error("true is not supported (Qwen2's converter adds no BOS or EOS)")
            }
        }
        return try cfg.bool("add_prefix_space", default: false)
    }

    /// merges.txt: one merge per line, two tokens separated by one space, in rank order; the first line
    /// may be a `#version` header. Parsed as tokenizers' BPE file reader does (a blank line or a tab is an
    /// error, CRLF line ends are allowed). Returns the pairs and each pair's 1-based line.
    static func merges(_ bytes: [UInt8], source: String) throws -> ([(String, String)], [Int]) {
        var pairs: [(String, String)] = [], lines: [Int] = []
        var lineNo = 0
        var start = 0
        while start < bytes.count {
            lineNo += 1
            var end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            let next = end + 1
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            defer { start = next }
            let fail = { (m: String) in GiftError(.format, "\(source): line \(lineNo): \(m)") }
            guard let line = String(validating: bytes[start..<end], as: UTF8.self) else { throw fail("not valid UTF-8") }
            if lineNo == 1, line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw fail("expected two tokens separated by one space, found \(StrictJSON.quote(String(line.prefix(80))))")
            }
            pairs.append((String(parts[0]), String(parts[1])))
            lines.append(lineNo)
        }
        return (pairs, lines)
    }

    /// `added_tokens_decoder` ({"id": {content, special, lstrip, rstrip, normalized, single_word}}) in id
    /// order, then the config's named special tokens that it does not list but vocab.json holds (HF adds
    /// those as special tokens at their vocabulary ids). The keys are the ids, as the slow tokenizer takes
    /// them; a token that vocab.json holds must have its vocab.json id there.
    static func addedTokens(_ cfg: TJ, model: BPEModel) throws -> [AddedToken] {
        var list: [AddedToken] = []
        var byContent: [ByteKey: Int32] = [:]
        if let dj = try cfg.field("added_tokens_decoder") {
            let o = try dj.object()
            for key in o.keys {
                let tj = try dj.require(key)
                guard let id = Int(key), id >= 0, id <= Int(Int32.max), String(id) == key else {
                    throw tj.error("the key must be a token id (a non-negative integer)")
                }
                let t = try AddedToken(tj, id: Int32(id))
                if let v = model.vocab[ByteKey(t.content)], v != t.id {
                    throw tj.error("\(StrictJSON.quote(t.content)) has id \(v) in vocab.json, not \(id)")
                }
                if let other = model.idToToken[t.id], other != t.content {
                    throw tj.error("id \(id) is vocab.json's token \(StrictJSON.quote(other)), not \(StrictJSON.quote(t.content))")
                }
                if let dup = byContent.updateValue(t.id, forKey: ByteKey(t.content)) {
                    throw tj.error("\(StrictJSON.quote(t.content)) is listed twice (ids \(dup) and \(id))")
                }
                list.append(t)
            }
            list.sort { $0.id < $1.id }
            // transformers 4's slow tokenizer takes the keys as ids, v5 gives each token not in vocab.json the
            // next free id: they agree (and gift with them) only when those ids run on from vocab.json's.
            var next = Int32(model.idToToken.count)
            for t in list where model.vocab[ByteKey(t.content)] == nil {
                guard t.id == next else {
                    throw dj.error("\(StrictJSON.quote(t.content)) has id \(t.id) where \(next) was expected: the ids of tokens "
                                   + "not in vocab.json must run on from vocab.json's (\(model.idToToken.count), \(model.idToToken.count + 1), ...)")
                }
                next += 1
            }
        }
        for key in namedTokens {
            guard let f = try cfg.field(key) else { continue }
            let content: String
            switch f.value {
            case .string(let s): content = s
            case .object: content = try f.string("content")
            default: throw f.error("expected a string or a token object, found \(f.value.kind)")
            }
            if byContent[ByteKey(content)] != nil { continue }
            guard let id = model.vocab[ByteKey(content)] else {
                throw f.error("\(StrictJSON.quote(content)) is neither in added_tokens_decoder nor in vocab.json")
            }
            byContent[ByteKey(content)] = id
            list.append(AddedToken(id: id, content: content, scalars: Array(content.unicodeScalars), special: true,
                                   lstrip: false, rstrip: false, normalized: false, singleWord: false))
        }
        return list
    }
}
