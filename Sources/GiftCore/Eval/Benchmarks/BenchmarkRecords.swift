import Foundation

/// One line of an eval folder's `generations.jsonl`: a problem, what the model generated for it and
/// d1's verdict on it. Keys, in this order: index, question, prompt, output, output_ids, extracted,
/// ground_truth, verdict (1/0; Sudoku: correct cells), and for Sudoku empty_cells.
public struct GenerationRecord: Sendable {
    public var index: Int
    public var question: String
    public var prompt: String
    public var output: String
    public var outputIds: [Int32]
    public var groundTruth: GroundTruth
    public var verdict: Verdict

    public init(index: Int, question: String, prompt: String, output: String, outputIds: [Int32],
                groundTruth: GroundTruth, verdict: Verdict) {
        self.index = index; self.question = question; self.prompt = prompt; self.output = output
        self.outputIds = outputIds; self.groundTruth = groundTruth; self.verdict = verdict
    }

    public var jsonLine: String {
        var s = "{\"index\": \(index), \"question\": \(StrictJSON.quote(question)), \"prompt\": \(StrictJSON.quote(prompt))"
        s += ", \"output\": \(StrictJSON.quote(output)), \"output_ids\": [\(outputIds.map(String.init).joined(separator: ", "))]"
        s += ", \"extracted\": \(BenchmarkJSON.extracted(verdict.extracted)), \"ground_truth\": \(BenchmarkJSON.groundTruth(groundTruth))"
        s += ", \"verdict\": \(verdict.correct)"
        if let e = verdict.emptyCells { s += ", \"empty_cells\": \(e)" }
        return s + "}"
    }
}

/// The JSON forms of answers, as d1's generation files have them (GSM8K: a float or null; MATH500: a
/// string; Countdown: [[numbers], target]; Sudoku: the solution string), and back.
public enum BenchmarkJSON {
    /// A finite double as Python's json.dumps writes a float (18.0, 0.5, 1e+16); NaN/inf as null.
    public static func number(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        return x == x.rounded() && abs(x) < 1e16 ? String(format: "%.1f", x) : "\(x)"
    }

    public static func extracted(_ e: Extracted) -> String {
        switch e {
        case .none: return "null"
        case .number(let x): return number(x)
        case .text(let t): return StrictJSON.quote(t)
        }
    }

    public static func groundTruth(_ g: GroundTruth) -> String {
        switch g {
        case .number(let x): return x.map(number) ?? "null"
        case .text(let t): return StrictJSON.quote(t)
        case .countdown(let numbers, let target): return "[[\(numbers.map(String.init).joined(separator: ", "))], \(target)]"
        case .sudoku(let s): return StrictJSON.quote(s)
        }
    }

    /// `ground_truth` of a generations file back into a GroundTruth of `benchmark`; `at` names the place.
    public static func groundTruth(_ v: StrictJSON?, _ benchmark: Benchmark, at: String) throws -> GroundTruth {
        func bad(_ want: String) -> GiftError {
            GiftError(.data, "\(at): \"ground_truth\" must be \(want) for \(benchmark.rawValue), found \(v?.kind ?? "nothing")")
        }
        switch (benchmark, v) {
        case (.gsm8k, .null?): return .number(nil)
        case (.gsm8k, .number(let t)?):
            guard let x = Double(t) else { throw bad("a number or null") }
            return .number(x)
        case (.math500, .string(let s)?): return .text(s)
        case (.sudoku, .string(let s)?):
            guard s.utf8.count == 16 else { throw bad("a 16-character solution") }
            return .sudoku(solution: s)
        case (.countdown, .array(let a)?):
            guard a.count == 2, case .array(let ns) = a[0], let target = a[1].intValue else { throw bad("[[numbers], target]") }
            let numbers = try ns.map { n -> Int in
                guard let i = n.intValue else { throw bad("[[numbers], target] with integer numbers") }
                return i
            }
            return .countdown(numbers: numbers, target: target)
        default:
            switch benchmark {
            case .gsm8k: throw bad("a number or null")
            case .math500: throw bad("a string")
            case .countdown: throw bad("[[numbers], target]")
            case .sudoku: throw bad("a 16-character solution string")
            }
        }
    }
}

/// A generations file to score again without a model: gift's `generations.jsonl` or d1's JSON layout
/// (`{"generations": [{"question", "generations", "ground_truth"}, ...]}`).
public enum GenerationsFile {
    public struct Item: Sendable { public var question: String; public var output: String; public var groundTruth: GroundTruth }

    public static func read(_ path: String, benchmark: Benchmark) throws -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else { throw GiftError(.io, "\(path): cannot read") }
        let bytes = [UInt8](data)
        // d1's layout is one JSON object with a "generations" list; gift's is one object per line
        if let whole = try? StrictJSON.parse(bytes), case .object(let o) = whole, o["generations"] != nil {
            return try D1Generations.parse(bytes, benchmark: benchmark, source: path).map {
                Item(question: $0.question, output: $0.output, groundTruth: $0.groundTruth)
            }
        }
        var items: [Item] = []
        var lineNo = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let at = "\(path):\(lineNo)"
            let v: StrictJSON
            do { v = try StrictJSON.parse([UInt8](raw)) } catch let e as StrictJSON.ParseError {
                throw GiftError(.data, "\(at): invalid JSON: \(e.message) at byte \(e.offset)")
            }
            guard case .object(let o) = v else { throw GiftError(.data, "\(at): expected a JSON object, found \(v.kind)") }
            guard case .string(let q)? = o["question"] else { throw GiftError(.data, "\(at): missing string field \"question\"") }
            guard case .string(let out)? = o["output"] else { throw GiftError(.data, "\(at): missing string field \"output\"") }
            items.append(Item(question: q, output: out, groundTruth: try BenchmarkJSON.groundTruth(o["ground_truth"], benchmark, at: at)))
        }
        if items.isEmpty { throw GiftError(.data, "\(path): no generations in the file") }
        return items
    }
}
