/// Vectorised exp for the softmax loops (the hot transcendental of attention and the output head).
/// Cephes-style: e^x = 2^n · e^r, n = round(x·log2 e), |r| ≤ ln2/2, degree-6 polynomial (FMAs); relative
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

    /// a·b + c as one fused multiply-add (Swift does not contract `a * b + c` by itself).
    @inline(__always) public static func fma(_ a: V, _ b: V, _ c: V) -> V { c.addingProduct(a, b) }
    /// Lane-wise maximum (`pointwiseMax` is a generic, out-of-line call); NaN in `b` is passed over.
    @inline(__always) public static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }

    /// e^r · 2^n for the reduced argument: the shared core of `exp` and `expSoftmax`. `x` must be
    /// clamped to [lo, hi] (or NaN, which stays NaN).
    @inline(__always) @usableFromInline
    static func expCore(_ x: V) -> V {
        // n = round(x·log2e) via the 1.5·2^23 trick: the integer lands in the low mantissa bits.
        let magic = V(repeating: 12582912.0)
        let t = fma(x, V(repeating: 1.44269504088896341), magic)
        let n = t - magic
        var r = fma(n, V(repeating: -0.693359375), x)
        r = fma(n, V(repeating: 2.12194440e-4), r)
        // e^r ≈ 1 + r·g(r), g of degree 5 fitted on [-ln2/2, ln2/2] (Chebyshev): six FMAs in Horner
        // form, relative error about 6e-8 after float rounding (the former Cephes form took eight ops)
        var p = fma(V(repeating: 1.3933641603e-3), r, V(repeating: 8.3691487089e-3))
        p = fma(p, r, V(repeating: 4.1666466743e-2))
        p = fma(p, r, V(repeating: 1.6666504741e-1))
        p = fma(p, r, V(repeating: 0.5))
        p = fma(p, r, V(repeating: 1))
        p = fma(p, r, V(repeating: 1))
        // 2^n: (n + 127) << 23, taken from t's bits (t's low bits hold n + 0x400000 offset).
        let tb = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let pow2 = unsafeBitCast((tb &+ 127) &<< 23, to: V.self)
        return p * pow2
    }

    @inline(__always)
    public static func exp(_ x0: V) -> V {
        let hi = V(repeating: 88.0), lo = V(repeating: -87.33654)
        var x = x0.replacing(with: hi, where: x0 .> hi)
        x = x.replacing(with: lo, where: x .< lo)
        var out = expCore(x)                                              // NaN stays NaN
        out = out.replacing(with: V(repeating: 0), where: x0 .< lo)   // underflow to exactly 0
        out = out.replacing(with: V(repeating: .infinity), where: x0 .> hi)
        return out
    }

    /// `exp` for softmax arguments (scores minus their row maximum or log-sum-exp, so at most about 0):
    /// the same values, except that arguments above 88 give e^88 rather than +inf. NaN stays NaN.
    /// Transparent: plain @inline(__always) left it an out-of-line call (ymm halves through xmm
    /// registers, constants reloaded, vzeroupper) in the softmax loops.
    @_transparent
    public static func expSoftmax(_ x0: V) -> V {
        let hi = V(repeating: 88.0), lo = V(repeating: -87.33654)
        var x = x0.replacing(with: hi, where: x0 .> hi)
        x = x.replacing(with: lo, where: x .< lo)
        return expCore(x).replacing(with: V(repeating: 0), where: x0 .< lo)
    }

    /// out[i] = exp(x[i] - shift); returns the sum of the outputs (in Double for stable row sums).
    @inline(__always)
    public static func expShifted(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count n: Int,
                                  shift: Float) -> Float {
        mapSum(x, out, count: n, shift: shift) { exp($0) }
    }

    /// `expShifted` with `expSoftmax`: for softmax rows, where x[i] - shift is at most about 0.
    @inline(__always)
    public static func expShiftedSoftmax(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count n: Int,
                                         shift: Float) -> Float {
        mapSum(x, out, count: n, shift: shift) { expSoftmax($0) }
    }

    /// out[i] = f(x[i] - shift) for an exp-like f with f(-inf) = 0; returns Σ out[i].
    @inline(__always)
    static func mapSum(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count n: Int,
                       shift: Float, _ f: (V) -> V) -> Float {
        var acc = V(repeating: 0), acc2 = V(repeating: 0)
        let s = V(repeating: shift)
        var i = 0
        // two independent vectors per iteration: the polynomial is a long dependency chain, so
        // interleaving two of them keeps the FMA units busy
        while i + 16 <= n {
            let e1 = f(load(x + i) - s), e2 = f(load(x + i + 8) - s)
            store(e1, out + i); store(e2, out + i + 8)
            acc += e1; acc2 += e2
            i += 16
        }
        acc += acc2
        while i + 8 <= n {
            let e = f(load(x + i) - s)
            store(e, out + i)
            acc += e
            i += 8
        }
        var tail: Float = 0
        if i < n {
            var v = V(repeating: -.infinity)
            for j in i..<n { v[j - i] = x[j] - shift }
            let e = f(v)
            for j in i..<n { out[j] = e[j - i]; tail += e[j - i] }
        }
        return acc.sum() + tail
    }

    /// The softmax backward of one attention row, fused: p[i] = e^(p[i] − lse) turns scores into
    /// probabilities in place, and d[i] = p[i] · (d[i] − c) turns dP into dS (c = rowsum(dO ∘ O)).
    @inline(__always)
    public static func softmaxBackwardRow(_ p: UnsafeMutablePointer<Float>, _ d: UnsafeMutablePointer<Float>,
                                          count n: Int, lse: Float, c: Float) {
        let s = V(repeating: lse), cv = V(repeating: c)
        var i = 0
        while i + 16 <= n {
            let e1 = expSoftmax(load(p + i) - s), e2 = expSoftmax(load(p + i + 8) - s)
            store(e1, p + i); store(e2, p + i + 8)
            store(e1 * (load(d + i) - cv), d + i); store(e2 * (load(d + i + 8) - cv), d + i + 8)
            i += 16
        }
        while i + 8 <= n {
            let e = expSoftmax(load(p + i) - s)
            store(e, p + i)
            store(e * (load(d + i) - cv), d + i)
            i += 8
        }
        if i < n {
            var v = V(repeating: -.infinity)
            for j in i..<n { v[j - i] = p[j] - lse }
            let e = expSoftmax(v)
            for j in i..<n { p[j] = e[j - i]; d[j] = e[j - i] * (d[j] - c) }
        }
    }

    /// Maximum of a row (NaN entries are passed over).
    @inline(__always)
    public static func max(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        // four accumulators: one vmaxps chain would wait on its latency every 8 floats
        var m0 = V(repeating: -.infinity), m1 = m0, m2 = m0, m3 = m0
        var i = 0
        while i + 32 <= n {
            m0 = vmax(m0, load(x + i)); m1 = vmax(m1, load(x + i + 8))
            m2 = vmax(m2, load(x + i + 16)); m3 = vmax(m3, load(x + i + 24))
            i += 32
        }
        while i + 8 <= n { m0 = vmax(m0, load(x + i)); i += 8 }
        // once per row, so the library's horizontal max is fine here (the lanes hold no NaN)
        var r = vmax(vmax(m0, m1), vmax(m2, m3)).max()
        while i < n { if x[i] > r { r = x[i] }; i += 1 }
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
