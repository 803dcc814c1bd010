import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import GiftCore

/// Collects what the plot tests look at from an SVG document.
private final class SVGScan: NSObject, XMLParserDelegate {
    var rootName: String?
    var rootXmlns: String?
    var polylines: [[String: String]] = []
    var circles = 0
    var texts: [(cls: String, text: String)] = []
    var numericAttributes: [String] = []
    private var textStack: [(cls: String, text: String)] = []

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        if rootName == nil { rootName = name; rootXmlns = attributes["xmlns"] }
        if name == "polyline" { polylines.append(attributes) }
        if name == "circle" { circles += 1 }
        for key in ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height"] {
            if let v = attributes[key] { numericAttributes.append(v) }
        }
        if name == "text" { textStack.append((attributes["class"] ?? "", "")) }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if !textStack.isEmpty { textStack[textStack.count - 1].text += string }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let t = textStack.popLast() { texts.append(t) }
    }

    func texts(_ cls: String) -> [String] { texts.filter { $0.cls == cls }.map { $0.text } }
}

private func scanSVG(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGScan {
    let parser = XMLParser(data: Data(svg.utf8))
    let scan = SVGScan()
    parser.delegate = scan
    let ok = parser.parse()
    XCTAssertTrue(ok, "SVG does not parse as XML: \(String(describing: parser.parserError))", file: file, line: line)
    XCTAssertEqual(scan.rootName, "svg", file: file, line: line)
    XCTAssertEqual(scan.rootXmlns, "http://www.w3.org/2000/svg", file: file, line: line)
    return scan
}

/// Tick labels are numbers, strictly increasing, 4 to 8 of them.
private func checkTicks(_ labels: [String], _ axis: String, file: StaticString = #filePath, line: UInt = #line) {
    let values = labels.compactMap { Double($0) }
    XCTAssertEqual(values.count, labels.count, "\(axis) tick labels not all numeric: \(labels)", file: file, line: line)
    XCTAssertTrue((4...8).contains(values.count), "\(axis) has \(values.count) ticks: \(labels)", file: file, line: line)
    for (a, b) in zip(values, values.dropFirst()) {
        XCTAssertLessThan(a, b, "\(axis) tick labels not increasing: \(labels)", file: file, line: line)
    }
}

/// Every coordinate-like attribute and every polyline point is a finite number.
private func checkFinite(_ svg: String, _ scan: SVGScan, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(svg.lowercased().contains("nan"), "nan in SVG", file: file, line: line)
    XCTAssertFalse(svg.contains("inf\""), "inf in SVG", file: file, line: line)
    for v in scan.numericAttributes {
        XCTAssertNotNil(Double(v).flatMap { $0.isFinite ? $0 : nil }, "non-numeric attribute \(v)", file: file, line: line)
    }
    for p in scan.polylines {
        for pair in (p["points"] ?? "").split(separator: " ") {
            let xy = pair.split(separator: ",").compactMap { Double($0) }
            XCTAssertEqual(xy.count, 2, "bad point \(pair)", file: file, line: line)
            XCTAssertTrue(xy.allSatisfy { $0.isFinite }, file: file, line: line)
        }
    }
}

final class PlotProgressTests: XCTestCase {
    // MARK: LossPlot

    func testPlotStructure() {
        let train = LossPlot.Series(name: "train loss",
                                    points: (1...300).map { (i: Int) -> (x: Double, y: Double) in
                                        let x = Double(i)
                                        return (x: x, y: 3 * exp(-x / 80) + 0.4)
                                    })
        let val = LossPlot.Series(name: "validation loss",
                                  points: [(x: 100, y: 1.3), (x: 200, y: 0.9), (x: 300, y: 0.75)])
        let svg = LossPlot.svg(series: [train, val], title: "Run 7", xLabel: "optimizer step", yLabel: "loss")
        let scan = scanSVG(svg)
        XCTAssertTrue(svg.contains("width=\"720\"") && svg.contains("height=\"420\""))
        XCTAssertEqual(scan.texts("title"), ["Run 7"])
        XCTAssertEqual(scan.texts("xlabel"), ["optimizer step"])
        XCTAssertEqual(scan.texts("ylabel"), ["loss"])
        XCTAssertEqual(scan.texts("legend-label"), ["train loss", "validation loss"])
        XCTAssertEqual(scan.polylines.count, 2)
        XCTAssertNotEqual(scan.polylines[0]["stroke"], scan.polylines[1]["stroke"])
        XCTAssertEqual(scan.polylines[0]["points"]?.split(separator: " ").count, 300)
        checkTicks(scan.texts("xtick"), "x")
        checkTicks(scan.texts("ytick"), "y")
        XCTAssertTrue(scan.texts("nodata").isEmpty)
        checkFinite(svg, scan)
        // The x ticks cover the data: first ≤ 1, last ≥ 300.
        let xt = scan.texts("xtick").compactMap { Double($0) }
        XCTAssertLessThanOrEqual(xt.first ?? .infinity, 1)
        XCTAssertGreaterThanOrEqual(xt.last ?? -.infinity, 300)
    }

    func testSinglePointSeriesIsADotAndNonFiniteSkipped() {
        let a = LossPlot.Series(name: "a", points: [(x: 0, y: 1), (x: .nan, y: 2), (x: 2, y: .infinity), (x: 3, y: 0.5)])
        let b = LossPlot.Series(name: "b", points: [(x: 1, y: 0.7), (x: 2, y: -.infinity)])
        let svg = LossPlot.svg(series: [a, b], title: "t", xLabel: "x", yLabel: "y")
        let scan = scanSVG(svg)
        XCTAssertEqual(scan.polylines.count, 1)
        XCTAssertEqual(scan.polylines[0]["points"]?.split(separator: " ").count, 2)
        XCTAssertGreaterThanOrEqual(scan.circles, 1)
        checkFinite(svg, scan)
        checkTicks(scan.texts("ytick"), "y")
    }

    func testEscaping() {
        let s = LossPlot.Series(name: "a<b> & \"c\" 'd'", points: [(x: 0, y: 1), (x: 1, y: 2)])
        let svg = LossPlot.svg(series: [s], title: "T&T <run>", xLabel: "x \"q\"", yLabel: "y's")
        XCTAssertTrue(svg.contains("T&amp;T &lt;run&gt;"))
        XCTAssertTrue(svg.contains("a&lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;"))
        XCTAssertFalse(svg.contains("<run>"))
        let scan = scanSVG(svg)
        XCTAssertEqual(scan.texts("title"), ["T&T <run>"])
        XCTAssertEqual(scan.texts("xlabel"), ["x \"q\""])
        XCTAssertEqual(scan.texts("ylabel"), ["y's"])
        XCTAssertEqual(scan.texts("legend-label"), ["a<b> & \"c\" 'd'"])
        XCTAssertEqual(LossPlot.escape("<&>\"'\u{1}ok"), "&lt;&amp;&gt;&quot;&apos;ok")
    }

    func testDownsampling() {
        let n = 10_007
        let pts: [(x: Double, y: Double)] = (0..<n).map { i -> (x: Double, y: Double) in
            let t = Double(i)
            return (x: t * 0.5 + 3, y: sin(t / 500) + 2)
        }
        let d = LossPlot.downsample(pts, maxPoints: 2000)
        XCTAssertLessThanOrEqual(d.count, 2000)
        XCTAssertGreaterThan(d.count, 1000)
        XCTAssertEqual(d.first?.x, pts.first?.x)
        XCTAssertEqual(d.last?.x, pts.last?.x)
        XCTAssertEqual(d.first?.y, pts.first?.y)
        XCTAssertEqual(d.last?.y, pts.last?.y)
        for (a, b) in zip(d, d.dropFirst()) { XCTAssertLessThan(a.x, b.x) }
        // Averages of a smooth curve stay close to it.
        for p in d { XCTAssertEqual(p.y, sin((p.x - 3) / 0.5 / 500) + 2, accuracy: 0.01) }
        // Short input is untouched.
        XCTAssertEqual(LossPlot.downsample(Array(pts.prefix(50)), maxPoints: 2000).count, 50)

        let svg = LossPlot.svg(series: [LossPlot.Series(name: "train loss", points: pts)],
                               title: "big", xLabel: "step", yLabel: "loss")
        let scan = scanSVG(svg)
        XCTAssertEqual(scan.polylines.count, 1)
        let drawn = scan.polylines[0]["points"]?.split(separator: " ").count ?? 0
        XCTAssertLessThanOrEqual(drawn, LossPlot.maxPolylinePoints)
        XCTAssertGreaterThan(drawn, 1000)
        checkFinite(svg, scan)
    }

    func testEmptyPlot() {
        for series in [[], [LossPlot.Series(name: "train loss", points: [])],
                       [LossPlot.Series(name: "train loss", points: [(x: .nan, y: 1), (x: 2, y: .nan)])]] {
            let svg = LossPlot.svg(series: series, title: "empty", xLabel: "step", yLabel: "loss")
            let scan = scanSVG(svg)
            XCTAssertEqual(scan.texts("nodata"), ["no data"])
            XCTAssertEqual(scan.polylines.count, 0)
            checkTicks(scan.texts("xtick"), "x")
            checkTicks(scan.texts("ytick"), "y")
            checkFinite(svg, scan)
        }
    }

    func testFlatSeries() {
        for y in [0.0, 2.5, -1e-7, 12345.678] {
            let s = LossPlot.Series(name: "flat", points: (0..<10).map { (x: Double($0), y: y) })
            let one = LossPlot.Series(name: "one", points: [(x: 5, y: y)])
            let svg = LossPlot.svg(series: [s, one], title: "flat", xLabel: "step", yLabel: "loss")
            let scan = scanSVG(svg)
            XCTAssertEqual(scan.polylines.count, 1)
            checkTicks(scan.texts("ytick"), "y")
            let yt = scan.texts("ytick").compactMap { Double($0) }
            XCTAssertLessThanOrEqual(yt.first ?? .infinity, y)
            XCTAssertGreaterThanOrEqual(yt.last ?? -.infinity, y)
            checkFinite(svg, scan)
        }
        // A single point alone: both axes degenerate.
        let svg = LossPlot.svg(series: [LossPlot.Series(name: "v", points: [(x: 7, y: 0.3)])],
                               title: "dot", xLabel: "step", yLabel: "loss", width: 10, height: 10)
        let scan = scanSVG(svg)
        XCTAssertEqual(scan.polylines.count, 0)
        XCTAssertEqual(scan.circles, 1)
        checkTicks(scan.texts("xtick"), "x")
        checkFinite(svg, scan)
    }

    func testNiceAxisAndCompactFormat() {
        let ranges: [(Double, Double)] = [(0, 1), (0.37, 9.2), (1, 10_000), (2.3e-4, 7.1e-4), (-3, 4),
                                          (1e6, 1e6 + 3), (0.999, 1.001), (1, 1.5), (0, 2_500), (-1e-9, 1e-9),
                                          (5, 5), (123.4, 123.4), (1e-300, 1e300)]
        for (lo, hi) in ranges {
            let a = LossPlot.niceAxis(lo, hi)
            XCTAssertTrue((4...8).contains(a.ticks.count), "\(lo)…\(hi): \(a.labels)")
            XCTAssertLessThanOrEqual(a.lo, lo)
            XCTAssertGreaterThanOrEqual(a.hi, hi)
            XCTAssertLessThan(a.lo, a.hi)
            checkTicks(a.labels, "\(lo)…\(hi)")
            for (t, l) in zip(a.ticks, a.labels) {
                XCTAssertEqual(Double(l)!, t, accuracy: a.step * 1e-6, "\(lo)…\(hi): \(a.labels)")
            }
        }
        XCTAssertEqual(LossPlot.niceAxis(0, 1).labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        XCTAssertEqual(LossPlot.compact(0.5), "0.5")
        XCTAssertEqual(LossPlot.compact(0.001), "1e-3")
        XCTAssertEqual(LossPlot.compact(2500), "2500")
        XCTAssertEqual(LossPlot.compact(2.5e-4), "2.5e-4")
        XCTAssertEqual(LossPlot.compact(150_000), "1.5e5")
        XCTAssertEqual(LossPlot.compact(-0.25), "-0.25")
        XCTAssertEqual(LossPlot.compact(0), "0")
        XCTAssertEqual(LossPlot.compact(9.99996e-4, significant: 3), "1e-3")
        XCTAssertEqual(LossPlot.coord(12.5), "12.5")
        XCTAssertEqual(LossPlot.coord(-0.004), "0")
        XCTAssertEqual(LossPlot.coord(3.05), "3.05")
    }

    // MARK: ProgressReporter

    private final class Capture {
        var chunks: [String] = []
        var text: String { chunks.joined() }
    }

    private func reporter(total: Int, terminal: Bool, clock: @escaping () -> Double,
                          minInterval: Double = 0.2, plainEvery: Double = 10) -> (ProgressReporter, Capture) {
        let cap = Capture()
        let r = ProgressReporter(total: total, isTerminal: terminal, output: { cap.chunks.append($0) },
                                 minInterval: minInterval, plainEvery: plainEvery, clock: clock)
        return (r, cap)
    }

    func testTerminalRedrawsAndThrottles() {
        var t = 100.0
        let (r, cap) = reporter(total: 100, terminal: true, clock: { t })
        r.update(step: 0, fields: [("loss", "9.000")])
        XCTAssertEqual(cap.chunks.count, 1)
        XCTAssertTrue(cap.chunks[0].hasPrefix("\r["))
        XCTAssertTrue(cap.chunks[0].hasSuffix("\u{1B}[K"))
        XCTAssertTrue(cap.chunks[0].contains("0/100 0%"))
        XCTAssertTrue(cap.chunks[0].contains("-- step/s ETA --:--"))
        // Updates inside minInterval are dropped.
        for s in 1...5 { t += 0.03; r.update(step: s, fields: [("loss", "8.0")]) }
        XCTAssertEqual(cap.chunks.count, 1)
        t = 100.25
        r.update(step: 45, fields: [("loss", "1.234")])
        XCTAssertEqual(cap.chunks.count, 2)
        XCTAssertEqual(cap.chunks[1],
                       "\r[#########...........] 45/100 45% 180 step/s ETA 0:00 loss 1.234\u{1B}[K")
        t = 100.3
        r.update(step: 50, fields: [("loss", "1.1")])
        XCTAssertEqual(cap.chunks.count, 2, "throttled")
        // The last step always prints, however soon.
        t = 100.31
        r.update(step: 100, fields: [("loss", "0.5")])
        XCTAssertEqual(cap.chunks.count, 3)
        XCTAssertTrue(cap.chunks[2].hasPrefix("\r[####################] 100/100 100%"))
        XCTAssertTrue(cap.chunks[2].contains("elapsed 0:00 loss 0.5"))
        XCTAssertFalse(cap.text.contains("\n"))
        r.finish()
        XCTAssertEqual(cap.chunks.last, "\n")
        r.finish()
        r.update(step: 100, fields: [])
        XCTAssertEqual(cap.chunks.count, 4)
    }

    func testTerminalRateAndETA() {
        var t = 0.0
        let (r, cap) = reporter(total: 1000, terminal: true, clock: { t })
        r.update(step: 1, fields: [])
        t = 10
        r.update(step: 33, fields: [("loss", "2.5"), ("lr", "3e-4")])
        // 32 steps in 10 s: 3.2 step/s; 967 steps left: 302 s.
        XCTAssertEqual(cap.chunks.last, "\r[....................] 33/1000 3% 3.2 step/s ETA 5:02 loss 2.5 lr 3e-4\u{1B}[K")
    }

    func testFinishPrintsThrottledState() {
        var t = 0.0
        let (r, cap) = reporter(total: 100, terminal: true, clock: { t })
        r.update(step: 1, fields: [])
        t = 0.05
        r.update(step: 7, fields: [("loss", "3.0")])
        XCTAssertEqual(cap.chunks.count, 1)
        r.finish()
        XCTAssertEqual(cap.chunks.count, 3)
        XCTAssertTrue(cap.chunks[1].contains("7/100") && cap.chunks[1].contains("loss 3.0"))
        XCTAssertEqual(cap.chunks[2], "\n")
    }

    func testPlainModeFirstLastAndThrottle() {
        var t = 0.0
        let (r, cap) = reporter(total: 100, terminal: false, clock: { t }, plainEvery: 10)
        for s in 1...100 {
            r.update(step: s, fields: [("loss", "1.234")])
            t += 0.5  // 2 steps per second: 50 s in all
        }
        let lines = cap.text.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.last, "")
        let printed = lines.dropLast()
        // First (t=0), then one at t=10, 20, 30, 40, then the last (t=49.5).
        XCTAssertEqual(printed.count, 6, "\(printed)")
        XCTAssertEqual(printed.first, "step 1/100 (1%) -- step/s ETA --:-- loss 1.234")
        XCTAssertEqual(printed[1], "step 21/100 (21%) 2.0 step/s ETA 0:40 loss 1.234")
        XCTAssertTrue(printed.last!.hasPrefix("step 100/100 (100%) 2.0 step/s elapsed 0:50"))
        XCTAssertFalse(cap.text.contains("\r"))
        XCTAssertFalse(cap.text.contains("\u{1B}"))
        r.finish()
        XCTAssertEqual(cap.text.split(separator: "\n").count, 6, "finish adds nothing after the last step")
    }

    func testPlainModeFinishAfterEarlyStop() {
        var t = 0.0
        let (r, cap) = reporter(total: 100, terminal: false, clock: { t })
        r.update(step: 1, fields: [])
        t = 1
        r.update(step: 5, fields: [])
        XCTAssertEqual(cap.chunks.count, 1)
        r.finish()
        XCTAssertEqual(cap.chunks.count, 2)
        XCTAssertTrue(cap.chunks[1].hasPrefix("step 5/100 (5%) 4.0 step/s ETA 0:24"))
        XCTAssertTrue(cap.chunks[1].hasSuffix("\n"))
    }

    func testUnknownTotal() {
        var t = 0.0
        let (r, cap) = reporter(total: 0, terminal: false, clock: { t })
        r.update(step: 1, fields: [("loss", "1")])
        t = 20
        r.update(step: 41, fields: [("loss", "2")])
        XCTAssertEqual(cap.chunks, ["step 1 -- step/s loss 1\n", "step 41 2.0 step/s loss 2\n"])
    }

    func testDurationFormatting() {
        XCTAssertEqual(ProgressReporter.formatDuration(0), "0:00")
        XCTAssertEqual(ProgressReporter.formatDuration(17), "0:17")
        XCTAssertEqual(ProgressReporter.formatDuration(59.6), "1:00")
        XCTAssertEqual(ProgressReporter.formatDuration(725), "12:05")
        XCTAssertEqual(ProgressReporter.formatDuration(3599), "59:59")
        XCTAssertEqual(ProgressReporter.formatDuration(3600), "1:00:00")
        XCTAssertEqual(ProgressReporter.formatDuration(3723), "1:02:03")
        XCTAssertEqual(ProgressReporter.formatDuration(100 * 3600 + 5), "100:00:05")
        XCTAssertEqual(ProgressReporter.formatDuration(.nan), "--:--")
        XCTAssertEqual(ProgressReporter.formatDuration(.infinity), "--:--")
        XCTAssertEqual(ProgressReporter.formatDuration(-1), "--:--")
        XCTAssertEqual(ProgressReporter.formatRate(3.2), "3.2")
        XCTAssertEqual(ProgressReporter.formatRate(250.4), "250")
        XCTAssertEqual(ProgressReporter.formatRate(0.25), "0.25")
        _ = ProgressReporter.stderrIsTerminal
    }
}
