import Foundation
import XCTest
@testable import GiftCore

/// The TensorBoard event writer: CRC-32C against RFC 3720's vectors, the protobuf and TFRecord bytes against
/// ones worked out by hand, the file read back here and by PyPI's `tensorboard` (values, steps, wall times,
/// and a corrupted byte caught by its CRC checks).
final class TensorBoardTests: XCTestCase {
    func testCRC32CVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        // RFC 3720 B.4.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // (0x1C60D | 0x25060000) + 0xA282EAD8; tensorboard's masked_crc32c(b"123456789") agrees.
        XCTAssertEqual(CRC32C.masked(0xE306_9283), 0xC78A_B0E5)
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
    }

    func testEventBytes() {
        var p = ProtoWriter()
        p.varint(field: 2, 300)
        p.varint(field: 2, UInt64(bitPattern: -1))
        XCTAssertEqual(p.bytes, [0x10, 0xAC, 0x02, 0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01])

        XCTAssertEqual(TensorBoardWriter.versionEvent(wallTime: 0.5),
                       [0x09, 0, 0, 0, 0, 0, 0, 0xE0, 0x3F, 0x1A, 13] + Array("brain.Event:2".utf8))
        // wall_time 0.5, step 1, summary { value { tag "a" simple_value 1.0 } value { tag "b" simple_value NaN } }
        XCTAssertEqual(TensorBoardWriter.scalarEvent(step: 1, wallTime: 0.5, scalars: [("a", 1), ("b", .nan)]),
                       [0x09, 0, 0, 0, 0, 0, 0, 0xE0, 0x3F, 0x10, 0x01, 0x2A, 20,
                        0x0A, 8, 0x0A, 1, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3F,
                        0x0A, 8, 0x0A, 1, 0x62, 0x15, 0x00, 0x00, 0xC0, 0x7F])
        // An empty record: 8 zero length bytes (masked CRC from tensorboard's masked_crc32c), no data, masked CRC of nothing.
        XCTAssertEqual(TensorBoardWriter.record([]), [UInt8](repeating: 0, count: 8) + [0x29, 0x03, 0x98, 0x07, 0xD8, 0xEA, 0x82, 0xA2])
    }

    /// The records of an event file, each CRC checked: the framing read back by hand.
    func readRecords(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[UInt8]] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            bytes[at..<at + MemoryLayout<T>.size].reversed().reduce(0) { $0 << 8 | T($1) }
        }
        var records: [[UInt8]] = [], at = 0
        while at < bytes.count {
            let n = Int(le(at, UInt64.self))
            XCTAssertEqual(le(at + 8, UInt32.self), CRC32C.masked(CRC32C.checksum(bytes[at..<at + 8])), file: file, line: line)
            let data = Array(bytes[at + 12..<at + 12 + n])
            XCTAssertEqual(le(at + 12 + n, UInt32.self), CRC32C.masked(CRC32C.checksum(data)), file: file, line: line)
            records.append(data)
            at += 16 + n
        }
        return records
    }

    func testFileLayoutAndErrors() throws {
        let dir = try temporaryDirectory(self).appendingPathComponent("run/tb")
        let w = try TensorBoardWriter(directory: dir.path, wallTime: 123.75)
        let name = URL(fileURLWithPath: w.path).lastPathComponent
        XCTAssertEqual(name, "events.out.tfevents.0000000123.\(RankAgreement.hostName).\(getpid()).gift")
        XCTAssertEqual(try readRecords(w.path), [TensorBoardWriter.versionEvent(wallTime: 123.75)], "the version record is on disk before any write")
        try w.write(step: 7, wallTime: 124, scalars: [("loss", 2.5), ("lr", 1e-4)])
        // Read while still open: every record is in the file as soon as write returns.
        XCTAssertEqual(try readRecords(w.path), [TensorBoardWriter.versionEvent(wallTime: 123.75),
                                                 TensorBoardWriter.scalarEvent(step: 7, wallTime: 124, scalars: [("loss", 2.5), ("lr", 1e-4)])])
        w.close(); w.close()
        XCTAssertThrowsError(try w.write(step: 8, wallTime: 125, scalars: [("loss", 1)])) { e in
            XCTAssertTrue("\(e)".contains(w.path), "\(e)")
        }
        // Same second, same process: refuses to overwrite the first file.
        XCTAssertThrowsError(try TensorBoardWriter(directory: dir.path, wallTime: 123.1)) { e in
            XCTAssertTrue("\(e)".contains(w.path) && "\(e)".contains("exists"), "\(e)")
        }
        XCTAssertEqual(try readRecords(w.path).count, 2)
        // A folder that cannot be created, named in the error.
        let blocker = dir.appendingPathComponent("file").path
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data()))
        XCTAssertThrowsError(try TensorBoardWriter(directory: blocker + "/sub")) { e in
            XCTAssertTrue("\(e)".contains(blocker + "/sub"), "\(e)")
        }
    }

    // MARK: against PyPI's tensorboard

    /// A 2-rank `gift train --report-to tensorboard`: TensorBoard's own reader finds every number of every
    /// metrics.jsonl line (validation and accuracy included) at its step, as float32.
    func testTwoRankRunReadByTensorBoard() throws {
        let dir = try temporaryDirectory(self), out = dir.appendingPathComponent("run")
        let r = try runProcess(mpirunURL, ["-np", "2", "--oversubscribe", "--bind-to", "none", giftBinary.path, "train",
                                           "--model", "tiny", "--data", "countdown", "--task-examples", "64", "--max-steps", "4",
                                           "--micro-batch", "2", "--max-length", "32", "--eval-every", "2", "--eval-task", "countdown",
                                           "--eval-n", "4", "--report-to", "tensorboard", "--out", out.path], env: mpiTestEnvironment)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try MetricsWriter.read(out.appendingPathComponent("metrics.jsonl").path)
        XCTAssertEqual(lines.count, 4)
        let got = try runTensorBoardPython("""
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
            acc.Reload()
            print(json.dumps({tag: {str(e.step): e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}))
            """, [out.appendingPathComponent("tensorboard").path]) as! [String: [String: Double]]
        var checked = 0
        for line in lines {
            let step = (line["step"] as! NSNumber).intValue
            for (k, v) in line where k != "step" {
                guard k != "skipped", let n = v as? NSNumber else { continue }   // skipped: a flag, not a scalar
                XCTAssertEqual(got[k]?[String(step)].map(Float.init), Float(n.doubleValue), "\(k) at step \(step)")
                checked += 1
            }
        }
        XCTAssertNotNil(got["val_loss"]?["2"]); XCTAssertNotNil(got["accuracy"]?["4"]); XCTAssertNotNil(got["comm_wait_s"])
        XCTAssertGreaterThan(checked, 40)
    }

    func runTensorBoardPython(_ script: String, _ args: [String]) throws -> Any {
        let r = try runPython("""
            import json, struct, sys
            try:
                import tensorboard
            except ImportError as e:
                sys.stderr.write("No module named tensorboard (%s)\\n" % e); sys.exit(3)
            """ + "\n" + script, args)
        if r.stderr.contains("No module named") {
            throw XCTSkip("tensorboard not available to the test Python (set GIFT_PYTHON; launch/test.sh installs it): \(r.stderr.suffix(300))")
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    /// (step, wall time, value) per tag, in the order written, and the file's path.
    func writeSampleRun(_ dir: URL) throws -> (expected: [String: [(Int, Double, Float)]], path: String, records: Int) {
        let rows: [(Int, Double, [(String, Double)])] = [
            (0, 1_700_000_000.125, [("train/loss", 10.5), ("train/lr", 0)]),
            (1, 1_700_000_001.5, [("train/loss", 0.1), ("train/lr", 3e-4), ("train/grad_norm", .nan)]),
            (2, 1_700_000_002.75, [("train/loss", -.infinity), ("train/lr", 2.9e-4), ("eval/accuracy", 0.333333333)]),
            (5_000_000_123, 1_700_000_100.0625, [("train/loss", 1e30), ("train/grad_norm", 1e40), ("é/ü", -0.0)]),
        ]
        let w = try TensorBoardWriter(directory: dir.path, wallTime: 1_699_999_999.9)
        var expected: [String: [(Int, Double, Float)]] = [:]
        for (step, time, scalars) in rows {
            try w.write(step: step, wallTime: time, scalars: scalars)
            for (tag, v) in scalars { expected[tag, default: []].append((step, time, Float(v))) }
        }
        w.close()
        return (expected, w.path, rows.count + 1)
    }

    func testTensorBoardReadsScalars() throws {
        let dir = try temporaryDirectory(self)
        let (expected, _, _) = try writeSampleRun(dir)
        // Values and wall times as their bit patterns, so that NaN, -0 and every bit compare exactly.
        let out = try runTensorBoardPython("""
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
            acc.Reload()
            print(json.dumps({tag: [[e.step, "%016x" % struct.unpack("<Q", struct.pack("<d", e.wall_time))[0],
                                     "%08x" % struct.unpack("<I", struct.pack("<f", e.value))[0]]
                                    for e in acc.Scalars(tag)]
                              for tag in acc.Tags()["scalars"]}))
            """, [dir.path]) as! [String: [[Any]]]
        XCTAssertEqual(Set(out.keys), Set(expected.keys))
        for (tag, want) in expected {
            let got = out[tag] ?? []
            XCTAssertEqual(got.count, want.count, tag)
            for (g, (step, time, value)) in zip(got, want) {
                XCTAssertEqual((g[0] as! NSNumber).int64Value, Int64(step), tag)
                XCTAssertEqual(Double(bitPattern: UInt64(g[1] as! String, radix: 16)!), time, tag)
                let v = Float(bitPattern: UInt32(g[2] as! String, radix: 16)!)
                if value.isNaN { XCTAssertTrue(v.isNaN, "\(tag) at \(step): \(v)") } else {
                    XCTAssertEqual(v.bitPattern, value.bitPattern, "\(tag) at \(step): \(v) vs \(value)")
                }
            }
        }
    }

    func testTensorBoardChecksCRCs() throws {
        let dir = try temporaryDirectory(self)
        let (_, path, count) = try writeSampleRun(dir)
        // Where record 3 starts, from the lengths of records 0-2 (16 bytes of framing each).
        let k = 3
        let start = try readRecords(path).prefix(k).reduce(0) { $0 + 16 + $1.count }
        let n = try readRecords(path)[k].count
        // One flipped byte each: in record k's length, its length CRC, its data, its data CRC; -1 flips nothing.
        let offsets = [-1, start + 1, start + 9, start + 12 + n / 2, start + 12 + n + 2]
        let out = try runTensorBoardPython("""
            import shutil
            from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
            from tensorboard.compat.tensorflow_stub import pywrap_tensorflow, errors
            path, offsets = sys.argv[1], json.loads(sys.argv[2])
            result = []
            for i, off in enumerate(offsets):
                bad = "%s.bad%d" % (path, i)
                shutil.copyfile(path, bad)
                if off >= 0:
                    with open(bad, "r+b") as f:
                        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x40]))
                loaded = [e.step for e in EventFileLoader(bad).Load()]
                # The reader under the loader, which reports why it stopped.
                reader, error = pywrap_tensorflow.PyRecordReader_New(bad), ""
                try:
                    while True: reader.GetNext()
                except errors.OutOfRangeError:
                    pass
                except errors.DataLossError as e:
                    error = str(e)
                result.append([len(loaded), error])
            print(json.dumps(result))
            """, [path, "\(offsets)"]) as! [[Any]]
        XCTAssertEqual(out.count, offsets.count)
        XCTAssertEqual(out[0][0] as? Int, count, "the intact copy loads every record")
        XCTAssertEqual(out[0][1] as? String, "")
        for (i, want) in [(1, "header crc32"), (2, "header crc32"), (3, "event crc32"), (4, "event crc32")] {
            XCTAssertEqual(out[i][0] as? Int, k, "byte \(offsets[i]) flipped: the loader stops before record \(k)")
            XCTAssertTrue((out[i][1] as? String ?? "").contains(want), "byte \(offsets[i]) flipped: \(out[i][1])")
        }
    }
}
