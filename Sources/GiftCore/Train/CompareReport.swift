import Foundation

/// `gift compare`'s answer to "does GIFT beat SFT, and by how much?": runs grouped by objective and every
/// other setting that differs (runs within a group differ only in their seed), accuracy mean ± standard
/// error per group, and for each pair of groups the per-seed paired differences with a paired t-test and,
/// where both runs of a seed left eval.jsonl, McNemar's exact test on the per-problem outcomes.
public struct CompareReport {
    public struct Group {
        /// "gift" or "gift (lr=3e-4)": the objective and the settings that set this group apart.
        public var label: String
        public var runs: [RunReport]
        /// (seed, accuracy): one per run (its training seed), or, for a single run, one per eval repetition.
        public var perSeed: [(seed: String, accuracy: Double)]
        public var mean: Double, stderr: Double
        /// Problems per accuracy and repetitions behind each run's accuracy.
        public var problems: Int, evalSeeds: Int
        public var untrained: Double?
    }

    public struct Pair {
        public var a: Int, b: Int
        /// b − a per shared seed.
        public var differences: [(seed: String, difference: Double)]
        public var meanDifference: Double
        public var t: (t: Double, df: Int, p: Double)?
        /// Problems right in a and wrong in b (onlyA), the reverse (onlyB), pairs compared, exact p.
        public var mcnemar: (onlyA: Int, onlyB: Int, problems: Int, p: Double)?
    }

    public var groups: [Group]
    public var pairs: [Pair]

    /// Config keys that never set runs apart: the seed (replicates) and where the run was written.
    static let ignoredKeys: Set<String> = ["seed", "out"]

    /// `ignore`: more config keys that do not set groups apart (e.g. "model", to pool runs over bases).
    /// `against`: a group label; only the pairs with that group are kept (every objective against sft).
    public static func build(_ runs: [RunReport], ignore: [String] = [], against: String? = nil) -> CompareReport {
        // the settings that differ among the runs, besides the objective and the seed
        let keys = Set(runs.flatMap { $0.config.keys }).subtracting(ignoredKeys).subtracting(["objective"]).subtracting(ignore)
        let differing = keys.filter { k in Set(runs.map { $0.config[k] ?? "-" }).count > 1 }.sorted()
        var order: [String] = [], members: [String: [RunReport]] = [:]
        for r in runs {
            let extra = differing.map { "\($0)=\(r.config[$0] ?? "-")" }
            let label = r.objective + (extra.isEmpty ? "" : " (" + extra.joined(separator: ", ") + ")")
            if members[label] == nil { order.append(label) }
            members[label, default: []].append(r)
        }
        let groups = order.map { label -> Group in
            let rs = members[label]!
            let per: [(seed: String, accuracy: Double)] = rs.count == 1
                ? rs[0].perSeedAccuracy.enumerated().map { ("eval \($0.offset)", $0.element) }
                : rs.compactMap { r in r.accuracy.map { (r.seed, $0) } }
            let (m, se) = Evaluate.meanAndStandardError(per.map(\.accuracy))
            let untrained = rs.compactMap(\.untrainedAccuracy)
            return Group(label: label, runs: rs, perSeed: per, mean: m, stderr: rs.count == 1 ? (rs[0].accuracyStderr ?? se) : se,
                         problems: rs.first?.evalProblems ?? 0, evalSeeds: rs.first?.perSeedAccuracy.count ?? 0,
                         untrained: untrained.isEmpty ? nil : untrained.reduce(0, +) / Double(untrained.count))
        }
        var pairs: [Pair] = []
        for i in groups.indices {
            for j in groups.indices where j > i {
                let A = Dictionary(groups[i].perSeed.map { ($0.seed, $0.accuracy) }, uniquingKeysWith: { a, _ in a })
                let d = groups[j].perSeed.compactMap { s in A[s.seed].map { (seed: s.seed, difference: s.accuracy - $0) } }
                var p = Pair(a: i, b: j, differences: d,
                             meanDifference: d.isEmpty ? groups[j].mean - groups[i].mean : d.map(\.difference).reduce(0, +) / Double(d.count),
                             t: Statistics.pairedT(d.map(\.difference)), mcnemar: nil)
                p.mcnemar = mcnemar(groups[i].runs, groups[j].runs)
                pairs.append(p)
            }
        }
        if let against { pairs = pairs.filter { groups[$0.a].label == against || groups[$0.b].label == against } }
        return CompareReport(groups: groups, pairs: pairs)
    }

    /// McNemar counts over the runs of a and b that share a seed and both left per-problem outcomes.
    static func mcnemar(_ a: [RunReport], _ b: [RunReport]) -> (Int, Int, Int, Double)? {
        var onlyA = 0, onlyB = 0, n = 0
        for ra in a {
            guard let oa = ra.outcomes, let rb = b.first(where: { $0.seed == ra.seed }), let ob = rb.outcomes else { continue }
            for (problem, x) in oa {
                guard let y = ob[problem] else { continue }
                n += 1
                if x && !y { onlyA += 1 } else if y && !x { onlyB += 1 }
            }
        }
        guard n > 0 else { return nil }
        return (onlyA, onlyB, n, Statistics.mcnemarExact(b: onlyA, c: onlyB))
    }

    // MARK: output

    func fmt(_ x: Double, _ f: String = "%.3f") -> String { String(format: f, x) }
    func pValue(_ p: Double) -> String { p < 1e-4 ? String(format: "%.1e", p) : String(format: "%.4f", p) }

    var what: String {
        let g = groups.first
        let task = g?.runs.first?.accuracyNote ?? "no accuracy measured"
        return "\(groups.map(\.runs.count).reduce(0, +)) runs in \(groups.count) groups; accuracy on \(task)"
    }

    /// Rows for the terminal and Markdown tables.
    func rows() -> (groups: [[String]], pairs: [[String]]) {
        let g = [["group", "runs", "seeds", "accuracy ± s.e.", "untrained", "final loss"]] + groups.map { x in
            [x.label, "\(x.runs.count)", x.perSeed.map(\.seed).joined(separator: " "),
             fmt(x.mean) + " ± " + fmt(x.stderr), x.untrained.map { fmt($0) } ?? "-",
             fmt(x.runs.map(\.finalLoss).reduce(0, +) / Double(x.runs.count), "%.4f")]
        }
        let p = [["comparison", "paired seeds", "mean difference", "t (df)", "p (t-test)", "McNemar (only a / only b of n)", "p (McNemar)"]]
            + pairs.map { x in
                [groups[x.b].label + " − " + groups[x.a].label, "\(x.differences.count)", fmt(x.meanDifference, "%+.3f"),
                 x.t.map { String(format: "%.2f (%d)", $0.t, $0.df) } ?? "-", x.t.map { pValue($0.p) } ?? "-",
                 x.mcnemar.map { "\($0.onlyA) / \($0.onlyB) of \($0.problems)" } ?? "-", x.mcnemar.map { pValue($0.p) } ?? "-"]
            }
        return (g, p)
    }

    public func text() -> String {
        func table(_ cells: [[String]]) -> String {
            let w = (0..<cells[0].count).map { c in cells.map { $0[c].count }.max()! }
            return cells.map { r in r.enumerated().map { $1.padding(toLength: w[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
                .joined(separator: "\n")
        }
        let (g, p) = rows()
        return what + "\n\n" + table(g) + (pairs.isEmpty ? "" : "\n\n" + table(p)) + "\n"
    }

    public func markdown() -> String {
        func table(_ cells: [[String]]) -> String {
            let line = { (r: [String]) in "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |" }
            return ([line(cells[0]), "|" + String(repeating: "---|", count: cells[0].count)] + cells.dropFirst().map(line)).joined(separator: "\n")
        }
        let (g, p) = rows()
        return what + "\n\n" + table(g) + (pairs.isEmpty ? "" : "\n\n" + table(p)) + "\n"
    }

    public func json() -> String {
        func num(_ x: Double) -> Any { x.isFinite ? x : (x > 0 ? "inf" : "-inf") }
        let g: [[String: Any]] = groups.map { x in
            ["label": x.label, "runs": x.runs.map(\.path), "per_seed": x.perSeed.map { ["seed": $0.seed, "accuracy": $0.accuracy] },
             "mean": x.mean, "stderr": x.stderr, "problems": x.problems, "eval_seeds": x.evalSeeds,
             "untrained_accuracy": x.untrained as Any? ?? NSNull()]
        }
        let p: [[String: Any]] = pairs.map { x in
            var o: [String: Any] = ["a": groups[x.a].label, "b": groups[x.b].label, "mean_difference": x.meanDifference,
                                    "differences": x.differences.map { ["seed": $0.seed, "difference": $0.difference] }]
            if let t = x.t { o["t"] = num(t.t); o["df"] = t.df; o["p"] = t.p }
            if let m = x.mcnemar { o["mcnemar"] = ["only_a": m.onlyA, "only_b": m.onlyB, "problems": m.problems, "p": m.p] }
            return o
        }
        let d = try! JSONSerialization.data(withJSONObject: ["what": what, "groups": g, "pairs": p], options: [.sortedKeys])
        return String(decoding: d, as: UTF8.self) + "\n"
    }

    /// Accuracy per group (mean and ±1 s.e. bars) above, the runs' training-loss curves below.
    public func svg() -> String {
        let w = 720.0, top = 300.0, left = 70.0, right = 20.0
        let hi = max(0.05, groups.map { $0.mean + $0.stderr }.max() ?? 0) * 1.15
        let step = (w - left - right) / Double(max(1, groups.count))
        func y(_ a: Double) -> Double { 30 + (top - 60) * (1 - a / hi) }
        let esc = LossPlot.escape
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(top) + 440)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(esc(what))</text>\n"
        s += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(w - right)\" y2=\"\(y(0))\" stroke=\"black\"/>\n"
        for k in 0...4 {
            let a = hi * Double(k) / 4
            s += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, y(a) + 4, a)
        }
        for (i, g) in groups.enumerated() {
            let x = left + step * (Double(i) + 0.5)
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7fb5\"/>\n",
                        x - step * 0.3, y(g.mean), step * 0.6, y(0) - y(g.mean))
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>\n",
                        x, y(g.mean + g.stderr), x, y(max(0, g.mean - g.stderr)))
            for p in g.perSeed {   // each seed's accuracy as a dot
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#c33\"/>\n", x + step * 0.15, y(p.accuracy))
            }
            s += "<text x=\"\(x)\" y=\"\(y(0) + 16)\" text-anchor=\"middle\">\(esc(g.label))</text>\n"
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3f ± %.3f</text>\n", x, y(g.mean) - 6, g.mean, g.stderr)
        }
        let curves = groups.flatMap { g in g.runs.map { LossPlot.Series(name: "\(g.label) seed \($0.seed)", points: $0.lossCurve) } }
        let plot = LossPlot.svg(series: curves, title: "training loss", xLabel: "optimizer step", yLabel: "loss", width: Int(w), height: 420)
        s += "<g transform=\"translate(0,\(Int(top)))\">\n" + plot.replacingOccurrences(of: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", with: "") + "</g>\n"
        return s + "</svg>\n"
    }
}
