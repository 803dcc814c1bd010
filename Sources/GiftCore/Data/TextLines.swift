import Foundation

/// The non-blank lines of a text data file (JSONL, CSV) with their 1-based line numbers, as byte slices of
/// the file: the path checked to be a readable file (errors call it `what`, e.g. "data file"), a UTF-8 BOM
/// skipped, CRLF taken as LF, lines of only spaces, tabs and CRs left out (still counted).
enum TextLines {
    struct Line { let number: Int; let bytes: ArraySlice<UInt8> }

    /// `kind`: what the file should be, for the directory error ("a JSONL file").
    static func read(_ path: String, what: String, kind: String) throws -> [Line] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw GiftError(.io, "\(what) \(path) does not exist")
        }
        guard !isDir.boolValue else { throw GiftError(.io, "\(what) \(path) is a directory, not \(kind)") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "cannot read \(what) \(path): \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        var out: [Line] = []
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0, number = 0
        while start < bytes.count {
            number += 1
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            let next = end + 1
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            defer { start = next }
            let line = bytes[start..<end]
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            out.append(Line(number: number, bytes: line))
        }
        return out
    }
}
