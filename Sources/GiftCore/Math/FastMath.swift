/// Vectorised exp for the softmax loops (the hot transcendental of attention and the output head).
/// Cephes-style: e^x = 2^n · e^r, n = round(x·log2 e), |r| ≤ ln2/2, degree-6 polynomial; relative
/// error about 2e-7; inputs above 88 give +inf (e^88 is near Float.max), below -87.3 give 0. Written with bit casts and `replacing(with:where:)`
/// because `clamped` and Int32(float vector) conversions compile to slow scalar code.
public enum FastMath {
    public typealias V = SIMD8<Float>

    @inline(__always) public static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }
    @inline(__always) public static func load(_ p: UnsafeMutablePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }
    @inline(__always) public static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    @inline(__always)
    public static func exp(_ x0: V) -> V {
        let hi = V(repeating: 88.0), lo = V(repeating: -87.33654)
        var x = x0.replacing(with: hi, where: x0 .> hi)
        x = x.replacing(with: lo, where: x .< lo)
        // n = round(x·log2e) via the 1.5·2^23 trick: the integer lands in the low mantissa bits.
        let magic = V(repeating: 12582912.0)
        let t = x * V(repeating: 1.44269504088896341) + magic
        let n = t - magic
        var r = x - n * V(repeating: 0.693359375)
        r = r - n * V(repeating: -2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + V(repeating: 1.3981999507e-3)
        p = p * r + V(repeating: 8.3334519073e-3)
        p = p * r + V(repeating: 4.1665795894e-2)
        p = p * r + V(repeating: 1.6666665459e-1)
        p = p * r + V(repeating: 5.0000001201e-1)
        p = p * r * r + r + V(repeating: 1)
        // 2^n: (n + 127) << 23, taken from t's bits (t's low bits hold n + 0x400000 offset).
        let tb = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let pow2 = unsafeBitCast((tb &+ 127) &<< 23, to: V.self)
        var out = p * pow2
        out = out.replacing(with: V(repeating: 0), where: x0 .< lo)   // underflow to exactly 0
        out = out.replacing(with: V(repeating: .infinity), where: x0 .> hi)
        out = out.replacing(with: x0, where: x0 .!= x0)                    // NaN stays NaN
        return out
    }

    /// out[i] = exp(x[i] - shift); returns the sum of the outputs (in Double for stable row sums).
    @inline(__always)
    public static func expShifted(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count n: Int,
                                  shift: Float) -> Float {
        var acc = V(repeating: 0), acc2 = V(repeating: 0)
        let s = V(repeating: shift)
        var i = 0
        // two independent vectors per iteration: the polynomial is a long dependency chain, so
        // interleaving two of them keeps the FMA units busy
        while i + 16 <= n {
            let e1 = exp(load(x + i) - s), e2 = exp(load(x + i + 8) - s)
            store(e1, out + i); store(e2, out + i + 8)
            acc += e1; acc2 += e2
            i += 16
        }
        acc += acc2
        while i + 8 <= n {
            let e = exp(load(x + i) - s)
            store(e, out + i)
            acc += e
            i += 8
        }
        var tail: Float = 0
        if i < n {
            var v = V(repeating: -.infinity)
            for j in i..<n { v[j - i] = x[j] - shift }
            let e = exp(v)
            for j in i..<n { out[j] = e[j - i]; tail += e[j - i] }
        }
        return acc.sum() + tail
    }

    /// Maximum of a row.
    @inline(__always)
    public static func max(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var m = V(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            m = pointwiseMax(m, load(x + i))
            i += 8
        }
        var r = m.max()
        while i < n { r = Swift.max(r, x[i]); i += 1 }
        return r
    }

    /// x[i] *= a
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, count n: Int, by a: Float) {
        for i in 0..<n { x[i] *= a }
    }

    /// Σ a[i]·b[i] accumulated in Float SIMD lanes.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += load(a + i) * load(b + i)
            i += 8
        }
        var r = acc.sum()
        while i < n { r += a[i] * b[i]; i += 1 }
        return r
    }
}
