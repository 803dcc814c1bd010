import Foundation

/// The LLaDA MLP gate: h = silu(a) · u, with a = ff_proj(x) and u = up_proj(x).
public enum SwiGLU {
    @inline(__always) static func sigmoid(_ a: Float) -> Float { 1 / (1 + Foundation.exp(-a)) }

    public static func forward(a: UnsafePointer<Float>, u: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.chunks(n / 8, minChunk: 1024) { c0, c1 in
            forwardRange(a: a, u: u, h: h, from: c0 * 8, to: c1 == n / 8 ? n : c1 * 8)
        }
    }

    static func forwardRange(a: UnsafePointer<Float>, u: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, from: Int, to n: Int) {
        var i = from
        while i + 8 <= n {
            let av = FastMath.load(a + i), uv = FastMath.load(u + i)
            let sig = 1 / (1 + FastMath.exp(-av))
            FastMath.store(av * sig * uv, h + i)
            i += 8
        }
        while i < n { h[i] = a[i] * sigmoid(a[i]) * u[i]; i += 1 }
    }

    /// da = dh · u · silu'(a), du = dh · silu(a), silu'(a) = σ(a)(1 + a(1 − σ(a))).
    public static func backward(a: UnsafePointer<Float>, u: UnsafePointer<Float>, dh: UnsafePointer<Float>,
                                da: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.chunks(n / 8, minChunk: 1024) { c0, c1 in
            backwardRange(a: a, u: u, dh: dh, da: da, du: du, from: c0 * 8, to: c1 == n / 8 ? n : c1 * 8)
        }
    }

    static func backwardRange(a: UnsafePointer<Float>, u: UnsafePointer<Float>, dh: UnsafePointer<Float>,
                              da: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>, from: Int, to n: Int) {
        var i = from
        let one = FastMath.V(repeating: 1)
        while i + 8 <= n {
            let av = FastMath.load(a + i), uv = FastMath.load(u + i), g = FastMath.load(dh + i)
            let sig = one / (one + FastMath.exp(-av))
            FastMath.store(g * av * sig, du + i)
            FastMath.store(g * uv * sig * (one + av * (one - sig)), da + i)
            i += 8
        }
        while i < n {
            let s = sigmoid(a[i])
            du[i] = dh[i] * a[i] * s
            da[i] = dh[i] * u[i] * s * (1 + a[i] * (1 - s))
            i += 1
        }
    }
}
