import Foundation
import XCTest
@testable import GiftCore

/// `gift help` and `gift help COMMAND` flow as paragraphs at the terminal's width (COLUMNS), each with
/// an example.
final class HelpLayoutTests: XCTestCase {
    static let commands = ["", "train", "data", "export", "compare", "init", "inspect", "bench", "tokenize", "generate", "eval"]

    /// The overview (abstract and discussion: the lines before USAGE) as paragraphs of lines.
    static func overview(_ help: String) -> [[String]] {
        let lines = help.components(separatedBy: "\n")
        let head = lines.prefix { !$0.hasPrefix("USAGE:") }
        return head.split(separator: "", omittingEmptySubsequences: true).map(Array.init)
    }

    func testHelpFlowsAtTheTerminalWidthWithAnExample() throws {
        for cmd in Self.commands {
            var words: [Int: [String]] = [:], lineCounts: [Int: Int] = [:]
            for width in [60, 120] {
                let r = try runGift(["help"] + (cmd.isEmpty ? [] : [cmd]), env: ["COLUMNS": "\(width)"])
                XCTAssertEqual(r.status, 0, r.stderr)
                for line in r.stdout.components(separatedBy: "\n") {
                    XCTAssertLessThanOrEqual(line.count, width, "gift help \(cmd) at \(width) columns: \(line)")
                }
                let paragraphs = Self.overview(r.stdout)
                let examples = paragraphs.filter { $0[0].hasPrefix("Example") }
                XCTAssertEqual(examples.count, 1, "gift help \(cmd): one example paragraph")
                XCTAssertTrue(examples.first.map { $0.dropFirst().contains { $0.contains("gift ") } } ?? false,
                              "gift help \(cmd): the example paragraph shows a gift command")
                // prose re-flows: a line ends only where the next word would not have fitted
                for p in paragraphs where !p[0].hasPrefix("Example") {
                    for (a, b) in zip(p, p.dropFirst()) {
                        let next = b.prefix { $0 != " " }
                        XCTAssertGreaterThanOrEqual(a.count + 1 + next.count, width,
                                                    "gift help \(cmd) at \(width) columns breaks early after: \(a)")
                    }
                }
                words[width] = paragraphs.joined().flatMap { $0.split(separator: " ").map(String.init) }
                lineCounts[width] = paragraphs.joined().count
            }
            XCTAssertEqual(words[60], words[120], "gift help \(cmd): the same text at both widths")
            XCTAssertGreaterThan(lineCounts[60]!, lineCounts[120]!, "gift help \(cmd): narrower is longer")
        }
    }
}
