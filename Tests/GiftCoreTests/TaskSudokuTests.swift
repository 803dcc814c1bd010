import Foundation
import XCTest
@testable import GiftCore

final class TaskSudokuTests: XCTestCase {
    func testGeneratedPuzzlesAreUnique() {
        XCTAssertEqual(Sudoku.allGrids.count, 288)
        let train = Sudoku.generate(n: 300, seed: 1, split: .train)
        XCTAssertEqual(train.count, 300)
        XCTAssertEqual(Set(train.map(\.prompt)).count, 300, "no duplicates")
        var blanks: [Int] = []
        for (p, a) in train {
            XCTAssertEqual(p.count, Sudoku.promptLength)
            XCTAssertEqual(a.count, 16)
            let puzzle = String(p.dropLast())
            XCTAssertEqual(Sudoku.solutionCount(puzzle, limit: 3), 1, p)
            XCTAssertEqual(Sudoku.solve(puzzle), a)
            XCTAssertTrue(Sudoku.verifySolution(puzzle: puzzle, solution: a))
            XCTAssertEqual(Sudoku.score(prompt: p, output: a), 1.0)
            XCTAssertEqual(Sudoku.score(prompt: p, output: " " + a + " \n"), 1.0)
            let n = puzzle.filter { $0 == "0" }.count
            XCTAssertGreaterThanOrEqual(n, 1)
            XCTAssertLessThanOrEqual(n, Sudoku.blankRange.upperBound)
            blanks.append(n)
        }
        XCTAssertGreaterThan(Set(blanks).count, 2, "varied difficulty")
        XCTAssertEqual(Sudoku.generate(n: 40, seed: 1, split: .train).map(\.prompt), train.prefix(40).map(\.prompt))
    }

    func testScore() {
        // Solution 1234/3412/2143/4321; blanks at cells 1, 2, 5, 10, 15 (5 blanks).
        let solution = "1234341221434321"
        let puzzle = "1004301221034320"
        XCTAssertEqual(Sudoku.solve(puzzle), solution)
        let prompt = Sudoku.prompt(puzzle: puzzle)
        XCTAssertEqual(prompt, "1004301221034320:")
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: solution), 1.0)
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: "1234 3412 2143 4321"), 1.0, "whitespace ignored")
        // Wrong at cells 2 and 15, right at 1, 5, 10: 3/5.
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: "1224341221434322"), 0.6, accuracy: 1e-12)
        // Short output: only cells 1 and 2 answered (right): 2/5.
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: "123"), 0.4, accuracy: 1e-12)
        // The puzzle itself (zeros at the blanks) scores 0.
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: puzzle), 0)
        for garbage in ["", "abc", "????????????????", "_", String(repeating: "9", count: 1000)] {
            XCTAssertEqual(Sudoku.score(prompt: prompt, output: garbage), 0, garbage)
        }
        XCTAssertEqual(Sudoku.score(prompt: prompt, output: "12345678901234567890"), 0.4, accuracy: 1e-12, "too long: positional")
        XCTAssertFalse(Sudoku.verifySolution(puzzle: puzzle, solution: "1224341221434322"))
        XCTAssertFalse(Sudoku.verifySolution(puzzle: puzzle, solution: "123"))
        XCTAssertFalse(Sudoku.verifySolution(puzzle: puzzle, solution: "2143432112343412"), "valid grid, other givens")
        // Not a puzzle prompt: 0, no crash.
        XCTAssertEqual(Sudoku.score(prompt: "hello", output: solution), 0)
        XCTAssertEqual(Sudoku.score(prompt: "1100000000000000:", output: solution), 0, "unsolvable")
        // Several solutions: a valid one keeping the givens scores 1.
        XCTAssertEqual(Sudoku.solutionCount("0000000000000000", limit: 2), 2)
        XCTAssertEqual(Sudoku.score(prompt: "0000000000000000:", output: solution), 1)
        XCTAssertEqual(Sudoku.score(prompt: "0000000000000000:", output: "1224341221434322"), 0)
        XCTAssertEqual(BuiltinTask.sudoku.score(prompt: prompt, output: "1224341221434322"), 0.6, accuracy: 1e-12)
        XCTAssertEqual(BuiltinTask.countdown.score(prompt: "3 7 15 to 36:", output: "7*3+15"), 1)
    }

    func testTrainTestDisjoint() {
        let train = Sudoku.generate(n: 500, seed: 21, split: .train)
        let test = Sudoku.generate(n: 400, seed: 22, split: .test)
        let testSame = Sudoku.generate(n: 500, seed: 21, split: .test)
        XCTAssertEqual(test.count, 400)
        XCTAssertTrue(Set(train.map(\.prompt)).isDisjoint(with: test.map(\.prompt)))
        XCTAssertTrue(Set(train.map(\.prompt)).isDisjoint(with: testSame.map(\.prompt)))
        for (p, a) in test.prefix(100) { XCTAssertEqual(Sudoku.score(prompt: p, output: a), 1) }
    }
}
