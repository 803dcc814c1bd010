import Foundation

/// RMSNorm over rows of width d: y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).
public enum RMSNorm {
    /// Forward; writes each row's rstd (needed by backward) when `rstd` is given.
    public static func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>?, rows: Int, d: Int, eps: Float) {
        for r in 0..<rows {
            let xr = x + r * d, yr = y + r * d
            let s = 1 / (FastMath.dot(xr, xr, count: d) / Float(d) + eps).squareRoot()
            rstd?[r] = s
            for i in 0..<d { yr[i] = xr[i] * s * weight[i] }
        }
    }

    /// Backward: dx += rstd·(g - x̂·mean(g·x̂)) with g = dy·w, x̂ = x·rstd; dw += Σ_rows dy·x̂.
    public static func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>,
                                rows: Int, d: Int) {
        for r in 0..<rows {
            let xr = x + r * d, dyr = dy + r * d, dxr = dx + r * d
            let s = rstd[r]
            var c: Float = 0
            for i in 0..<d {
                let xh = xr[i] * s
                let g = dyr[i] * weight[i]
                c += g * xh
                dw[i] += dyr[i] * xh
            }
            c /= Float(d)
            for i in 0..<d {
                let xh = xr[i] * s
                dxr[i] += s * (dyr[i] * weight[i] - xh * c)
            }
        }
    }
}
