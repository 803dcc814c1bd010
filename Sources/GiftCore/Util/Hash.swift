/// FNV-1a, 64 bit: fingerprints of configs, data and parameters (not cryptographic; it only has to
/// tell ranks apart that were given different things).
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        value = h
    }
    public mutating func add(_ s: String) { var s = s; s.withUTF8 { add(UnsafeRawBufferPointer($0)) } }
    public mutating func add<T>(_ values: [T]) { values.withUnsafeBytes { add($0) } }
    public mutating func add(_ x: Int) { add([x]) }
    public static func of(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
        var h = FNV1a(); h.add(UnsafeRawBufferPointer(start: p, count: count * 4)); return h.value
    }
}
