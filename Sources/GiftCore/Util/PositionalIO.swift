import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole transfers at a file offset (pread/pwrite), the one loop of every file reader and writer that
/// needs one: short transfers continue, EINTR retries, anything else is an error naming the file.
enum PositionalIO {
    /// Reads exactly `count` bytes at `offset`; a file that ends early (shrunk since its size or header
    /// was checked) or a failing read is an error naming the file.
    static func read(_ fd: Int32, into dst: UnsafeMutableRawPointer, count: Int, at offset: Int, path: String) throws {
        var got = 0
        while got < count {
            let r = pread(fd, dst + got, count - got, off_t(offset + got))
            if r < 0 {
                if errno == EINTR { continue }
                throw GiftError(.io, "\(path): read of \(count) bytes at byte \(offset) failed (\(String(cString: strerror(errno))))")
            }
            if r == 0 {
                throw GiftError(.io, "\(path): file ends at byte \(offset + got), expected \(count) bytes at byte \(offset) "
                                + "(truncated while being read?)")
            }
            got += r
        }
    }

    /// Writes all `count` bytes at `offset`; a failing write (or one that writes nothing) is an error
    /// naming the file.
    static func write(_ fd: Int32, from src: UnsafeRawPointer, count: Int, at offset: Int, path: String) throws {
        var done = 0
        while done < count {
            let r = pwrite(fd, src + done, count - done, off_t(offset + done))
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else {
                let why = r < 0 ? String(cString: strerror(errno)) : "nothing written"
                throw GiftError(.io, "\(path): write of \(count) bytes at byte \(offset) failed (\(why))")
            }
            done += r
        }
    }
}
