import Foundation

/// RMSNorm over rows of width d: y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).
public enum RMSNorm {
    /// Forward; writes each row's rstd (needed by backward) when `rstd` is given.
    public static func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>?, rows: Int, d: Int, eps: Float) {
        Parallel.chunks(rows, minChunk: 16) { r0, r1 in
            for r in r0..<r1 {
                let xr = x + r * d, yr = y + r * d
                let s = 1 / (FastMath.dot(xr, xr, count: d) / Float(d) + eps).squareRoot()
                rstd?[r] = s
                for i in 0..<d { yr[i] = xr[i] * s * weight[i] }
            }
        }
    }

    /// Backward: dx += rstd·(g - x̂·mean(g·x̂)) with g = dy·w, x̂ = x·rstd; dw += Σ_rows dy·x̂.
    public static func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>,
                                rows: Int, d: Int) {
        // dx by rows, dw by columns: each worker owns what it writes, so no races and a fixed order.
        Parallel.chunks(rows, minChunk: 16) { r0, r1 in
            for r in r0..<r1 {
                let xr = x + r * d, dyr = dy + r * d, dxr = dx + r * d
                let s = rstd[r]
                var c: Float = 0
                for i in 0..<d { c += dyr[i] * weight[i] * xr[i] }
                c *= s / Float(d)
                for i in 0..<d { dxr[i] += s * (dyr[i] * weight[i] - xr[i] * s * c) }
            }
        }
        Parallel.chunks(d, minChunk: 16) { c0, c1 in
            for r in 0..<rows {
                let xr = x + r * d, dyr = dy + r * d, s = rstd[r]
                for i in c0..<c1 { dw[i] += dyr[i] * xr[i] * s }
            }
        }
    }
}
