import Foundation
import XCTest
@testable import GiftCore

final class DataBatchingTests: XCTestCase {
    func testPadding() {
        let a = Example(prompt: [1, 2], response: [3], line: 1)
        let b = Example(prompt: [4], response: [5, 6, 7, 8], line: 2)
        let s = Batching.pad([(a, 10), (b, 11)], eos: 62)
        var want = [PaddedSequence(tokens: [1, 2, 3, 62, 62], promptLength: 2, exampleIndex: 10),
                    PaddedSequence(tokens: [4, 5, 6, 7, 8], promptLength: 1, exampleIndex: 11)]
        want[0].contentLength = 3; want[1].contentLength = 5   // where the padding starts (--pad-loss off)
        XCTAssertEqual(s, want)
        let t = Batching.pad([(a, 0), (b, 1)], eos: 62, toLength: 7)
        XCTAssertEqual(t.map(\.tokens), [[1, 2, 3, 62, 62, 62, 62], [4, 5, 6, 7, 8, 62, 62]])
        XCTAssertEqual(t.map(\.promptLength), [2, 1])
        let m = Batching.pad([(a, 0), (b, 1)], eos: 62, minEOS: 1)
        XCTAssertEqual(m.map(\.tokens), [[1, 2, 3, 62, 62, 62], [4, 5, 6, 7, 8, 62]])
        // toLength shorter than an example: cut like truncate.
        let c = Batching.pad([(b, 0)], eos: 62, toLength: 3)
        XCTAssertEqual(c[0].tokens, [4, 5, 6])
        XCTAssertTrue(Batching.pad([], eos: 62).isEmpty)
    }

    func testTruncation() {
        let e = Example(prompt: [1, 2, 3], response: [4, 5, 6], line: 7)
        XCTAssertEqual(Batching.truncate(e, maxLength: 6).0, e)
        XCTAssertFalse(Batching.truncate(e, maxLength: 6).1)
        XCTAssertFalse(Batching.truncate(e, maxLength: 100).1)
        // Response cut, prompt whole.
        var (t, cut) = Batching.truncate(e, maxLength: 5)
        XCTAssertTrue(cut)
        XCTAssertEqual(t, Example(prompt: [1, 2, 3], response: [4, 5], line: 7))
        (t, cut) = Batching.truncate(e, maxLength: 4)
        XCTAssertEqual(t, Example(prompt: [1, 2, 3], response: [4], line: 7))
        // Prompt too long for one response token: keep its last tokens and one response token.
        (t, cut) = Batching.truncate(e, maxLength: 3)
        XCTAssertTrue(cut)
        XCTAssertEqual(t, Example(prompt: [2, 3], response: [4], line: 7))
        (t, _) = Batching.truncate(e, maxLength: 1)
        XCTAssertEqual(t, Example(prompt: [], response: [4], line: 7))
        let (all, n) = Batching.truncateAll([e, Example(prompt: [1], response: [2]), e], maxLength: 4)
        XCTAssertEqual(n, 2)
        XCTAssertEqual(all.map(\.length), [4, 2, 4])
    }

    func testEpochOrder() {
        let a = EpochOrder(count: 100, seed: 1, epoch: 0).order
        XCTAssertEqual(a.sorted(), Array(0..<100), "a permutation")
        XCTAssertEqual(a, EpochOrder(count: 100, seed: 1, epoch: 0).order, "deterministic")
        XCTAssertNotEqual(a, Array(0..<100))
        XCTAssertNotEqual(a, EpochOrder(count: 100, seed: 1, epoch: 1).order, "differs across epochs")
        XCTAssertNotEqual(a, EpochOrder(count: 100, seed: 2, epoch: 0).order, "differs across seeds")
        XCTAssertEqual(EpochOrder(count: 0, seed: 1, epoch: 0).order, [])
        XCTAssertEqual(EpochOrder(count: 1, seed: 1, epoch: 3).order, [0])
        // Roughly uniform: over many epochs, element 0 lands in each half about equally often.
        var first = 0
        for ep in 0..<2000 where EpochOrder(count: 10, seed: 5, epoch: ep).order.firstIndex(of: 0)! < 5 { first += 1 }
        XCTAssertEqual(Double(first) / 2000, 0.5, accuracy: 0.05)
    }

    func testSplit() {
        let ex = (0..<1000).map { Example(prompt: [Int32($0 % 50)], response: [Int32($0 / 50)], line: $0 + 1) }
        let (tr, va) = Batching.split(ex, validationFraction: 0.1, seed: 3)
        XCTAssertEqual(tr.count + va.count, 1000)
        XCTAssertEqual(Set(tr.map(\.line)).intersection(va.map(\.line)), [], "disjoint")
        XCTAssertEqual(Double(va.count), 100, accuracy: 40)
        let (tr2, va2) = Batching.split(ex, validationFraction: 0.1, seed: 3)
        XCTAssertEqual(tr, tr2); XCTAssertEqual(va, va2)
        XCTAssertNotEqual(Batching.split(ex, validationFraction: 0.1, seed: 4).validation, va)
        // Tiny data: still one validation example, and one training example.
        let two = Array(ex.prefix(2))
        let (t2, v2) = Batching.split(two, validationFraction: 0.001, seed: 3)
        XCTAssertEqual([t2.count, v2.count], [1, 1])
        let (t3, v3) = Batching.split(two, validationFraction: 1, seed: 3)
        XCTAssertEqual([t3.count, v3.count], [1, 1])
        XCTAssertEqual(Batching.split(ex, validationFraction: 0, seed: 3).validation.count, 0)
        XCTAssertEqual(Batching.split([ex[0]], validationFraction: 0.5, seed: 3).train.count + Batching.split([ex[0]], validationFraction: 0.5, seed: 3).validation.count, 1)
    }
}
