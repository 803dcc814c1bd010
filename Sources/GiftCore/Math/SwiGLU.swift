import Foundation

/// The LLaDA MLP gate: h = silu(a) · u, with a = ff_proj(x) and u = up_proj(x). The model computes
/// both projections in one GEMM, so a and u arrive as the two halves of each row of `au` [rows, 2·ff].
public enum SwiGLU {
    @inline(__always) static func sigmoid(_ a: Float) -> Float { 1 / (1 + Foundation.exp(-a)) }

    public static func forward(au: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, rows: Int, ff: Int) {
        Parallel.chunks(rows, minChunk: 8) { r0, r1 in
            for r in r0..<r1 {
                let a = au + r * 2 * ff, u = a + ff, hr = h + r * ff
                var i = 0
                while i + 8 <= ff {
                    let av = FastMath.load(a + i), uv = FastMath.load(u + i)
                    FastMath.store(av * uv / (1 + FastMath.exp(-av)), hr + i)
                    i += 8
                }
                while i < ff { hr[i] = a[i] * sigmoid(a[i]) * u[i]; i += 1 }
            }
        }
    }

    /// da = dh · u · silu'(a), du = dh · silu(a), silu'(a) = σ(a)(1 + a(1 − σ(a))); written into `dau`.
    public static func backward(au: UnsafePointer<Float>, dh: UnsafePointer<Float>, dau: UnsafeMutablePointer<Float>,
                                rows: Int, ff: Int) {
        let one = FastMath.V(repeating: 1)
        Parallel.chunks(rows, minChunk: 8) { r0, r1 in
            for r in r0..<r1 {
                let a = au + r * 2 * ff, u = a + ff, g = dh + r * ff
                let da = dau + r * 2 * ff, du = da + ff
                var i = 0
                while i + 8 <= ff {
                    let av = FastMath.load(a + i), uv = FastMath.load(u + i), gv = FastMath.load(g + i)
                    let sig = one / (one + FastMath.exp(-av))
                    FastMath.store(gv * av * sig, du + i)
                    FastMath.store(gv * uv * sig * (one + av * (one - sig)), da + i)
                    i += 8
                }
                while i < ff {
                    let s = sigmoid(a[i])
                    du[i] = g[i] * a[i] * s
                    da[i] = g[i] * u[i] * s * (1 + a[i] * (1 - s))
                    i += 1
                }
            }
        }
    }
}
