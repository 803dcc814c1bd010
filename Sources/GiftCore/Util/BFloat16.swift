import Foundation

/// bfloat16 as raw `UInt16` bits: the top half of an IEEE float32 (sign, 8 exponent bits, 7 mantissa bits).
/// Widening is a shift; narrowing rounds to nearest, ties to even, the same as PyTorch's `.to(torch.bfloat16)`.
public enum BFloat16 {
    /// float32 -> bf16 bits, rounding to nearest even. Infinities stay infinite, finite values too large
    /// for bf16 round to infinity, and a NaN stays a NaN (sign and top payload bits kept, quiet bit set,
    /// so a NaN whose payload lives only in the dropped low bits does not become an infinity).
    @inline(__always) public static func fromFloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        // Adding 0x7FFF rounds halfway cases down and anything above up; adding the kept lowest bit on
        // top turns exact ties into "round up when odd", i.e. ties to even. Cannot overflow: the largest
        // non-NaN pattern (0xFF800000, -inf) plus 0x8000 stays below 2^32.
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// bf16 bits -> float32 (exact).
    @inline(__always) public static func toFloat(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// `x` rounded to the nearest bf16 value, as a Float.
    @inline(__always) public static func round(_ x: Float) -> Float { toFloat(fromFloat(x)) }

    /// Rounds `count` floats to bf16 precision in place.
    public static func roundInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { p[i] = round(p[i]) }
    }

    /// Narrows `count` floats into bf16 bits (native byte order).
    public static func encode(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { dst[i] = fromFloat(src[i]) }
    }

    /// Widens `count` bf16 values (native byte order) into floats.
    public static func decode(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dst[i] = toFloat(src[i]) }
    }

    /// Round-to-nearest-even on 8 lanes at once, the same rule as `fromFloat` (NaN stays NaN): the
    /// returned float bits have their low half zero. The GEMM path rounds every bf16 operand with it.
    @inline(__always) static func roundBits(_ v: SIMD8<Float>) -> SIMD8<Int32> {
        let b = unsafeBitCast(v, to: SIMD8<Int32>.self)
        let r = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) & -65536
        // the NaN test compares floats: SIMD integer comparisons compile to scalar code in Swift
        return r.replacing(with: (b | 0x0040_0000) & -65536, where: v .!= v)
    }

    /// dst[i] = round(src[i]) as floats (bf16 values kept in fp32), vectorised.
    public static func roundFast(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: unsafeBitCast(roundBits(v), to: SIMD8<Float>.self),
                                                        as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { dst[i] = round(src[i]); i += 1 }
    }

    /// dst[i] = bf16 bits of src[i] (native byte order), vectorised.
    public static func encodeFast(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
            let h = SIMD8<UInt16>(truncatingIfNeeded: roundBits(v) &>> 16)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: h, as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < n { dst[i] = fromFloat(src[i]); i += 1 }
    }

    /// Narrows `count` floats into little-endian bf16 bytes (2·count bytes at `dst`, any alignment):
    /// the safetensors on-disk form.
    public static func encode(_ src: UnsafePointer<Float>, intoLittleEndianBytes dst: UnsafeMutableRawPointer,
                              count: Int) {
        for i in 0..<count { dst.storeBytes(of: fromFloat(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
    }

    /// Widens `count` little-endian bf16 values read from `src` (any alignment: a safetensors data section
    /// need not be aligned in memory) into floats.
    public static func decode(littleEndianBytes src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>,
                              count: Int) {
        for i in 0..<count {
            dst[i] = toFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }
}

/// IEEE half precision (safetensors "F16") as raw bits, widened to Float by hand: Swift's `Float16` is
/// not available on every platform gift builds for (macOS on Intel).
public enum Float16Bits {
    /// half bits -> float32 (exact, subnormals included).
    @inline(__always) public static func toFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let mant = UInt32(h & 0x03FF)
        if exp == 0 {
            // Zero or subnormal: mant · 2^-24, exact in float32.
            let magnitude = Float(mant) * 0x1.0p-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }  // inf / NaN
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))         // rebias 15 -> 127
    }

    /// Widens `count` little-endian half values read from `src` (any alignment) into floats.
    public static func decode(littleEndianBytes src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>,
                              count: Int) {
        for i in 0..<count {
            dst[i] = toFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }
}
