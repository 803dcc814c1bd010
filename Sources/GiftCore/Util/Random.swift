import Foundation

/// Counter-based random numbers (Philox-free: SplitMix64 finalisers over a hashed key). A draw depends
/// only on its key, never on how many draws came before, so the same example in the same step gets the
/// same numbers whatever the number of ranks or micro-batches.
public struct CounterRNG: Sendable {
    public let key: UInt64

    public init(_ parts: UInt64...) {
        var h: UInt64 = 0x6A09_E667_F3BC_C908
        for p in parts { h = CounterRNG.mix(h ^ CounterRNG.mix(p &+ 0x9E37_79B9_7F4A_7C15)) }
        key = h
    }

    @inline(__always) public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) public func bits(_ counter: UInt64) -> UInt64 {
        CounterRNG.mix(key ^ CounterRNG.mix(counter))
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always) public func uniform(_ counter: UInt64) -> Double {
        Double(bits(counter) >> 11) * 0x1.0p-53
    }

    /// Standard normal (Box-Muller on two uniforms from counters 2c and 2c+1).
    public func normal(_ counter: UInt64) -> Double {
        let u1 = 1.0 - uniform(2 &* counter)        // (0, 1]: log stays finite
        let u2 = uniform(2 &* counter &+ 1)
        return (-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2)
    }
}
