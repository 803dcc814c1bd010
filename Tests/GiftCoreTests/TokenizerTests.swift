import Foundation
import XCTest
@testable import GiftCore

/// HFTokenizer against the `tokenizers` package itself: Fixtures/tokenizers/reference.py trains a small
/// tokenizer per configuration, writes its tokenizer.json and prints what `tokenizers` makes of the corpus
/// below; every line's ids and decoded text must be identical here.
final class TokenizerTests: XCTestCase {
    static let referenceScript = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/tokenizers/reference.py")

    /// Text the tokenizers are trained on and checked with.
    static let trainLines: [String] = [
        "The quick brown fox jumps over the lazy dog. The dog didn't care; it's a lazy one.",
        "I'm sure they'll say it's fine, but we'd've done it differently. You're right, we've seen worse.",
        "DON'T SHOUT! IT'S LOUD. THEY'LL HEAR YOU'RE HERE AND WE'VE GOT NO TIME.",
        "Numbers: 0 1 12 123 1234 12345 123456 3.14159 2,718,281 1e-9 -42 +7 0x1F 007.",
        "Phone 555-1234, call 1234567890 ext. 42 before 12:30 on 2024-05-06.",
        "東京は日本の首都です。京都は古い都です。大阪は食べ物がおいしい。",
        "我爱北京天安门，天安门上太阳升。中文没有空格。",
        "한국어 텍스트입니다. 안녕하세요, 세계!",
        "مرحبا بالعالم، كيف حالك اليوم؟ أنا بخير شكرا.",
        "שלום עולם, מה שלומך?",
        "Привет, мир! Как дела? Всё хорошо, спасибо.",
        "Ελληνικά: Καλημέρα κόσμε, ΣΊΣΥΦΟΣ και σοφία.",
        "café, naïve, résumé, über, Ångström, São Paulo, Zürich, façade.",
        "cafe\u{301} nai\u{308}ve re\u{301}sume\u{301} u\u{308}ber A\u{30A}ngstro\u{308}m",
        "Emoji: 👋🏽 hello 👨‍👩‍👧‍👦 family 🏳️‍🌈 flag ❤️‍🔥 heart 🇯🇵 Japan 😀😃😄",
        "func twice(_ x: Int) -> Int {\n    return x * 2\n}\n",
        "for (int i = 0; i < 10; i++) {\n\tprintf(\"%d\\n\", i);\n}",
        "def f(a, b=3, *args, **kw):\n    return {'a': a, \"b\": b}  # comment\n",
        "    indented    code\t\ttabs\t and   runs     of    spaces",
        "line one\nline two\n\nline four\n\n\n\nline eight",
        "windows\r\nline\r\nendings\r\n\r\n",
        "Full-width: ＡＢＣ １２３ ｶﾀｶﾅ and ligatures ﬁ ﬂ ㎏ ① Ⅻ ½",
        "İstanbul, DİYARBAKIR, straße, STRASSE, ǅ ǈ",
        "Quotes: ‘single’ “double” «guillemets» „low“ and `ticks` ``double ticks''",
        "Punctuation!!! Really??? Yes... --- (((nested))) [[brackets]] {{braces}} <<angles>>",
        "snake_case_name camelCaseName kebab-case-name SCREAMING_CASE x86_64",
        "https://example.com/path?query=1&other=two#frag user@example.org",
        "Hello world hello world HELLO WORLD hello, world! helloworld worldwide",
        "Zebra zebra ZEBRA zebras wörld world",
        "The year 1999 and 2000; prices $5.99, €10, ¥1000, £3.50.",
        "Tabs\tseparated\tvalues\there\tand\tthere",
        "Mixed scripts: Latin Кириллица Ελληνικά 漢字 かな カナ ไทย हिन्दी",
        "हिन्दी भाषा बहुत सुंदर है।",
        "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
        "Математика: ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷ → ⇒ ∀ ∃",
        "it's it’s IT'S It'S 'tis 're 've 'll 'd 'm 's 't",
    ]

    /// Lines only checked (not trained on), with the special and added tokens of the configurations inline.
    static let extraLines: [String] = [
        "", " ", "  ", "\t", "\n", "\n\n", " \n ", "a", "'s", "''", "'", "x'ſ y'Ｓ z'S",
        "  leading and trailing  ", "trailing space ", " leading space",
        "<|begin_of_text|>Hello<|eot_id|>", "<|begin_of_text|><|begin_of_text|> x <|end_of_text|>",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "<s>Hi</s> <s> spaced </s>", "</s>", "<unk> is not unknown",
        "<|endoftext|>start", "a<|sep|>b <|sep|>x <|sep|>xy   <|sep|>x",
        "a <lstrip> b   <lstrip>c<lstrip>", "a <rstrip>   b <rstrip>", "x   <both>   y",
        "hello world hellohello ahello hello_ hello, (hello) 'hello'",
        "world! wor world worldly world!!",
        "[CLS] text [SEP] [MASK]  [MASK] x[MASK]", "[Mixed] [mixed] [MIXED]", "Zebra ZEBRA zebra zeBra",
        "wörld WÖRLD xwörld wörldx", "WO\u{308}RLD",
        "Unseen: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ☃ ⌘ ⏳ 🦄 🧑🏿‍🚀 ꙮ 𓀀",
        "\u{00A0}nbsp\u{2003}emspace\u{3000}ideographic\u{0085}nel\u{200B}zwsp\u{2028}ls",
        "\u{0007}bell\u{001F}unit\u{007F}del",
        "e\u{301}\u{301}\u{301} stacked  a\u{20DD} enclosed",
        "ΣΊΣΥΦΟΣ ΌΣΟΣ",
        "12345678901234567890 ١٢٣٤٥ ٣.١٤ १२३ ①②③",
        "    \n    \n\t\t\n  x  \n",
        "---...,,,---", "a-b--c---d 1.2.3 4,5,6 A,B.C-D ABC DEF",
        "The quick brown fox jumps over the lazy dog.",
    ]

    /// Random strings over a pool of awkward characters and fragments (fixed seed).
    static let fuzzLines: [String] = {
        let pool: [String] = [
            "a", "b", "Z", "é", "e\u{301}", "\u{301}", "\u{308}", "ſ", "İ", "Σ", "ß", "ﬁ", "Ａ", "１", "½", "٣", "東", "京",
            "한", "م", "ا", "😀", "👨", "\u{200D}", "🏽", "🇯", "🇵", "\u{FE0F}", " ", " ", " ", "  ", "\t", "\n", "\r", "\r\n",
            "\u{A0}", "\u{3000}", "\u{85}", "\u{2028}", "\u{200B}", "'", "'s", "'S", "'ll", "'Re", "’", "\"", "`", "``", ".", ",",
            "-", "--", "!", "?", "(", ")", "_", "$", "0", "7", "42", "1234", "hello", "world", "Zebra", "wörld", "the", "THE",
            "<s>", "</s>", "<|sep|>", "<|sep|>x", "<lstrip>", "<rstrip>", "<both>", "[MASK]", "[Mixed]", "<|begin_of_text|>",
            "<|eot_id|>", "<|im_start|>", "<0x41>", "▁", "##", "</w>", "\u{7}", "\u{7F}", "𝔘", "ꙮ",
        ]
        var state: UInt64 = 12345
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        return (0..<160).map { _ in (0..<(1 + next() % 14)).map { _ in pool[next() % pool.count] }.joined() }
    }()

    static var evalLines: [String] { trainLines + extraLines + fuzzLines }

    struct Reference {
        var path: String
        var vocabSize: Int
        var encode: [[Int32]]
        var encodePlain: [[Int32]]
        var decode: [String]
        var decodeSkip: [String]
        var random: [[Int32]]
        var randomDecode: [String]
        var randomDecodeSkip: [String]
        var tokens: [String?]
    }

    static func ids(_ v: StrictJSON) -> [[Int32]] {
        guard case .array(let a) = v else { return [] }
        return a.map { row in
            guard case .array(let r) = row else { return [] }
            return r.map { Int32($0.intValue ?? -99) }
        }
    }

    static func strings(_ v: StrictJSON) -> [String?] {
        guard case .array(let a) = v else { return [] }
        return a.map { if case .string(let s) = $0 { return s }; return nil }
    }

    /// Trains and runs the reference for one configuration (skips when `tokenizers` is not installed).
    func reference(_ config: String, in dir: URL) throws -> Reference {
        let corpus = "{\"train\": [" + Self.trainLines.map(StrictJSON.quote).joined(separator: ",") + "], \"eval\": ["
            + Self.evalLines.map(StrictJSON.quote).joined(separator: ",") + "]}"
        try corpus.write(to: dir.appendingPathComponent("corpus.json"), atomically: true, encoding: .utf8)
        let script = try String(contentsOf: Self.referenceScript, encoding: .utf8)
        let res = try runPython(script, [config, dir.path])
        if res.status != 0 && res.stderr.contains("No module named") {
            print("TokenizerTests: skipped, the Python package is missing: \(res.stderr.suffix(200))")
            throw XCTSkip("python tokenizers missing (GIFT_PYTHON=/tmp/gift-test-venv/bin/python or launch/test.sh installs it)")
        }
        guard res.status == 0 else { throw GiftError(.io, "reference.py \(config) failed: \(res.stderr.suffix(2000))") }
        guard case .object(let o) = try StrictJSON.parse(Array(res.stdout.utf8)) else { throw GiftError(.format, "reference output") }
        func s(_ k: String) -> [String] { Self.strings(o[k] ?? .null).map { $0 ?? "<null>" } }
        guard case .string(let path) = o["path"] ?? .null else { throw GiftError(.format, "reference path") }
        return Reference(path: path, vocabSize: o["vocab_size"]?.intValue ?? -1, encode: Self.ids(o["encode"] ?? .null),
                         encodePlain: Self.ids(o["encode_plain"] ?? .null), decode: s("decode"), decodeSkip: s("decode_skip"),
                         random: Self.ids(o["random"] ?? .null), randomDecode: s("random_decode"),
                         randomDecodeSkip: s("random_decode_skip"), tokens: Self.strings(o["tokens"] ?? .null))
    }

    static func show(_ s: String) -> String { StrictJSON.quote(s) }

    /// Every line's ids and text, random-id decoding and the id <-> token tables.
    func check(_ config: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try temporaryDirectory(self)
        let ref = try reference(config, in: dir)
        let tok = try HFTokenizer(path: ref.path)
        let lines = Self.evalLines
        XCTAssertEqual(ref.encode.count, lines.count, file: file, line: line)
        XCTAssertEqual(tok.vocabSize, ref.vocabSize, "\(config): vocabSize", file: file, line: line)
        var failures = 0
        for (i, text) in lines.enumerated() where i < ref.encode.count {
            let ids = try tok.encode(text)
            let plain = try tok.encode(text, addSpecialTokens: false)
            let dec = try tok.decode(ref.encode[i])
            let decSkip = try tok.decode(ref.encode[i], skipSpecialTokens: true)
            // compared scalar by scalar: String's == would take canonically equivalent text for equal
            let ok = ids == ref.encode[i] && plain == ref.encodePlain[i]
                && Array(dec.unicodeScalars) == Array(ref.decode[i].unicodeScalars)
                && Array(decSkip.unicodeScalars) == Array(ref.decodeSkip[i].unicodeScalars)
            if !ok {
                failures += 1
                if failures <= 8 {
                    XCTFail("""
                        \(config) line \(i) \(Self.show(text)):
                          ids    swift \(ids)
                                 hf    \(ref.encode[i])
                          plain  swift \(plain)
                                 hf    \(ref.encodePlain[i])
                          decode swift \(Self.show(dec)) / skip \(Self.show(decSkip))
                                 hf    \(Self.show(ref.decode[i])) / skip \(Self.show(ref.decodeSkip[i]))
                        """, file: file, line: line)
                }
            }
        }
        for (k, ids) in ref.random.enumerated() where k < ref.randomDecode.count {
            let a = try tok.decode(ids), b = try tok.decode(ids, skipSpecialTokens: true)
            if Array(a.unicodeScalars) != Array(ref.randomDecode[k].unicodeScalars)
                || Array(b.unicodeScalars) != Array(ref.randomDecodeSkip[k].unicodeScalars) {
                failures += 1
                if failures <= 12 {
                    XCTFail("\(config) random ids \(ids): swift \(Self.show(a)) / \(Self.show(b)), hf \(Self.show(ref.randomDecode[k])) / \(Self.show(ref.randomDecodeSkip[k]))",
                            file: file, line: line)
                }
            }
        }
        var tokenMismatches: [String] = []
        for (id, t) in ref.tokens.enumerated() {
            let mine = tok.token(of: Int32(id))
            if mine.map({ Array($0.unicodeScalars) }) != t.map({ Array($0.unicodeScalars) }) {
                tokenMismatches.append("\(id): swift \(mine.map(Self.show) ?? "nil") hf \(t.map(Self.show) ?? "nil")")
            }
            if let t, let back = tok.id(of: t), back != Int32(id), tok.token(of: back) != t {
                tokenMismatches.append("id(of: \(Self.show(t))) = \(back), expected \(id)")
            }
        }
        XCTAssertTrue(tokenMismatches.isEmpty, "\(config) token table: \(tokenMismatches.prefix(10))", file: file, line: line)
        XCTAssertEqual(failures, 0, "\(config): \(failures) mismatches", file: file, line: line)
    }

    func testLlama3ByteLevel() throws { try check("llama3") }
    func testQwen2ByteLevelNFC() throws { try check("qwen2") }
    func testGPT2ByteLevelAddedTokenFlags() throws { try check("gpt2") }
    func testSentencePieceByteFallback() throws { try check("sentencepiece") }
    func testMetaspaceFirst() throws { try check("metaspace") }
    func testNormalizerSequencePunctuationDigits() throws { try check("normseq") }
    func testSplitBehaviours() throws { try check("splits") }
    func testSubwordPrefixSuffix() throws { try check("subword") }
    func testMetaspaceAlwaysNoSplitNFKC() throws { try check("metaspace_always") }
    func testByteLevelPiecesRegexFallback() throws { try check("bytelevel_pieces") }

    /// Speed on ~2 MB of text (a measurement printed, not an assertion), with HF's own speed on the same
    /// lines and the same ids (hash) as a larger correctness check.
    func testEncodeSpeed() throws {
        let dir = try temporaryDirectory(self)
        let ref = try reference("llama3", in: dir)
        let tok = try HFTokenizer(path: ref.path)
        // words drawn from the corpus, with numbers and punctuation, ~80 characters a line
        // (split by scalars: "\r\n" is one Character, and no line may hold a "\n")
        let words = Self.evalLines.joined(separator: " ").unicodeScalars.split(whereSeparator: { $0 == " " || $0 == "\n" })
            .map { String(String.UnicodeScalarView($0)) }
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        var lines: [String] = []
        var total = 0
        while total < 2_000_000 {
            var l = ""
            while l.count < 80 {
                let w = next() % 10 == 0 ? String(next() % 100_000) : words[next() % words.count]
                l += (l.isEmpty ? "" : (next() % 7 == 0 ? "  " : " ")) + w
            }
            lines.append(l)
            total += l.count
        }
        let textFile = dir.appendingPathComponent("speed.txt")
        try lines.joined(separator: "\n").write(to: textFile, atomically: true, encoding: .utf8)
        let chars = lines.reduce(0) { $0 + $1.unicodeScalars.count }
        let t0 = Date()
        var hash: UInt64 = 0, count = 0
        let m: UInt64 = 2305843009213693951
        func step(_ h: UInt64, _ add: UInt64) -> UInt64 {
            let p = h.multipliedFullWidth(by: 1000003)
            let (hi, lo) = p.low.addingReportingOverflow(add)
            return m.dividingFullWidth((p.high + (lo ? 1 : 0), hi)).remainder
        }
        var perLine: [Int] = []
        for l in lines {
            let ids = try tok.encode(l, addSpecialTokens: false)
            perLine.append(ids.count)
            count += ids.count
            for i in ids { hash = step(hash, UInt64(i) + 1) }
            hash = step(hash, 7)
        }
        let dt = Date().timeIntervalSince(t0)
        let script = try String(contentsOf: Self.referenceScript, encoding: .utf8)
        let res = try runPython(script, ["speed", ref.path, textFile.path])
        XCTAssertEqual(res.status, 0, res.stderr)
        guard case .object(let o) = try StrictJSON.parse(Array(res.stdout.utf8)) else { return XCTFail("speed output") }
        func seconds(_ k: String) -> Double { Double({ if case .number(let t) = o[k] ?? .null { return t }; return "0" }()) ?? 0 }
        let hf = seconds("seconds")
        print(String(format: "TokenizerTests speed (Llama-3 pipeline): gift %.2f M chars/s (%d chars, %.2f s, one thread); "
                     + "HF tokenizers %.2f M chars/s (%.2f s, Tokenizer.encode line by line from Python)",
                     Double(chars) / dt / 1e6, chars, dt, Double(chars) / hf / 1e6, hf))
        XCTAssertEqual(o["count"]?.intValue, count, "same number of ids as HF on the speed text")
        let hfLines = Self.ids(.array([o["lines"] ?? .null])).first ?? []
        XCTAssertEqual(hfLines.count, lines.count, "HF read as many lines")
        if let k = zip(hfLines, perLine).enumerated().first(where: { Int($0.element.0) != $0.element.1 })?.offset {
            XCTFail("speed text line \(k) \(Self.show(lines[k])): gift \((try? tok.encode(lines[k], addSpecialTokens: false)) ?? []), HF \(hfLines[k]) ids")
        }
        XCTAssertEqual(o["hash"].flatMap { if case .number(let t) = $0 { return UInt64(t) }; return nil }, hash,
                       "same ids as HF on the speed text")
    }

    // MARK: refusals (no Python needed)

    static let minimal = """
        {"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":3,"content":"<s>","single_word":false,\
        "lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":NORM,"pre_tokenizer":null,\
        "post_processor":POST,"decoder":null,"model":{"type":"BPE","dropout":null,"unk_token":null,\
        "continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,\
        "ignore_merges":false,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}
        """

    static func minimal(normalizer: String = "null", post: String = "null") -> String {
        minimal.replacingOccurrences(of: "NORM", with: normalizer).replacingOccurrences(of: "POST", with: post)
    }

    func testMinimalByHand() throws {
        let t = try HFTokenizer(json: Self.minimal(), source: "minimal.json")
        XCTAssertEqual(try t.encode("abab"), [2, 2])
        XCTAssertEqual(try t.encode("ab<s>ba"), [2, 3, 1, 0])
        XCTAssertEqual(try t.encode("abc"), [2], "no unk token: unknown characters are dropped, as HF does")
        XCTAssertEqual(try t.decode([2, 3, 1, 0]), "ab <s> b a", "no decoder: tokens joined by spaces")
        XCTAssertEqual(try t.decode([2, 3, 1, 99], skipSpecialTokens: true), "ab b")
        XCTAssertEqual(t.vocabSize, 4)
        XCTAssertEqual(t.id(of: "<s>"), 3)
        XCTAssertEqual(t.id(of: "ab"), 2)
        XCTAssertNil(t.id(of: "ba"))
        XCTAssertEqual(t.token(of: 3), "<s>")
        XCTAssertNil(t.token(of: 4))
        let n = try HFTokenizer(json: Self.minimal(normalizer: #"{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"}]}"#,
                                                   post: #"{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[3],"tokens":["<s>"]}}}"#),
                                source: "n.json")
        XCTAssertEqual(try n.encode("ＡB"), [3, 2])
        XCTAssertEqual(try n.encode("ＡB", addSpecialTokens: false), [2])
    }

    func refusal(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try HFTokenizer(json: json, source: "bad/tokenizer.json")
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch let e as GiftError {
            XCTAssertTrue(e.message.hasPrefix("bad/tokenizer.json: "), e.message, file: file, line: line)
            return e.message
        } catch {
            XCTFail("not a GiftError: \(error)", file: file, line: line)
            return ""
        }
    }

    func testRefusals() throws {
        var m = refusal(#"{"version": "1.0", "model": {"type": "BPE",, "vocab": {}}}"#)
        XCTAssertTrue(m.contains("not valid JSON") && m.contains("byte 43") && m.contains("line 1"), m)
        m = refusal("{\n  \"version\": \"1.0\",\n  \"model\": {\"type\": \"BPE\" \"vocab\": {}}\n}")
        XCTAssertTrue(m.contains("line 3"), m)
        let full = Self.minimal()
        m = refusal(String(full.prefix(full.count / 2)))
        XCTAssertTrue(m.contains("not valid JSON") && m.contains("end of input"), m)
        m = refusal(Self.minimal(normalizer: #"{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Frobnicate"}]}"#))
        XCTAssertTrue(m.contains("normalizer.normalizers[1].type") && m.contains("'Frobnicate'"), m)
        m = refusal(Self.minimal(normalizer: #"{"type":"BertNormalizer","clean_text":true}"#))
        XCTAssertTrue(m.contains("normalizer.type") && m.contains("BertNormalizer"), m)
        m = refusal(Self.minimal(post: #"{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0]}"#))
        XCTAssertTrue(m.contains("post_processor.type") && m.contains("RobertaProcessing"), m)
        m = refusal(Self.minimal(post: #"{"type":"BertProcessing","sep":["</s>",2],"cls":["<s>",0]}"#))
        XCTAssertTrue(m.contains("post_processor.type") && m.contains("BertProcessing"), m)
        m = refusal(full.replacingOccurrences(of: #""pre_tokenizer":null"#,
                                              with: #""pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"BertPreTokenizer"}]}"#))
        XCTAssertTrue(m.contains("pre_tokenizer.pretokenizers[0].type") && m.contains("BertPreTokenizer"), m)
        m = refusal(full.replacingOccurrences(of: #""decoder":null"#, with: #""decoder":{"type":"WordPiece","prefix":"@@"}"#))
        XCTAssertTrue(m.contains("decoder.type") && m.contains("WordPiece"), m)
        m = refusal(full.replacingOccurrences(of: #""type":"BPE""#, with: #""type":"Unigram""#))
        XCTAssertTrue(m.contains("model.type") && m.contains("Unigram"), m)
        m = refusal(full.replacingOccurrences(of: #""merges":["a b"]"#, with: #""merges":["a c"]"#))
        XCTAssertTrue(m.contains("model.merges[0]") && m.contains("\"c\""), m)
        m = refusal(full.replacingOccurrences(of: #""dropout":null"#, with: #""dropout":0.1"#))
        XCTAssertTrue(m.contains("model.dropout"), m)
        m = refusal(full.replacingOccurrences(of: #""truncation":null"#, with: #""truncation":{"max_length":5}"#))
        XCTAssertTrue(m.contains("truncation"), m)
        // a file that cannot be read names the file
        XCTAssertThrowsError(try HFTokenizer(path: "/nonexistent/tokenizer.json")) {
            XCTAssertTrue(($0 as? GiftError)?.message.contains("/nonexistent/tokenizer.json") == true)
        }
        // the file path is what errors name
        let dir = try temporaryDirectory(self)
        let p = dir.appendingPathComponent("tokenizer.json")
        try String(full.prefix(100)).write(to: p, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HFTokenizer(path: p.path)) {
            XCTAssertTrue(($0 as? GiftError)?.message.hasPrefix(p.path + ": not valid JSON") == true, "\($0)")
        }
    }
}
