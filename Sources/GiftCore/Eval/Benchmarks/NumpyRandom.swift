import Foundation

/// numpy's legacy global generator (`np.random.seed`, `np.random.RandomState`), as far as d1's problem draw
/// needs it: the same stream of numbers for the same seed, so `np.random.seed(42);
/// np.random.choice(N, 256, replace=False)` picks the same problems in the same order here.
///
/// What numpy does (numpy/random/mtrand.pyx, _bounded_integers / distributions.c, mt19937.c; unchanged in
/// behaviour from numpy 1.x to 2.x, since the legacy RandomState stream is frozen):
/// - `seed(s)` with an integer 0 ≤ s < 2³² is MT19937's `init_genrand(s)`: mt[0] = s,
///   mt[i] = 1812433253 · (mt[i-1] ^ (mt[i-1] >> 30)) + i (mod 2³²), and the next draw regenerates the state.
/// - `choice(n, size, replace=False)` without `p` is `permutation(n)[:size]`.
/// - `permutation(n)` is `shuffle(arange(n))`; the legacy shuffle of a 1-d array is Fisher–Yates from the
///   end: for i = n-1 down to 1, j = random_interval(i), swap a[i] and a[j].
/// - `random_interval(max)` draws by masked rejection: mask = the smallest 2^k - 1 ≥ max; draw 32-bit words
///   (64-bit ones, two words high first, when max ≥ 2³²) and keep the first `word & mask` that is ≤ max;
///   max 0 draws nothing.
public struct NumpyLegacyRandom: Sendable {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// `np.random.seed(seed)` (MT19937 `init_genrand`).
    public init(seed: UInt32) {
        mt[0] = seed
        for i in 1..<624 {
            let prev = mt[i - 1]
            mt[i] = 1812433253 &* (prev ^ (prev >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    /// The next 32-bit output of MT19937 (`genrand_int32`).
    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 { regenerate() }
        var y = mt[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c5680
        y ^= (y << 15) & 0xefc60000
        y ^= y >> 18
        return y
    }

    private mutating func regenerate() {
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7fff_ffff
        for k in 0..<624 {
            let y = (mt[k] & upper) | (mt[(k + 1) % 624] & lower)
            mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_b0df : 0)
        }
        index = 0
    }

    /// numpy's `random_interval(max)`: uniform in 0...max by masked rejection sampling.
    public mutating func interval(_ max: UInt64) -> UInt64 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4
        mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32
        if max <= 0xffff_ffff {
            while true {
                let v = UInt64(nextUInt32()) & mask
                if v <= max { return v }
            }
        }
        while true {
            let hi = UInt64(nextUInt32()), lo = UInt64(nextUInt32())
            let v = ((hi << 32) | lo) & mask
            if v <= max { return v }
        }
    }

    /// `np.random.shuffle(a)` of a 1-d array (the legacy Fisher–Yates).
    public mutating func shuffle<T>(_ a: inout [T]) {
        var i = a.count - 1
        while i >= 1 {
            let j = Int(interval(UInt64(i)))
            a.swapAt(i, j)
            i -= 1
        }
    }

    /// `np.random.permutation(n)`.
    public mutating func permutation(_ n: Int) -> [Int] {
        precondition(n >= 0, "permutation of a negative count")
        var a = Array(0..<n)
        shuffle(&a)
        return a
    }

    /// `np.random.choice(n, size, replace=False)` (no `p`): `permutation(n)[:size]`. numpy refuses
    /// size > n ("Cannot take a larger sample than population when 'replace=False'"); so does this.
    public mutating func choiceWithoutReplacement(_ n: Int, _ size: Int) -> [Int] {
        precondition(size >= 0 && size <= n, "cannot take \(size) of \(n) without replacement")
        return Array(permutation(n).prefix(size))
    }
}
