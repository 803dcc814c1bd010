import Foundation
import XCTest
@testable import GiftCore

/// Sampling lanes (`SamplingLanes`, `LaneSampler`, the exact sampler's lanes): a batch split into groups
/// sampled at once gives every prompt the ids it gets from the whole batch on one lane, for each sampler
/// and its switches. The prompts differ in length, so a lane that padded only to its own longest prompt
/// would change the outputs under d1's attended padding (and the positions under masked padding).
final class SamplingLanesTests: XCTestCase {
    let config = ModelConfig(dModel: 32, nHeads: 4, nKVHeads: 2, nLayers: 2, mlpHiddenSize: 48, vocabSize: 40,
                             maskTokenId: 39, eosTokenId: 38, padTokenId: 38)
    let prompts: [[Int32]] = [[1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25, 26], [30, 31],
                              [3, 1, 4, 1, 5, 9, 2]]

    func options(lanes: Int, temperature: Double = 0) -> SamplerOptions {
        var o = SamplerOptions(genLength: 16, blockLength: 8, steps: 8, temperature: temperature, seed: 5, maxBatch: prompts.count)
        o.lanes = lanes
        return o
    }

    func testLaneCountRule() {
        XCTAssertEqual(SamplingLanes.count(requested: 3, batch: 8, residentWeights: true), 3)
        XCTAssertEqual(SamplingLanes.count(requested: 3, batch: 2, residentWeights: true), 2, "never more lanes than prompts")
        XCTAssertEqual(SamplingLanes.count(requested: 0, batch: 8, residentWeights: true), min(8, Parallel.workers))
        XCTAssertEqual(SamplingLanes.count(requested: 4, batch: 8, residentWeights: false), 1, "a weight store or gathers: one lane")
        XCTAssertEqual(SamplingLanes.split(5, groups: 2), [0..<2, 2..<5])
        XCTAssertThrowsError(try options(lanes: -1).validate())
    }

    /// d1's sampler with attended and masked padding, Fast-dLLM's threshold and caches.
    func testPaddedSamplerLanesEqualOneLane() throws {
        let params = ParameterLayout(config).initialize(seed: 11, std: 0.35)
        for (attend, threshold, cache) in [(true, nil, .none), (false, nil, .none), (false, 0.3, .none), (true, nil, .dual),
                                           (false, 0.3, .prefix)] as [(Bool, Double?, CacheMode)] {
            var outs: [[[Int32]]] = []
            for lanes in [1, 2, 3] {
                let s = try SamplingLanes.sampler(options: options(lanes: lanes), weights: .fp32(params)) { o in
                    let p = try PaddedSampler(config: config, params: params, options: o, padId: 38, attendPadding: attend,
                                              maxPromptLength: 9)
                    p.threshold = threshold; p.cache = cache
                    return p
                }
                XCTAssertEqual(s is LaneSampler, lanes > 1)
                outs.append(try s.generate(prompts))
            }
            let what = "attend \(attend), threshold \(threshold as Any), cache \(cache)"
            XCTAssertEqual(outs[1], outs[0], "2 lanes: " + what)
            XCTAssertEqual(outs[2], outs[0], "3 lanes: " + what)
        }
        // the case the batch's padding guards: a short prompt alone differs under attended padding
        let alone = try PaddedSampler(config: config, params: params, options: options(lanes: 1), padId: 38, attendPadding: true,
                                      maxPromptLength: 9).generate([prompts[3]])
        let batched = try PaddedSampler(config: config, params: params, options: options(lanes: 1), padId: 38, attendPadding: true,
                                        maxPromptLength: 9).generate(prompts)
        XCTAssertNotEqual(alone[0], batched[3], "attended padding changes the output of a prompt with padding")
    }

    func testDreamSamplerLanesEqualOneLane() throws {
        let (c, params) = try DreamSamplerTests.model()
        var outs: [[[Int32]]] = []
        for lanes in [1, 2] {
            let s = try SamplingLanes.sampler(options: options(lanes: lanes, temperature: 0.8), weights: .fp32(params)) { o in
                try DreamSampler(config: c, params: params, options: o, dream: DreamSettings(alg: .entropy), maxPromptLength: 9)
            }
            outs.append(try s.generate(prompts))
        }
        XCTAssertEqual(outs[1], outs[0])
    }

    /// LLaDA's exact sampler groups prompts by length; its lanes split each group, at temperature 0 and with
    /// draws (keyed by prompt, so a lane draws what the whole batch would).
    func testExactSamplerLanesEqualOneLane() throws {
        let params = ParameterLayout(config).initialize(seed: 11, std: 0.35)
        let many = prompts + [[5, 6, 7, 8, 9], [9, 8, 7, 6, 5], [1, 1, 2, 3, 5]]
        for temperature in [0, 0.7] {
            var outs: [[[Int32]]] = []
            for lanes in [1, 2, 3] {
                var o = options(lanes: lanes, temperature: temperature)
                o.maxBatch = 4
                let s = try Sampler(config: config, params: params, options: o)
                XCTAssertEqual(s.laneCount(batch: 4), lanes)
                outs.append(try s.generate(many))
            }
            XCTAssertEqual(outs[1], outs[0], "2 lanes, temperature \(temperature)")
            XCTAssertEqual(outs[2], outs[0], "3 lanes, temperature \(temperature)")
        }
    }
}
