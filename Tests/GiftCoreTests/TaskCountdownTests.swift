import Foundation
import XCTest
@testable import GiftCore

final class TaskCountdownTests: XCTestCase {
    func testGeneratedAnswersVerify() {
        let train = Countdown.generate(n: 200, seed: 1, split: .train)
        XCTAssertEqual(train.count, 200)
        for (p, a) in train {
            XCTAssertTrue(Countdown.verify(prompt: p, output: a), "\(p) \(a)")
            XCTAssertTrue(Countdown.verify(prompt: p, output: a + "  "), "trailing spaces")
            XCTAssertLessThanOrEqual(p.count, Countdown.maxPromptLength)
            XCTAssertLessThanOrEqual(a.count, Countdown.maxAnswerLength)
            let (nums, target) = Countdown.parsePrompt(p)!
            XCTAssertEqual(nums.count, 3)
            XCTAssertTrue(nums.allSatisfy { Countdown.numberRange.contains($0) })
            XCTAssertTrue(Countdown.targetRange.contains(target))
        }
        XCTAssertEqual(Set(train.map(\.prompt)).count, 200, "no duplicates")
        // Deterministic, and prefix-stable.
        let again = Countdown.generate(n: 50, seed: 1, split: .train)
        XCTAssertEqual(again.map(\.prompt), train.prefix(50).map(\.prompt))
        XCTAssertEqual(again.map(\.answer), train.prefix(50).map(\.answer))
        XCTAssertNotEqual(Countdown.generate(n: 50, seed: 2, split: .train).map(\.prompt), again.map(\.prompt))
        // Some answers use parentheses and each operator appears.
        let all = train.map(\.answer).joined()
        for c in "()+-*/" { XCTAssertTrue(all.contains(c), "operator \(c) appears") }
    }

    func testWrongAnswersRejected() {
        let p = "3 7 15 to 36:"
        XCTAssertTrue(Countdown.verify(prompt: p, output: "7*3+15"))
        XCTAssertTrue(Countdown.verify(prompt: p, output: "15 + 3 * 7"))
        XCTAssertTrue(Countdown.verify(prompt: p, output: "(15+(7*3))"))
        XCTAssertTrue(Countdown.verify(prompt: " 3 7 15 to 36: ", output: " 3*7+15\n"))
        XCTAssertFalse(Countdown.verify(prompt: p, output: "7*3-15"), "wrong value")
        XCTAssertFalse(Countdown.verify(prompt: p, output: "7*7-13"), "other numbers")
        XCTAssertFalse(Countdown.verify(prompt: p, output: "3*3+7+15-7-3+14"), "numbers used twice/extra")
        XCTAssertFalse(Countdown.verify(prompt: "3 7 15 to 21:", output: "3*7"), "missing number")
        XCTAssertFalse(Countdown.verify(prompt: "3 7 15 to 36:", output: "3*7+15+0"), "extra number")
        XCTAssertFalse(Countdown.verify(prompt: "3 3 15 to 24:", output: "3+3+3+15"), "number used twice")
        XCTAssertTrue(Countdown.verify(prompt: "3 3 15 to 21:", output: "3+3+15"), "a repeated number used twice")
        XCTAssertFalse(Countdown.verify(prompt: "3 3 15 to 18:", output: "3+15"), "a repeated number used once")
        XCTAssertFalse(Countdown.verify(prompt: "7 2 4 to 15:", output: "7/2*4+1"), "non-exact division")
        XCTAssertFalse(Countdown.verify(prompt: "7 2 4 to 14:", output: "7/2*4"), "non-exact division, even if the total is whole")
        XCTAssertTrue(Countdown.verify(prompt: "8 2 4 to 16:", output: "8/2*4"))
        XCTAssertFalse(Countdown.verify(prompt: "8 0 4 to 0:", output: "4/0*8"), "division by zero")
        for garbage in ["", " ", "abc", "7*3+", "+7*3+15", "(7*3+15", "7*3+15)", "7**3+15", "-7+3*15", "7 3 15",
                        "7*3+15=36", "07*3+15", "7*3+15 :", "()", "((((", "7.0*3+15", "7×3+15",
                        String(repeating: "(", count: 10000) + "1", "99999999999*99999999999"] {
            XCTAssertFalse(Countdown.verify(prompt: p, output: garbage), "garbage \(garbage.prefix(20))")
        }
        XCTAssertFalse(Countdown.verify(prompt: "3 7 15 36:", output: "7*3+15"), "not a prompt")
        XCTAssertFalse(Countdown.verify(prompt: "", output: "7*3+15"))
        XCTAssertFalse(Countdown.verify(prompt: "x y to 3:", output: "1+2"))
        // Overflow never crashes.
        XCTAssertNil(Countdown.evaluate("999999999*999999999*999999999*999999999"))
        XCTAssertEqual(Countdown.evaluate("2*(3+4)-10/5")?.value, 12)
        XCTAssertEqual(Countdown.evaluate("2*(3+4)-10/5")?.numbers, [2, 3, 4, 10, 5])
        XCTAssertEqual(Countdown.evaluate("10-4-3")?.value, 3, "left associative")
        XCTAssertEqual(Countdown.evaluate("40/4/2")?.value, 5, "left associative")
    }

    func testExpressionPrinting() {
        typealias E = Countdown.Expr
        let plus = UInt8(ascii: "+"), minus = UInt8(ascii: "-"), times = UInt8(ascii: "*"), div = UInt8(ascii: "/")
        XCTAssertEqual(E.op(times, .op(plus, .num(1), .num(2)), .num(3)).text, "(1+2)*3")
        XCTAssertEqual(E.op(minus, .num(9), .op(minus, .num(5), .num(2))).text, "9-(5-2)")
        XCTAssertEqual(E.op(plus, .num(9), .op(plus, .num(5), .num(2))).text, "9+5+2")
        XCTAssertEqual(E.op(times, .num(9), .op(div, .num(4), .num(2))).text, "9*(4/2)")
        XCTAssertEqual(E.op(div, .op(times, .num(9), .num(4)), .num(2)).text, "9*4/2")
        XCTAssertEqual(E.op(minus, .op(minus, .num(9), .num(4)), .num(2)).text, "9-4-2")
    }

    func testTrainTestDisjoint() {
        func key(_ p: String) -> String {
            let (n, t) = Countdown.parsePrompt(p)!
            return "\(n.sorted()) \(t)"
        }
        let train = Countdown.generate(n: 500, seed: 11, split: .train)
        let test = Countdown.generate(n: 400, seed: 12, split: .test)
        let testSame = Countdown.generate(n: 500, seed: 11, split: .test)
        XCTAssertEqual(test.count, 400)
        let trainKeys = Set(train.map { key($0.prompt) })
        XCTAssertEqual(trainKeys.count, 500, "no duplicate problems (as multisets) within a set")
        XCTAssertTrue(trainKeys.isDisjoint(with: test.map { key($0.prompt) }))
        XCTAssertTrue(trainKeys.isDisjoint(with: testSame.map { key($0.prompt) }))
        for (p, a) in test { XCTAssertTrue(Countdown.verify(prompt: p, output: a)) }
    }
}
