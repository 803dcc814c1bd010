import Foundation

/// 4x4 sudoku: digits 1-4, each once per row, column and 2x2 box.
///
/// Prompt: the 16 cells row by row, `0` for a blank, then a colon: `"1030040020100000:"` (17 characters).
/// Answer: the 16 digits of the unique solution: `"1432341221434321"` (16 characters). Generated
/// puzzles always have exactly one solution.
public enum Sudoku {
    public static let promptLength = 17
    /// Blanks per generated puzzle: drawn from this range, fewer if no more cells can be emptied
    /// without losing uniqueness.
    public static let blankRange = 6...10

    /// The prompt of a puzzle string: puzzle + ":".
    public static func prompt(puzzle: String) -> String { puzzle + ":" }

    /// The puzzle of a prompt: its characters without surrounding whitespace and one trailing colon,
    /// when they are 16 digits 0-4; else nil.
    public static func puzzle(fromPrompt prompt: String) -> [Int]? {
        var s = Substring(prompt.trimmingCharacters(in: .whitespacesAndNewlines))
        if s.hasSuffix(":") { s = s.dropLast() }
        return cells(s, allowBlank: true)
    }

    static func cells<S: StringProtocol>(_ s: S, allowBlank: Bool) -> [Int]? {
        let u = Array(s.utf8)
        guard u.count == 16 else { return nil }
        var g: [Int] = []
        for c in u {
            let lo = allowBlank ? UInt8(ascii: "0") : UInt8(ascii: "1")
            guard c >= lo && c <= UInt8(ascii: "4") else { return nil }
            g.append(Int(c - UInt8(ascii: "0")))
        }
        return g
    }

    static func text(_ g: [Int]) -> String { g.map(String.init).joined() }

    // MARK: solving

    /// Row, column and box of each cell.
    static let units: [(row: Int, col: Int, box: Int)] = (0..<16).map { c in
        (c / 4, c % 4, (c / 8) * 2 + (c % 4) / 2)
    }

    /// Whether digit d can go in cell c of g (ignoring c's own content).
    static func allowed(_ g: [Int], _ c: Int, _ d: Int) -> Bool {
        let u = units[c]
        for o in 0..<16 where o != c && g[o] == d {
            let v = units[o]
            if v.row == u.row || v.col == u.col || v.box == u.box { return false }
        }
        return true
    }

    /// Solutions of grid `g` (0 = blank), up to `limit`, in a fixed order.
    static func solutions(_ g0: [Int], limit: Int) -> [[Int]] {
        // Givens must not already conflict.
        for c in 0..<16 where g0[c] != 0 && !allowed(g0, c, g0[c]) { return [] }
        var g = g0
        var found: [[Int]] = []
        func fill(_ from: Int) {
            if found.count >= limit { return }
            var c = from
            while c < 16 && g[c] != 0 { c += 1 }
            if c == 16 { found.append(g); return }
            for d in 1...4 where allowed(g, c, d) {
                g[c] = d
                fill(c + 1)
                g[c] = 0
                if found.count >= limit { return }
            }
        }
        fill(0)
        return found
    }

    /// Number of solutions of a puzzle string (16 digits 0-4), counted up to `limit`; 0 for a string
    /// that is not a puzzle.
    public static func solutionCount(_ puzzle: String, limit: Int = 2) -> Int {
        guard let g = cells(puzzle, allowBlank: true) else { return 0 }
        return solutions(g, limit: limit).count
    }

    /// The unique solution of a puzzle string, or nil when it has none, several, or is not a puzzle.
    public static func solve(_ puzzle: String) -> String? {
        guard let g = cells(puzzle, allowBlank: true) else { return nil }
        let s = solutions(g, limit: 2)
        return s.count == 1 ? text(s[0]) : nil
    }

    /// Whether `solution` is a complete valid grid (16 digits 1-4) that keeps every given of `puzzle`.
    public static func verifySolution(puzzle: String, solution: String) -> Bool {
        guard let p = cells(puzzle, allowBlank: true), let s = cells(solution, allowBlank: false) else { return false }
        for c in 0..<16 where (p[c] != 0 && p[c] != s[c]) || !allowed(s, c, s[c]) { return false }
        return true
    }

    /// The fraction of the puzzle's blank cells that `output` fills correctly. Whitespace in the output
    /// is ignored; its i-th remaining character answers cell i, so a short or garbled output scores the
    /// cells it gets right. Against the unique solution when there is one; for a puzzle with several
    /// solutions, 1 when the output is a valid solution keeping the givens, else 0. A prompt that is not
    /// a solvable puzzle scores 0; a puzzle without blanks scores 1.
    public static func score(prompt: String, output: String) -> Double {
        guard let p = puzzle(fromPrompt: prompt) else { return 0 }
        let blanks = (0..<16).filter { p[$0] == 0 }
        let sols = solutions(p, limit: 2)
        if sols.isEmpty { return 0 }
        if blanks.isEmpty { return 1 }
        let out = Array(output.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) })
        if sols.count > 1 {
            let s = String(String.UnicodeScalarView(out))
            return verifySolution(puzzle: text(p), solution: s) ? 1 : 0
        }
        let sol = sols[0]
        var right = 0
        for c in blanks where c < out.count && out[c].value == UInt32(48 + sol[c]) { right += 1 }
        return Double(right) / Double(blanks.count)
    }

    // MARK: generation

    /// All 288 complete 4x4 grids, in lexicographic order.
    static let allGrids: [[Int]] = solutions([Int](repeating: 0, count: 16), limit: Int.max)

    /// `n` distinct puzzles of `split`, each with exactly one solution, deterministic in (seed, split);
    /// each prefix of the result is the result for a smaller n. A puzzle string belongs to train or
    /// test by a fixed hash, so train and test sets never share one, whatever the seeds. Attempt k
    /// draws from CounterRNG(seed, "SUDOKU", k) a solution grid (of the 288), a blank count in
    /// `blankRange` and an order of the cells, and empties cells in that order, skipping any whose
    /// removal would make the solution ambiguous, until the count is reached.
    public static func generate(n: Int, seed: UInt64, split: TaskSplit) -> [(prompt: String, answer: String)] {
        var out: [(prompt: String, answer: String)] = []
        var seen = Set<String>()
        var k: UInt64 = 0
        let maxAttempts = UInt64(2000 + 200 * max(n, 0))
        while out.count < n && k < maxAttempts {
            let r = CounterRNG(seed, 0x5355_444F_4B55, k)  // "SUDOKU"
            k += 1
            let solution = allGrids[uniformIndex(r.bits(0), allGrids.count)]
            let want = blankRange.lowerBound + uniformIndex(r.bits(1), blankRange.count)
            var order = Array(0..<16)
            for i in stride(from: 15, to: 0, by: -1) { order.swapAt(i, uniformIndex(r.bits(UInt64(2 + i)), i + 1)) }
            var g = solution, blanks = 0
            for c in order where blanks < want {
                g[c] = 0
                if solutions(g, limit: 2).count == 1 { blanks += 1 } else { g[c] = solution[c] }
            }
            let puzzle = text(g)
            guard TaskSplit.of(key: "sudoku " + puzzle) == split, seen.insert(puzzle).inserted else { continue }
            out.append((prompt(puzzle: puzzle), text(solution)))
        }
        return out
    }
}
