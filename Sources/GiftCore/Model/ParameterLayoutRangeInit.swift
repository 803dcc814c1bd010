import Foundation

extension ParameterLayout {
    /// The slice `range` of `initialize(seed:std:)`'s buffer, computed directly: each tensor draws from
    /// its own counter stream (seed, 0x1417, tensor index) at counter = element index, so a rank makes
    /// its ZeRO-3 shard of a fresh model, bit-equal to the full one's, without the rest.
    public func initialize(seed: UInt64, std: Double = 0.02, range: Range<Int>) -> FloatBuffer {
        let buf = FloatBuffer(count: range.count)
        initialize(seed: seed, std: std, range: range, into: buf.pointer)
        return buf
    }

    /// The same slice written to `dst` (`range.count` floats): a bf16 base store made a piece at a time.
    public func initialize(seed: UInt64, std: Double = 0.02, range: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count,
                     "range \(range) outside the layout's \(count) parameters")
        for (i, t) in tensors.enumerated() {
            let lo = max(range.lowerBound, t.offset), hi = min(range.upperBound, t.offset + t.count)
            guard lo < hi else { continue }
            let p = dst + (lo - range.lowerBound)
            if t.isNorm {
                p.update(repeating: 1, count: hi - lo)
            } else if t.isBias {
                p.update(repeating: 0, count: hi - lo)
            } else {
                let rng = CounterRNG(seed, 0x1417, UInt64(i))
                for j in (lo - t.offset)..<(hi - t.offset) { p[j - (lo - t.offset)] = Float(std * rng.normal(UInt64(j))) }
            }
        }
    }
}
