/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF), one table lookup
/// per byte: the checksum of TFRecord framing (TensorBoard event files). RFC 3720 B.4 has test vectors.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { (i: UInt32) in
        var c = i
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            var crc: UInt32 = 0xFFFF_FFFF
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
            return ~crc
        }
    }

    /// TFRecord's masked form of a CRC (rotate right by 15, add a constant), so that a CRC stored next to
    /// the data it covers is not itself a CRC of that data.
    static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
