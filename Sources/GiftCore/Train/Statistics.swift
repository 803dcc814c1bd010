import Foundation

/// The tests `gift compare` reports: a paired t-test on per-seed accuracy differences and McNemar's
/// exact test on per-problem outcomes. Distribution functions from the regularized incomplete beta
/// function (Numerical Recipes' continued fraction) and log-gamma, in Double.
public enum Statistics {
    /// Paired t-test of differences `d` (H0: mean 0): t, degrees of freedom and the two-sided p-value;
    /// nil with fewer than 2 differences. All-equal nonzero differences give t = ±inf, p = 0; all zero, p = 1.
    public static func pairedT(_ d: [Double]) -> (t: Double, df: Int, p: Double)? {
        guard d.count >= 2 else { return nil }
        let n = Double(d.count), m = d.reduce(0, +) / n
        let v = d.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)
        let df = d.count - 1
        if v == 0 { return m == 0 ? (0, df, 1) : (m > 0 ? .infinity : -.infinity, df, 0) }
        let t = m / (v / n).squareRoot()
        return (t, df, studentTwoSided(t, df: Double(df)))
    }

    /// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
    public static func studentTwoSided(_ t: Double, df: Double) -> Double {
        guard t.isFinite else { return 0 }
        return min(1, max(0, incompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)))
    }

    /// McNemar's exact test: `b` discordant pairs one way, `c` the other; two-sided p =
    /// min(1, 2·P(X ≤ min(b, c))) for X ~ Binomial(b + c, 1/2).
    public static func mcnemarExact(b: Int, c: Int) -> Double {
        let n = b + c
        guard n > 0 else { return 1 }
        let k = min(b, c)
        var tail = 0.0
        for i in 0...k { tail += exp(logChoose(n, i) - Double(n) * log(2.0)) }
        return min(1, 2 * tail)
    }

    static func logChoose(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
    }

    /// The regularized incomplete beta function I_x(a, b).
    public static func incompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let front = exp(logBeta + a * log(x) + b * log(1 - x))
        // the continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise
        if x < (a + 1) / (a + b + 2) { return front * betaFraction(x, a, b) / a }
        return 1 - front * betaFraction(1 - x, b, a) / b
    }

    static func betaFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m2 = Double(2 * m)
            var aa = Double(m) * (b - Double(m)) * x / ((a + m2 - 1) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d; h *= d * c
            aa = -(a + Double(m)) * (a + b + Double(m)) * x / ((a + m2) * (a + m2 + 1))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let del = d * c
            h *= del
            if abs(del - 1) < 1e-15 { break }
        }
        return h
    }
}
