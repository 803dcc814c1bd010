import Foundation

/// An owned, 64-byte aligned, zero-initialised array of Float. The trainer's big state (parameters,
/// gradients, moments, activations) lives in these, addressed by raw pointer and offset.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    /// Memory owned elsewhere (a mapping of `owner`, kept alive by this buffer); nil: allocated here.
    private let owner: AnyObject?

    /// A buffer over memory that `owner` holds (not freed here), e.g. `BF16BaseStore.view`.
    public init(viewOf pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.count = count; self.pointer = pointer; self.owner = owner
    }

    public init(count: Int) {
        owner = nil
        precondition(count >= 0)
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { if owner == nil { UnsafeMutableRawPointer(pointer).deallocate() } }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public func zero() { pointer.update(repeating: 0, count: count) }
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func copy() -> FloatBuffer {
        let b = FloatBuffer(count: count)
        b.pointer.update(from: pointer, count: count)
        return b
    }
}
