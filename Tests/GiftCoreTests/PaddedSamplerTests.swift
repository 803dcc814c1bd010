import Foundation
import XCTest
@testable import GiftCore

/// d1's generate() in gift (`PaddedSampler`): left-padded batches, attended (as d1) or masked padding,
/// against an independent numpy float64 reference of d1's algorithm on the same model folder.
final class PaddedSamplerTests: XCTestCase {
    /// A small grouped-query model with weights large enough that its predictions are far from ties
    /// (so float32 and float64 pick the same tokens and the same order of confidences).
    let config = ModelConfig(dModel: 32, nHeads: 4, nKVHeads: 2, nLayers: 2, mlpHiddenSize: 48, vocabSize: 40,
                             maskTokenId: 39, eosTokenId: 38, padTokenId: 38)
    var params: FloatBuffer { ParameterLayout(config).initialize(seed: 11, std: 0.35) }
    let prompts: [[Int32]] = [[1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25, 26], [30, 31]]

    func options(batch: Int) -> SamplerOptions {
        SamplerOptions(genLength: 16, blockLength: 8, steps: 8, maxBatch: batch)
    }

    func sample(_ prompts: [[Int32]], attend: Bool, batch: Int? = nil, threshold: Double? = nil) throws -> [[Int32]] {
        try sampleCounting(prompts, attend: attend, batch: batch, threshold: threshold).0
    }

    func sampleCounting(_ prompts: [[Int32]], attend: Bool, batch: Int? = nil, threshold: Double? = nil,
                        cache: CacheMode = .none, config: ModelConfig? = nil) throws -> ([[Int32]], Int) {
        let c = config ?? self.config
        let s = try PaddedSampler(config: c, params: ParameterLayout(c).initialize(seed: 11, std: 0.35),
                                  options: options(batch: batch ?? prompts.count), padId: 38, attendPadding: attend, maxPromptLength: 9)
        s.threshold = threshold; s.cache = cache
        return (try s.generate(prompts), s.forwardPasses)
    }

    func testMatchesD1ReferenceWithAttendedAndMaskedPadding() throws {
        let dir = try temporaryDirectory(self)
        try ModelFolder.save(dir.path, config: config, parameters: params)
        let script = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/d1/generate_reference.py").path
        for (attend, threshold, cache) in [(true, nil, .none), (false, nil, .none), (false, 0.3, .none), (true, 0.9, .none),
                                           (false, nil, .prefix), (true, nil, .prefix), (false, 0.3, .prefix),
                                           (false, nil, .dual), (true, nil, .dual), (false, 0.3, .dual), (true, 0.9, .dual)]
                as [(Bool, Double?, CacheMode)] {
            let req = dir.appendingPathComponent("req.json")
            let body: [String: Any] = ["prompts": prompts.map { $0.map(Int.init) }, "gen_length": 16, "block_length": 8,
                                       "steps": 8, "pad_id": 38, "mask_padding": !attend, "threshold": threshold as Any? ?? NSNull(),
                                       "cache": cache.rawValue]
            try JSONSerialization.data(withJSONObject: body).write(to: req)
            let r = try runPython("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                  [script, dir.path, req.path])
            try XCTSkipIf(r.status != 0 && r.stderr.contains("No module named"), "numpy/safetensors missing: launch/test.sh installs them")
            XCTAssertEqual(r.status, 0, r.stderr)
            let ref = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let (got, forwards) = try sampleCounting(prompts, attend: attend, threshold: threshold, cache: cache)
            XCTAssertEqual(got.map { $0.map(Int.init) }, ref["outputs"] as? [[Int]],
                           "attend padding: \(attend), threshold \(threshold as Any), cache \(cache)")
            XCTAssertEqual(forwards, ref["forwards"] as? Int, "forward passes, threshold \(threshold as Any)")
            if threshold == nil { XCTAssertEqual(forwards, 8) }
            // the mask id may be predicted and committed (d1 does not forbid it); every position was decided
            XCTAssertEqual(got.map(\.count), [16, 16, 16, 16])
        }
    }

    /// Threshold 0 commits every candidate at once: one forward pass per block; threshold 1 (nothing is that
    /// sure) one position per step: a block takes its length in steps.
    func testThresholdBoundsTheForwardPasses() throws {
        XCTAssertEqual(try sampleCounting(prompts, attend: false, threshold: 0).1, 2)
        let (out, n) = try sampleCounting(prompts, attend: false, threshold: 1.01)
        XCTAssertEqual(n, 16)
        XCTAssertEqual(out.map(\.count), [16, 16, 16, 16])
    }

    /// Masked padding: a prompt's output is its output alone, whatever shares its batch, with or without a KV
    /// cache (the cache holds the padding's rows; the key mask leaves them out); attended padding changes it
    /// (the reason d1's numbers depend on the batch).
    func testMaskedPaddingIsIndependentOfTheBatch() throws {
        for cache in CacheMode.allCases {
            let together = try sampleCounting(prompts, attend: false, cache: cache).0
            for (i, p) in prompts.enumerated() {
                XCTAssertEqual(try sampleCounting([p], attend: false, batch: 4, cache: cache).0, [together[i]], "prompt \(i), cache \(cache)")
            }
            let attended = try sampleCounting(prompts, attend: true, cache: cache).0
            XCTAssertEqual(attended[1], together[1], "the longest prompt has no padding, cache \(cache)")
            XCTAssertNotEqual(attended, together, "padding attended to changes the shorter prompts' outputs, cache \(cache)")
        }
    }

    /// In a one-layer model the keys and values are functions of the token ids and positions alone, and a
    /// block's steps change only the block's ids: there the caches are exact, so the dual cache (only the block
    /// runs) gives the prefix cache's ids (the block and everything after it runs), in both families (Dream:
    /// the window starts one row before the block). The two caches differ with two layers (the suffix's keys
    /// and values then depend on the block: the approximation is real, and this test would see a window that
    /// leaves out a row it needs).
    func testDualCacheIsExactWhereKeysDependOnTokensAlone() throws {
        for family in [ModelFamily.llada, .dream] {
            for layers in [1, 2] {
                let c = ModelConfig(dModel: 32, nHeads: 4, nKVHeads: 2, nLayers: layers, mlpHiddenSize: 48, vocabSize: 40,
                                    maskTokenId: 39, eosTokenId: 38, padTokenId: 38, family: family)
                for threshold in [nil, 0.3] as [Double?] {
                    let prefix = try sampleCounting(prompts, attend: false, threshold: threshold, cache: .prefix, config: c)
                    let dual = try sampleCounting(prompts, attend: false, threshold: threshold, cache: .dual, config: c)
                    if layers == 1 {
                        XCTAssertEqual(dual.0, prefix.0, "\(family), threshold \(threshold as Any)")
                        XCTAssertEqual(dual.1, prefix.1, "\(family): forward passes")
                    } else if threshold == nil {
                        XCTAssertNotEqual(dual.0, prefix.0, "\(family): two layers, the dual cache's suffix is stale")
                    }
                }
            }
        }
    }

    /// --dtype bf16: the folder read a block at a time into a bf16 store holds the same bits as the whole
    /// model rounded at once, and sampling from it gives the ids of fp32 weights holding the bf16 values.
    func testBF16StoreFromAFolderSamplesAsTheRoundedWeights() throws {
        let dir = try temporaryDirectory(self)
        try ModelFolder.save(dir.path, config: config, parameters: params)
        let (c, store) = try BF16BaseStore.load(dir.path)
        XCTAssertEqual(c, config)
        let p = params
        let whole = try withExtendedLifetime(p) { try BF16BaseStore(config: config, from: p.pointer) }
        let a = store.materialize(), b = whole.materialize()
        XCTAssertEqual(a.count, b.count)
        XCTAssertTrue(memcmp(a.pointer, b.pointer, a.count * 4) == 0, "the store read a block at a time differs from the whole model rounded")
        let fromStore = try PaddedSampler(config: config, store: store, options: options(batch: 4), padId: 38, attendPadding: false,
                                          maxPromptLength: 9).generate(prompts)
        let fromRounded = try PaddedSampler(config: config, params: b, options: options(batch: 4), padId: 38, attendPadding: false,
                                            maxPromptLength: 9).generate(prompts)
        XCTAssertEqual(fromStore, fromRounded)
    }

    /// `gift generate --cache prefix|dual --threshold P` samples with the padded sampler and those switches (the
    /// same ids as in process); a cache gift does not have is refused by name.
    func testGenerateTakesTheFastSwitches() throws {
        let dir = try temporaryDirectory(self)
        try ModelFolder.save(dir.path, config: config, parameters: params)
        let file = dir.appendingPathComponent("p.jsonl")
        try prompts.map { "{\"prompt_ids\": [\($0.map(String.init).joined(separator: ", "))]}" }.joined(separator: "\n")
            .write(to: file, atomically: true, encoding: .utf8)
        let args = ["generate", "--model", dir.path, "--prompts", file.path, "--gen-length", "16", "--block-length", "8",
                    "--steps", "8", "--batch", "4", "--json"]
        for cache in [CacheMode.prefix, .dual] {
            let r = try runGift(args + ["--cache", cache.rawValue, "--threshold", "0.3"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let got = try r.stdout.split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["output_ids"] as! [Int]
            }
            let want = try sampleCounting(prompts, attend: false, threshold: 0.3, cache: cache).0
            XCTAssertEqual(got, want.map { $0.map(Int.init) }, "\(cache)")
        }
        let bad = try runGift(args + ["--cache", "full"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--cache must be one of none, prefix, dual, not 'full'"), bad.stderr)
    }

    func testRefusesWhatItWasNotMadeFor() throws {
        let s = try PaddedSampler(config: config, params: params, options: options(batch: 2), padId: 38, attendPadding: false,
                                  maxPromptLength: 9)
        XCTAssertThrowsError(try s.generate(Array(prompts.prefix(3)))) { XCTAssertTrue("\($0)".contains("3 prompts in one batch"), "\($0)") }
        XCTAssertThrowsError(try s.generate([[1, 40]])) { XCTAssertTrue("\($0)".contains("token id 40"), "\($0)") }
        XCTAssertThrowsError(try s.generate([[Int32](repeating: 1, count: 10)])) { XCTAssertTrue("\($0)".contains("10 tokens"), "\($0)") }
        XCTAssertThrowsError(try PaddedSampler(config: config, params: params, options: options(batch: 2), padId: 40,
                                               attendPadding: false, maxPromptLength: 9))
    }
}
