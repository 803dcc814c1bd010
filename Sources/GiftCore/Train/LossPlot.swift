import Foundation

/// A small, dependency-free SVG line plot for training curves (loss against step).
///
/// `LossPlot.svg` returns a standalone SVG 1.1 document: a title, x and y axes with tick marks and "nice"
/// round tick values (4–8 per axis), axis labels, a light grid, a legend naming each series in its colour,
/// and one polyline per series (a single-point series is drawn as a dot; short series also get a marker
/// on every point). Points with a non-finite coordinate (or one beyond ±1e300) are skipped. A plot with no
/// drawable points still renders its axes with a "no data" note; a flat series gets a range around its value.
/// Series longer than `maxPolylinePoints` are downsampled by averaging buckets of consecutive points,
/// keeping the first and last points exactly.
public enum LossPlot {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    /// Polylines with more points than this are downsampled (bucket averages).
    static let maxPolylinePoints = 2000
    /// Series with at most this many drawable points get a marker on each point.
    static let markerLimit = 40
    /// Distinct series colours (cycled when there are more series).
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    public static func svg(series: [Series], title: String, xLabel: String, yLabel: String,
                           width: Int = 720, height: Int = 420) -> String {
        let w = Double(max(width, 240)), h = Double(max(height, 160))

        // Drawable points per series, and the data extent over all of them.
        let clean: [[(x: Double, y: Double)]] = series.map { s in s.points.filter { drawable($0.x) && drawable($0.y) } }
        var xmin = Double.infinity, xmax = -Double.infinity, ymin = Double.infinity, ymax = -Double.infinity
        for pts in clean {
            for p in pts {
                xmin = min(xmin, p.x); xmax = max(xmax, p.x)
                ymin = min(ymin, p.y); ymax = max(ymax, p.y)
            }
        }
        let empty = !xmin.isFinite
        if empty { xmin = 0; xmax = 1; ymin = 0; ymax = 1 }
        let xa = niceAxis(xmin, xmax), ya = niceAxis(ymin, ymax)

        // Layout: room on the left for the widest y tick label plus the rotated y label.
        let yTickWidth = Double(ya.labels.map { $0.count }.max() ?? 1) * 6.6
        let left = (30 + yTickWidth + 10).rounded(), top = 40.0, bottom = 50.0
        // …and on the right for half the last x tick label, centred on the plot's right edge.
        let right = max(18, (Double(xa.labels.last?.count ?? 1) * 3.4 + 6).rounded())
        let pw = w - left - right, ph = h - top - bottom
        func px(_ x: Double) -> Double {
            let t = (x - xa.lo) / (xa.hi - xa.lo)
            return left + min(max(t, 0), 1) * pw
        }
        func py(_ y: Double) -> Double {
            let t = (y - ya.lo) / (ya.hi - ya.lo)
            return top + ph - min(max(t, 0), 1) * ph
        }

        var o: [String] = []
        o.append(#"<?xml version="1.0" encoding="UTF-8"?>"#)
        o.append(#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\#(Int(w))" height="\#(Int(h))" "#
                 + #"viewBox="0 0 \#(Int(w)) \#(Int(h))" font-family="Helvetica, Arial, sans-serif">"#)
        o.append("<title>\(escape(title))</title>")
        o.append(#"<rect x="0" y="0" width="\#(Int(w))" height="\#(Int(h))" fill="white"/>"#)

        // Grid.
        o.append(#"<g class="grid" stroke="rgb(232,232,232)" stroke-width="1">"#)
        for t in xa.ticks {
            let x = coord(px(t))
            o.append(#"<line x1="\#(x)" y1="\#(coord(top))" x2="\#(x)" y2="\#(coord(top + ph))"/>"#)
        }
        for t in ya.ticks {
            let y = coord(py(t))
            o.append(#"<line x1="\#(coord(left))" y1="\#(y)" x2="\#(coord(left + pw))" y2="\#(y)"/>"#)
        }
        o.append("</g>")

        // Axes, tick marks, tick labels.
        o.append(#"<g class="axes" stroke="rgb(51,51,51)" stroke-width="1">"#)
        o.append(#"<line x1="\#(coord(left))" y1="\#(coord(top + ph))" x2="\#(coord(left + pw))" y2="\#(coord(top + ph))"/>"#)
        o.append(#"<line x1="\#(coord(left))" y1="\#(coord(top))" x2="\#(coord(left))" y2="\#(coord(top + ph))"/>"#)
        for t in xa.ticks {
            let x = coord(px(t))
            o.append(#"<line x1="\#(x)" y1="\#(coord(top + ph))" x2="\#(x)" y2="\#(coord(top + ph + 5))"/>"#)
        }
        for t in ya.ticks {
            let y = coord(py(t))
            o.append(#"<line x1="\#(coord(left - 5))" y1="\#(y)" x2="\#(coord(left))" y2="\#(y)"/>"#)
        }
        o.append("</g>")
        o.append(#"<g font-size="11" fill="rgb(51,51,51)">"#)
        for (t, label) in zip(xa.ticks, xa.labels) {
            o.append(#"<text class="xtick" x="\#(coord(px(t)))" y="\#(coord(top + ph + 18))" text-anchor="middle">\#(label)</text>"#)
        }
        for (t, label) in zip(ya.ticks, ya.labels) {
            o.append(#"<text class="ytick" x="\#(coord(left - 8))" y="\#(coord(py(t) + 4))" text-anchor="end">\#(label)</text>"#)
        }
        o.append("</g>")

        // Title and axis labels.
        o.append(#"<text class="title" x="\#(coord(w / 2))" y="24" font-size="15" font-weight="bold" text-anchor="middle" fill="rgb(17,17,17)">\#(escape(title))</text>"#)
        o.append(#"<text class="xlabel" x="\#(coord(left + pw / 2))" y="\#(coord(h - 12))" font-size="12" text-anchor="middle" fill="rgb(17,17,17)">\#(escape(xLabel))</text>"#)
        let yc = coord(top + ph / 2)
        o.append(#"<text class="ylabel" x="18" y="\#(yc)" transform="rotate(-90 18 \#(yc))" font-size="12" text-anchor="middle" fill="rgb(17,17,17)">\#(escape(yLabel))</text>"#)

        if empty {
            o.append(#"<text class="nodata" x="\#(coord(left + pw / 2))" y="\#(coord(top + ph / 2))" font-size="14" text-anchor="middle" fill="rgb(136,136,136)">no data</text>"#)
        }

        // Data.
        for (i, pts) in clean.enumerated() {
            let color = palette[i % palette.count]
            if pts.count == 1 {
                o.append(#"<circle class="series" cx="\#(coord(px(pts[0].x)))" cy="\#(coord(py(pts[0].y)))" r="3.5" fill="\#(color)"/>"#)
                continue
            }
            guard pts.count >= 2 else { continue }
            let drawn = downsample(pts, maxPoints: maxPolylinePoints)
            var d = ""
            d.reserveCapacity(drawn.count * 14)
            for (k, p) in drawn.enumerated() {
                if k > 0 { d += " " }
                d += coord(px(p.x)); d += ","; d += coord(py(p.y))
            }
            o.append(#"<polyline class="series" fill="none" stroke="\#(color)" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round" points="\#(d)"/>"#)
            if pts.count <= markerLimit {
                o.append(#"<g fill="\#(color)">"#)
                for p in pts { o.append(#"<circle cx="\#(coord(px(p.x)))" cy="\#(coord(py(p.y)))" r="2.5"/>"#) }
                o.append("</g>")
            }
        }

        // Legend (top right inside the plot area).
        if !series.isEmpty {
            let names = series.map { escape(oneLine($0.name)) }
            let longest = series.map { oneLine($0.name).count }.max() ?? 0
            let bw = 38 + Double(longest) * 6.8, bh = 8 + 18 * Double(series.count)
            let bx = max(left + 4, left + pw - bw - 8), by = top + 8
            o.append(#"<g class="legend" font-size="12">"#)
            o.append(#"<rect x="\#(coord(bx))" y="\#(coord(by))" width="\#(coord(bw))" height="\#(coord(bh))" fill="white" fill-opacity="0.85" stroke="rgb(204,204,204)"/>"#)
            for (i, name) in names.enumerated() {
                let color = palette[i % palette.count]
                let ry = by + 4 + 18 * Double(i) + 9
                o.append(#"<line x1="\#(coord(bx + 8))" y1="\#(coord(ry))" x2="\#(coord(bx + 28))" y2="\#(coord(ry))" stroke="\#(color)" stroke-width="2.5"/>"#)
                o.append(#"<text class="legend-label" x="\#(coord(bx + 34))" y="\#(coord(ry + 4))" fill="rgb(17,17,17)">\#(name)</text>"#)
            }
            o.append("</g>")
        }

        o.append("</svg>")
        return o.joined(separator: "\n") + "\n"
    }

    // MARK: - Internals

    /// A coordinate worth plotting: finite and not so large that spans overflow.
    static func drawable(_ v: Double) -> Bool { v.isFinite && abs(v) <= 1e300 }

    struct Axis {
        var lo: Double
        var hi: Double
        var step: Double
        var ticks: [Double]
        var labels: [String]
    }

    /// An axis covering [lo, hi] whose ends and ticks are multiples of a round step (1, 2, 2.5 or 5 × 10^k),
    /// with 4–8 ticks. A degenerate range (flat data) is widened around its value.
    static func niceAxis(_ lo0: Double, _ hi0: Double) -> Axis {
        var lo = min(lo0, hi0), hi = max(lo0, hi0)
        if !lo.isFinite || !hi.isFinite { lo = 0; hi = 1 }
        let mag = max(abs(lo), abs(hi))
        if !(hi - lo > mag * 1e-9) || hi - lo < 1e-300 {
            let c = (lo + hi) / 2
            let pad = c == 0 ? 1 : abs(c) * 0.1
            lo = c - pad; hi = c + pad
        }
        let span = hi - lo
        var exponent = floor(log10(span / 8)) - 1
        for _ in 0..<12 {
            let p = pow(10, exponent)
            for m in [1.0, 2.0, 2.5, 5.0] {
                let step = m * p
                let k0 = floor(lo / step + 1e-9), k1 = ceil(hi / step - 1e-9)
                let n = Int(k1 - k0) + 1
                guard n <= 8 else { continue }
                let ticks = (0..<n).map { (k0 + Double($0)) * step }
                let maxAbs = ticks.map { abs($0) }.max() ?? step
                let sig = Int(floor(log10(maxAbs)) - floor(log10(step))) + 1 + (m == 2.5 ? 1 : 0)
                let digits = min(max(sig, 1), 15)
                return Axis(lo: k0 * step, hi: k1 * step, step: step, ticks: ticks,
                            labels: ticks.map { compact($0, significant: digits) })
            }
            exponent += 1
        }
        // Unreachable in practice; fall back to the bare ends.
        return Axis(lo: lo, hi: hi, step: span, ticks: [lo, hi], labels: [compact(lo), compact(hi)])
    }

    /// Compact number text: "0", "0.5", "2500", "12.25", and exponent form ("1e-3", "2.5e-4", "1.5e6")
    /// outside [0.01, 1e5). `significant` bounds the significant digits; trailing zeros are dropped.
    static func compact(_ v: Double, significant: Int = 4) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == 0 { return "0" }
        let sig = min(max(significant, 1), 17)
        let a = abs(v)
        let e = Int(floor(log10(a)))
        if a >= 0.01 && a < 1e5 {
            let decimals = min(max(sig - 1 - e, 0), 17)
            return trimZeros(String(format: "%.\(decimals)f", v))
        }
        var exp = e
        var m = v / pow(10, Double(exp))
        let scale = pow(10, Double(sig - 1))
        m = (m * scale).rounded() / scale
        if abs(m) >= 10 { m /= 10; exp += 1 }
        if abs(m) < 1 { m *= 10; exp -= 1 }
        return trimZeros(String(format: "%.\(sig - 1)f", m)) + "e\(exp)"
    }

    private static func trimZeros(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = Substring(s)
        while t.last == "0" { t = t.dropLast() }
        if t.last == "." { t = t.dropLast() }
        return t == "-0" ? "0" : String(t)
    }

    /// A coordinate with at most two decimals ("12", "12.5", "12.25"); clamped to a sane range.
    static func coord(_ v: Double) -> String {
        let c = v.isFinite ? min(max(v, -1e6), 1e6) : 0
        let r = Int((c * 100).rounded())
        let a = abs(r)
        var s = r < 0 ? "-" : ""
        s += String(a / 100)
        let f = a % 100
        if f != 0 {
            if f % 10 == 0 { s += "." + String(f / 10) } else { s += (f < 10 ? ".0" : ".") + String(f) }
        }
        return s
    }

    /// Text safe for XML character data and attribute values (`MarkupEscaping.xml`).
    static func escape(_ s: String) -> String { MarkupEscaping.xml.escape(s) }

    private static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" || $0 == "\t" ? " " : $0 })
    }

    /// At most `maxPoints` points: the first and last points unchanged, the ones between averaged in
    /// `maxPoints − 2` buckets of consecutive points (x and y alike).
    static func downsample(_ pts: [(x: Double, y: Double)], maxPoints: Int) -> [(x: Double, y: Double)] {
        let n = pts.count
        guard n > maxPoints else { return pts }
        guard maxPoints >= 3 else { return maxPoints == 2 ? [pts[0], pts[n - 1]] : Array(pts.prefix(max(maxPoints, 0))) }
        let inner = n - 2, buckets = maxPoints - 2
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(maxPoints)
        out.append(pts[0])
        for b in 0..<buckets {
            let s = 1 + b * inner / buckets, e = 1 + (b + 1) * inner / buckets
            var sx = 0.0, sy = 0.0
            for i in s..<e { sx += pts[i].x; sy += pts[i].y }
            let c = Double(e - s)
            out.append((x: sx / c, y: sy / c))
        }
        out.append(pts[n - 1])
        return out
    }
}
