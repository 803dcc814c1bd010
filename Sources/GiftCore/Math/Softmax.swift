import Foundation

/// Row-wise softmax statistics over the vocabulary: cross-entropy with its gradient, and entropy.
public enum Softmax {
    /// Log-sum-exp of a row (uses `tmp` of the row's width as scratch).
    @inline(__always)
    public static func logSumExp(_ z: UnsafePointer<Float>, count n: Int, tmp: UnsafeMutablePointer<Float>) -> Float {
        let m = FastMath.max(z, count: n)
        return m + Foundation.log(FastMath.expShifted(z, tmp, count: n, shift: m))
    }

    /// CE = lse(z) − z[target]. When `grad` is given, writes grad = scale · (softmax(z) − onehot(target))
    /// over the row (in place on z allowed: pass z as grad).
    @inline(__always)
    public static func crossEntropy(_ z: UnsafePointer<Float>, count n: Int, target: Int,
                                    grad: UnsafeMutablePointer<Float>?, scale: Float,
                                    tmp: UnsafeMutablePointer<Float>) -> Float {
        let m = FastMath.max(z, count: n)
        let zt = z[target]
        let dst = grad ?? tmp
        let sum = FastMath.expShifted(z, dst, count: n, shift: m)
        let ce = m + Foundation.log(sum) - zt
        if let grad {
            FastMath.scale(grad, count: n, by: scale / sum)
            grad[target] -= scale
        }
        return ce
    }

    /// H = −Σ p log p = lse − Σ p·z, computed stably in one pass over exp(z − max).
    @inline(__always)
    public static func entropy(_ z: UnsafePointer<Float>, count n: Int, tmp: UnsafeMutablePointer<Float>) -> Float {
        let m = FastMath.max(z, count: n)
        let sum = FastMath.expShifted(z, tmp, count: n, shift: m)
        // Σ e_i (z_i − m) / sum  = E[z] − m ;  H = log(sum) − (E[z] − m)
        var acc: Float = 0
        for i in 0..<n { acc += tmp[i] * (z[i] - m) }
        return max(0, Foundation.log(sum) - acc / sum)
    }
}
