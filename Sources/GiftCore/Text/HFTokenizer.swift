import Foundation

/// A Hugging Face `tokenizer.json` (BPE model, byte-level or SentencePiece style), encoding and decoding
/// to the same ids and text as the `tokenizers` package. Components gift does not implement are refused
/// when the file is read, naming the file and the JSON path.
///
/// Pipeline, as HF runs it: added tokens that are not `normalized` are split out of the raw text
/// (leftmost-longest, with single_word/lstrip/rstrip), each remaining piece is normalized, normalized
/// added tokens are split out of that, the pre-tokenizer cuts the rest into words, BPE turns each word
/// into ids, and the post-processor adds the template's special tokens.
///
/// Implemented: model BPE (byte_fallback, ignore_merges, unk_token, fuse_unk, continuing_subword_prefix,
/// end_of_word_suffix; dropout must be null); normalizers NFC NFD NFKC NFKD Lowercase Replace Prepend Strip
/// Sequence; pre-tokenizers ByteLevel Split Digits Metaspace Punctuation Whitespace WhitespaceSplit
/// Sequence; post-processors TemplateProcessing ByteLevel Sequence; decoders ByteLevel Metaspace
/// ByteFallback Fuse Strip Replace Sequence. truncation and padding must be null. SlowBPEFiles builds the
/// same parts from Qwen2's and Dream's vocab.json + merges.txt + tokenizer_config.json.
///
/// Known differences from HF, all from Unicode data versions: gift classifies characters (letters,
/// numbers, whitespace, punctuation) and normalizes with the Swift runtime's and Foundation's Unicode
/// tables, newer than those compiled into `tokenizers` (its Punctuation uses Unicode 9-era categories, its
/// NFKC an older table, its regexes Unicode 14-16). Text with characters assigned or changed in newer
/// Unicode versions (e.g. U+061D, U+107A4, the Unicode 17 additions) can split differently.
public final class HFTokenizer: @unchecked Sendable {
    let source: String
    let normalizer: TextNormalizer?
    let preTokenizer: PreTokenizer?
    let model: BPEModel
    let postProcessor: PostProcessor?
    let decoder: TextDecoder?
    let added: AddedVocabulary
    public let vocabSize: Int

    public convenience init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw GiftError(.io, "\(path): cannot read") }
        try self.init(bytes: Array(data), source: path)
    }

    public convenience init(json: String, source: String) throws {
        try self.init(bytes: Array(json.utf8), source: source)
    }

    convenience init(bytes: [UInt8], source: String) throws {
        let root = try TJ.parse(bytes, source: source)
        _ = try root.object()
        for key in ["truncation", "padding"] {
            if let f = try root.field(key) { throw f.error("\(key) is not supported (expected null)") }
        }
        let normalizer = try root.field("normalizer").map(TextNormalizer.parse)
        let preTokenizer = try root.field("pre_tokenizer").map(PreTokenizer.parse)
        let model = try BPEModel(try root.require("model"))
        let postProcessor = try root.field("post_processor").map(PostProcessor.parse)
        let decoder = try root.field("decoder").map(TextDecoder.parse)
        let added = try AddedVocabulary(try root.field("added_tokens")?.array(), normalizer: normalizer)
        self.init(source: source, normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                  postProcessor: postProcessor, decoder: decoder, added: added)
    }

    /// The pipeline from its parts (a tokenizer.json's, or those SlowBPEFiles builds from vocab.json and merges.txt).
    init(source: String, normalizer: TextNormalizer?, preTokenizer: PreTokenizer?, model: BPEModel,
         postProcessor: PostProcessor?, decoder: TextDecoder?, added: AddedVocabulary) {
        self.source = source
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.added = added
        let maxID = max(model.idToToken.keys.max() ?? -1, added.tokens.keys.max() ?? -1)
        vocabSize = Int(maxID) + 1
    }

    /// The ids of `text`; with `addSpecialTokens` the post-processor's template (BOS and the like) is applied.
    /// Throws a GiftError naming the tokenizer.json field of a regex (Split, Replace) that exceeds its
    /// backtracking budget on `text` (where HF tokenizers fails the encode).
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int32] {
        var pieces = try added.extractAndNormalize(Array(text.unicodeScalars), normalizer: normalizer)
        try preTokenizer?.apply(&pieces)
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        for p in pieces {
            if let id = p.id { ids.append(id) } else { model.tokenize(p.s, into: &ids) }
        }
        if addSpecialTokens, let pp = postProcessor { ids = pp.process(ids) }
        return ids
    }

    /// The text of `ids` (unknown ids are left out, as HF does); with `skipSpecialTokens` special added
    /// tokens are left out too. Throws as `encode` does for a decoder's Replace regex.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws -> String {
        var tokens: [[Unicode.Scalar]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = token(of: id) else { continue }
            if skipSpecialTokens, added.special.contains(ByteKey(t)) { continue }
            tokens.append(Array(t.unicodeScalars))
        }
        guard let decoder else {
            var out: [Unicode.Scalar] = []
            for (i, t) in tokens.enumerated() {
                if i > 0 { out.append(" ") }
                out += t
            }
            return out.scalarText
        }
        return try decoder.chain(tokens).flatMap { $0 }.scalarText
    }

    /// The id of a token (an added token, else the model's vocabulary).
    public func id(of token: String) -> Int32? {
        let k = ByteKey(token)
        return added.byContent[k] ?? model.vocab[k]
    }

    /// The text of a token id (an added token's normalized form where it is normalized, as HF gives it).
    public func token(of id: Int32) -> String? {
        added.text(of: id) ?? model.idToToken[id]
    }
}
