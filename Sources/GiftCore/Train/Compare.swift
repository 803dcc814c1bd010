import Foundation

/// What `gift compare` reads from a run folder.
public struct RunReport: Sendable {
    public var path: String
    public var objective: String
    public var data: String
    public var seed: String
    public var steps: Int
    /// Mean training loss over the last tenth of the steps (a single step's loss is noisy).
    public var finalLoss: Double
    public var finalValLoss: Double?
    public var accuracy: Double?, accuracyStderr: Double?, accuracyNote: String?
    public var tokensPerS: Double
    /// The run config as strings (for grouping runs by what sets them apart).
    public var config: [String: String] = [:]
    /// eval.json: the accuracy of each eval repetition, problems per repetition, the untrained model's.
    public var perSeedAccuracy: [Double] = []
    public var evalProblems = 0
    public var untrainedAccuracy: Double?
    /// eval.jsonl: per problem ("seed:index"), whether the output was right (score ≥ 0.5).
    public var outcomes: [String: Bool]?
    /// (step, loss) of every logged step.
    public var lossCurve: [(x: Double, y: Double)] = []

    public static func load(_ dir: String) throws -> RunReport {
        let cfgPath = dir + "/config.json", metricsPath = dir + "/metrics.jsonl"
        guard let cd = FileManager.default.contents(atPath: cfgPath),
              let cfg = try? JSONSerialization.jsonObject(with: cd) as? [String: Any] else {
            throw GiftError(.io, "\(cfgPath): missing or unreadable: is \(dir) a gift train run folder?")
        }
        let lines = try MetricsWriter.read(metricsPath).filter { $0["skipped"] == nil }
        if lines.isEmpty { throw GiftError(.data, "\(metricsPath): no training steps logged") }
        let losses = lines.compactMap { ($0["loss"] as? NSNumber)?.doubleValue }
        let tail = losses.suffix(max(1, losses.count / 10))
        let speeds = lines.compactMap { ($0["tokens_per_s"] as? NSNumber)?.doubleValue }.sorted()
        var r = RunReport(path: dir, objective: "\(cfg["objective"] ?? "?")", data: "\(cfg["data"] ?? "?")",
                          seed: "\(cfg["seed"] ?? "?")", steps: (lines.last!["step"] as? NSNumber)?.intValue ?? lines.count,
                          finalLoss: tail.reduce(0, +) / Double(tail.count),
                          finalValLoss: lines.last(where: { $0["val_loss"] != nil }).flatMap { ($0["val_loss"] as? NSNumber)?.doubleValue },
                          tokensPerS: speeds.isEmpty ? 0 : speeds[speeds.count / 2])
        r.config = cfg.mapValues { "\($0)" }
        // a run written before a setting existed trained as its default (which kept the old behaviour):
        // it groups with runs that say so
        for (k, v) in Self.defaultConfig where r.config[k] == nil { r.config[k] = v }
        r.lossCurve = lines.compactMap { l in
            guard let s = (l["step"] as? NSNumber)?.doubleValue, let v = (l["loss"] as? NSNumber)?.doubleValue else { return nil }
            return (s, v)
        }
        if let ed = FileManager.default.contents(atPath: dir + "/eval.json"),
           let e = try? JSONSerialization.jsonObject(with: ed) as? [String: Any] {
            r.accuracy = (e["accuracy"] as? NSNumber)?.doubleValue; r.accuracyStderr = (e["stderr"] as? NSNumber)?.doubleValue
            r.accuracyNote = "\(e["task"] ?? "?"), \(e["n"] ?? "?") problems × \(e["seeds"] ?? "?") seeds"
            r.perSeedAccuracy = (e["per_seed"] as? [NSNumber])?.map(\.doubleValue) ?? r.accuracy.map { [$0] } ?? []
            r.evalProblems = (e["n"] as? NSNumber)?.intValue ?? 0
            r.untrainedAccuracy = (e["untrained_accuracy"] as? NSNumber)?.doubleValue
            r.outcomes = try? readOutcomes(dir + "/eval.jsonl")
        } else if let last = lines.last(where: { $0["accuracy"] != nil }) {
            r.accuracy = (last["accuracy"] as? NSNumber)?.doubleValue; r.accuracyStderr = (last["accuracy_stderr"] as? NSNumber)?.doubleValue
            r.accuracyNote = "\(last["accuracy_task"] ?? "?") at step \(last["step"] ?? "?")"
        }
        return r
    }

    /// RunConfig's defaults as config.json spells them.
    static let defaultConfig: [String: String] = {
        let o = try! JSONSerialization.jsonObject(with: RunConfig().jsonData()) as! [String: Any]
        return o.mapValues { "\($0)" }
    }()

    /// Per-problem outcomes of an eval JSONL (`Evaluate.writeJSONL`), keyed "seed:index".
    static func readOutcomes(_ path: String) throws -> [String: Bool]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var o: [String: Bool] = [:]
        for l in try MetricsWriter.read(path) {
            guard let s = l["seed"] as? NSNumber, let i = l["index"] as? NSNumber, let sc = (l["score"] as? NSNumber)?.doubleValue else {
                throw GiftError(.data, "\(path): a line lacks seed, index or score")
            }
            o["\(s):\(i)"] = sc >= 0.5
        }
        return o
    }

    /// Side-by-side table of runs (e.g. SFT against GIFT on the same data and seed).
    public static func table(_ runs: [RunReport]) -> String {
        func f(_ x: Double?, _ fmt: String) -> String { x.map { String(format: fmt, $0) } ?? "-" }
        let rows: [(String, (RunReport) -> String)] = [
            ("run", { URL(fileURLWithPath: $0.path).lastPathComponent }),
            ("objective", { $0.objective }), ("data", { URL(fileURLWithPath: $0.data).lastPathComponent }), ("seed", { $0.seed }),
            ("steps", { "\($0.steps)" }),
            ("final loss (last 10%)", { f($0.finalLoss, "%.4f") }), ("validation loss", { f($0.finalValLoss, "%.4f") }),
            ("accuracy ± s.e.", { r in r.accuracy.map { String(format: "%.3f ± %.3f", $0, r.accuracyStderr ?? 0) } ?? "-" }),
            ("accuracy measured on", { $0.accuracyNote ?? "-" }),
            ("tokens/s (median step)", { f($0.tokensPerS, "%.0f") }),
        ]
        let cells = rows.map { name, get in [name] + runs.map(get) }
        let widths = (0..<(runs.count + 1)).map { c in cells.map { $0[c].count }.max()! }
        return cells.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
