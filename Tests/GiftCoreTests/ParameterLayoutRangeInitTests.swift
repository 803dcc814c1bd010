import Foundation
import XCTest
@testable import GiftCore

/// `ParameterLayout.initialize(seed:std:range:)`: a slice of a fresh model, bit-equal to the same slice
/// of the full initialisation, for rank splits and ranges that start and end inside tensors.
final class ParameterLayoutRangeInitTests: XCTestCase {
    func testSlicesEqualFullInitialisation() throws {
        for (preset, std) in [("tiny", 0.02), ("mini", 0.05)] {
            let layout = ParameterLayout(try ModelConfig.preset(preset))
            let full = layout.initialize(seed: 7, std: std)
            let n = layout.count
            var ranges: [Range<Int>] = [0..<n, 0..<0, n..<n, (n - 1)..<n]
            for parts in [2, 3, 4, 7] { ranges += shardRanges(count: n, parts: parts) }
            let norm = layout.tensors[1]                          // block 0's attn_norm: ones
            ranges += [(norm.offset - 3)..<(norm.offset + 5), (norm.offset + 2)..<(norm.offset + 9)]
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<10 {
                let a = Int.random(in: 0...n, using: &rng), b = Int.random(in: 0...n, using: &rng)
                ranges.append(min(a, b)..<max(a, b))
            }
            for r in ranges {
                let part = layout.initialize(seed: 7, std: std, range: r)
                XCTAssertEqual(part.count, r.count)
                if !r.isEmpty {
                    XCTAssertEqual(memcmp(part.pointer, full.pointer + r.lowerBound, r.count * 4), 0, "\(preset) \(r)")
                }
            }
            // A different seed is a different model (the comparison above can fail).
            let other = layout.initialize(seed: 8, std: std, range: 0..<1000)
            XCTAssertNotEqual(memcmp(other.pointer, full.pointer, 4000), 0)
        }
    }
}
