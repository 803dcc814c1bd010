/// The known name a mistyped one most likely meant, for "did you mean" in errors.
enum Spelling {
    /// The nearest of `names` by edit distance (leading dashes aside), when it is within a third of the
    /// word's length (at least 1): "--lrr" finds "--lr", "--xyz" finds nothing.
    static func closest(to word: String, among names: [String]) -> String? {
        func bare(_ s: String) -> [Character] { Array(s.drop { $0 == "-" }) }
        let w = bare(word)
        let scored = names.map { (name: $0, d: distance(w, bare($0))) }
        guard let best = scored.min(by: { $0.d < $1.d }), best.d <= max(1, w.count / 3) else { return nil }
        return best.name
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return a.count + b.count }
        var row = Array(0...b.count)   // distances from a[..<i] to every prefix of b
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}
