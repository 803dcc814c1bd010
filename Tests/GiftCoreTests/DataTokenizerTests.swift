import Foundation
import XCTest
@testable import GiftCore

final class DataTokenizerTests: XCTestCase {
    func tiny() throws -> CharTokenizer { try CharTokenizer(vocabSize: 64, eosId: 62, maskId: 63) }

    func testCharacterSet() {
        XCTAssertEqual(CharTokenizer.characters.count, 62)
        XCTAssertEqual(Set(CharTokenizer.characters).count, 62, "characters are distinct")
        XCTAssertFalse(CharTokenizer.characters.contains("_"))
        XCTAssertFalse(CharTokenizer.characters.contains("A"))
    }

    func testRoundTrip() throws {
        let t = try tiny()
        let s = "what is 3+4*(2-1)? it's \"7\", i think: yes; ok. [x]<y> 5% #1 & $2 @z!\nbye/"
        let ids = try t.encode(s)
        XCTAssertEqual(ids.count, s.count)
        XCTAssertEqual(t.decode(ids), s)
        XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < 62 }, "reserved ids 62 and 63 untouched")
        XCTAssertEqual(try t.encode(" 0a"), [0, 1, 11])
        XCTAssertEqual(try t.encode(String(CharTokenizer.characters)), (0..<62).map { Int32($0) })
        // Every built-in task's text encodes.
        for task in BuiltinTask.allCases {
            for (p, a) in task.generate(n: 20, seed: 1, split: .train) {
                XCTAssertEqual(t.decode(try t.encode(p)), p)
                XCTAssertEqual(t.decode(try t.encode(a)), a)
            }
        }
    }

    func testDecodeSpecialIds() throws {
        let t = try tiny()
        XCTAssertEqual(t.decode([11, 63, 12, 62, 13]), "a_b", "stops at EOS, mask as _")
        XCTAssertEqual(t.decode([11, 70, -1, 12]), "a??b")
        XCTAssertEqual(t.decode([]), "")
        // A larger vocab: ids 62..<vocab that are not reserved decode as '?'.
        let big = try CharTokenizer(vocabSize: 4096, eosId: 4094, maskId: 4095)
        XCTAssertEqual(big.decode([100, 4095, 4094, 1]), "?_")
    }

    func testVocabTooSmall() {
        XCTAssertThrowsError(try CharTokenizer(vocabSize: 40, eosId: 38, maskId: 39)) { e in
            let g = e as! GiftError
            XCTAssertEqual(g.kind, .config)
            XCTAssertTrue(g.message.contains("needs 64 ids"), g.message)
            XCTAssertTrue(g.message.contains("vocab has 40"), g.message)
        }
        XCTAssertThrowsError(try CharTokenizer(vocabSize: 63, eosId: 61, maskId: 62)) { e in
            XCTAssertTrue((e as! GiftError).message.contains("vocab has 63"))
        }
    }

    func testReservedIdsChecked() {
        // Collision with a character id.
        XCTAssertThrowsError(try CharTokenizer(vocabSize: 100, eosId: 5, maskId: 99)) { e in
            let g = e as! GiftError
            XCTAssertEqual(g.kind, .config)
            XCTAssertTrue(g.message.contains("eos_token_id 5"), g.message)
        }
        // Outside the vocab.
        XCTAssertThrowsError(try CharTokenizer(vocabSize: 64, eosId: 62, maskId: 64))
        XCTAssertNoThrow(try CharTokenizer(vocabSize: 64, eosId: 63, maskId: 62))
    }

    func testUnknownCharacter() throws {
        let t = try tiny()
        XCTAssertThrowsError(try t.encode("abc Def")) { e in
            let g = e as! GiftError
            XCTAssertEqual(g.kind, .data)
            XCTAssertTrue(g.message.contains("'D'"), g.message)
        }
        XCTAssertThrowsError(try t.encode("a_b")) { e in XCTAssertTrue((e as! GiftError).message.contains("'_'")) }
        XCTAssertThrowsError(try t.encode("tab\there")) { e in XCTAssertTrue((e as! GiftError).message.contains("U+9")) }
    }

    func testTaskNames() throws {
        XCTAssertEqual(try BuiltinTask(name: "countdown"), .countdown)
        XCTAssertEqual(try BuiltinTask(name: "sudoku"), .sudoku)
        XCTAssertThrowsError(try BuiltinTask(name: "chess")) { e in
            let g = e as! GiftError
            XCTAssertEqual(g.kind, .usage)
            XCTAssertTrue(g.message.contains("chess") && g.message.contains("countdown, sudoku"), g.message)
        }
        let t = try tiny()
        let pairs = BuiltinTask.countdown.generate(n: 5, seed: 3, split: .train)
        let ex = try BuiltinTask.examples(pairs, tokenizer: t)
        XCTAssertEqual(ex.count, 5)
        for (e, p) in zip(ex, pairs) {
            XCTAssertEqual(t.decode(e.prompt), p.prompt)
            XCTAssertEqual(t.decode(e.response), p.answer)
            XCTAssertEqual(e.line, 0)
        }
    }
}
