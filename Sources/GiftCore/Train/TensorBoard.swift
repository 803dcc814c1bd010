import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A TensorBoard event file, written without TensorFlow or a protobuf library.
//
// File: DIR/events.out.tfevents.<10-digit seconds>.<hostname>.<pid>.gift (TensorBoard reads every file in a
// run folder whose name contains "tfevents"). It is a sequence of TFRecords, one serialized Event each:
//
//   size  field
//   8     n, the data length, UInt64 little-endian
//   4     masked CRC-32C of those 8 length bytes, UInt32 little-endian
//   n     data: one Event message
//   4     masked CRC-32C of the data, UInt32 little-endian
//
// masked(c) = ((c >> 15) | (c << 17)) &+ 0xA282EAD8 on UInt32 (CRC32C.masked).
//
// The messages (tensorflow/core/util/event.proto, summary.proto), only the fields written here:
//   Event    1 wall_time    double  wire type 1 (fixed64, little-endian IEEE 754)
//            2 step         int64   wire type 0 (varint; a negative step takes 10 bytes)
//            3 file_version string  wire type 2 (length-delimited UTF-8)
//            5 summary      Summary wire type 2
//   Summary  1 value        Value   wire type 2, repeated
//   Value    1 tag          string  wire type 2
//            2 simple_value float   wire type 5 (fixed32, little-endian IEEE 754)
// A key is the varint (field << 3) | wire type; a length-delimited field is key, varint length, bytes.
// The first record is an Event with wall_time and file_version "brain.Event:2"; each later one has
// wall_time, step and a summary with one Value per scalar.

/// Appends scalars to a TensorBoard event file. Each record goes to the file in one write(2) as it is
/// written (nothing is buffered in this process), so a killed run keeps every record it wrote; a record
/// cut short by the kill or a full disk is one TensorBoard's reader stops at. Not for use from two threads
/// at once.
public final class TensorBoardWriter {
    /// The event file.
    public let path: String
    private var fd: Int32
    /// Bytes written so far: where a failed write truncates the file back to.
    private var offset: off_t = 0

    static let fileVersion = "brain.Event:2"

    /// Creates `directory` if needed and a new event file in it (an existing file of the same name is an
    /// error, never overwritten), then writes the file_version record stamped `wallTime`.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw GiftError(.io, "\(directory): cannot create the TensorBoard folder (\(error.localizedDescription))")
        }
        path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName(wallTime: wallTime)).path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw GiftError(.io, "\(path): cannot create the TensorBoard event file (\(errnoText()))") }
        try append(Self.versionEvent(wallTime: wallTime))
    }

    deinit { close() }

    /// Appends one Event at `step` holding one Value per scalar (tag, value rounded to Float32; NaN and
    /// infinities are written as they are).
    public func write(step: Int, wallTime: Double, scalars: [(String, Double)]) throws {
        try append(Self.scalarEvent(step: step, wallTime: wallTime, scalars: scalars))
    }

    /// Closes the file; later writes throw. Closing twice is harmless.
    public func close() {
        if fd >= 0 { closeFile(fd); fd = -1 }
    }

    private func append(_ event: [UInt8]) throws {
        guard fd >= 0 else { throw GiftError(.io, "\(path): the TensorBoard event file is already closed") }
        let record = Self.record(event)
        var done = 0
        while done < record.count {
            let r = record.withUnsafeBytes { writeFile(fd, $0.baseAddress! + done, record.count - done) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else {
                let why = errnoText()
                // Best effort: drop the partial record so that the next one is still readable.
                _ = ftruncate(fd, offset); _ = lseek(fd, offset, SEEK_SET)
                throw GiftError(.io, "\(path): cannot write a TensorBoard event (\(why))")
            }
            done += r
        }
        offset += off_t(record.count)
    }

    // MARK: encoding

    /// `events.out.tfevents.<seconds, 10 digits>.<host>.<pid>.gift`, as TensorFlow names them plus a suffix.
    static func fileName(wallTime: Double) -> String {
        let seconds = wallTime.isFinite && wallTime >= 0 && wallTime < 1e18 ? String(Int64(wallTime)) : "0"
        let padded = String(repeating: "0", count: max(0, 10 - seconds.count)) + seconds
        return "events.out.tfevents.\(padded).\(RankAgreement.hostName).\(getpid()).gift"
    }

    static func versionEvent(wallTime: Double) -> [UInt8] {
        var e = ProtoWriter()
        e.fixed64(field: 1, wallTime.bitPattern)
        e.lengthDelimited(field: 3, Array(fileVersion.utf8))
        return e.bytes
    }

    static func scalarEvent(step: Int, wallTime: Double, scalars: [(String, Double)]) -> [UInt8] {
        var summary = ProtoWriter()
        for (tag, v) in scalars {
            var value = ProtoWriter()
            value.lengthDelimited(field: 1, Array(tag.utf8))
            value.fixed32(field: 2, Float(v).bitPattern)
            summary.lengthDelimited(field: 1, value.bytes)
        }
        var e = ProtoWriter()
        e.fixed64(field: 1, wallTime.bitPattern)
        e.varint(field: 2, UInt64(bitPattern: Int64(step)))
        e.lengthDelimited(field: 5, summary.bytes)
        return e.bytes
    }

    /// One TFRecord: length, its masked CRC, the data, the data's masked CRC.
    static func record(_ data: [UInt8]) -> [UInt8] {
        let length = littleEndian(UInt64(data.count))
        return length + littleEndian(CRC32C.masked(CRC32C.checksum(length))) + data
            + littleEndian(CRC32C.masked(CRC32C.checksum(data)))
    }
}

/// The four protobuf encodings the event file needs (wire types 0, 1, 2 and 5), appended to `bytes`.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    mutating func varint(field: Int, _ v: UInt64) { key(field, 0); rawVarint(v) }
    mutating func fixed64(field: Int, _ v: UInt64) { key(field, 1); bytes += littleEndian(v) }
    mutating func lengthDelimited(field: Int, _ b: [UInt8]) { key(field, 2); rawVarint(UInt64(b.count)); bytes += b }
    mutating func fixed32(field: Int, _ v: UInt32) { key(field, 5); bytes += littleEndian(v) }
}

private func littleEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

// The libc calls under names that TensorBoardWriter's own write/close do not shadow.
private func writeFile(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func closeFile(_ fd: Int32) { _ = close(fd) }
private func errnoText() -> String { String(cString: strerror(errno)) }
