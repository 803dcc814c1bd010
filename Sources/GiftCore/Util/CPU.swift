import CBLASShim

/// What this CPU is and which of the instruction sets gift's kernel choices depend on it can run
/// (cpuid plus the OS's register state: AVX-512 counts only where the OS saves ZMM registers).
public enum CPU {
    static var info: gift_cpu_info { gift_cpu().pointee }

    /// The model name as the CPU reports it ("AMD EPYC 7B13 64-Core Processor").
    public static var name: String {
        var b = info.brand
        return withUnsafeBytes(of: &b) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
    public static var vendor: String {
        var v = info.vendor
        return withUnsafeBytes(of: &v) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
    public static var family: Int { Int(info.family) }
    public static var model: Int { Int(info.model) }
    public static var hasAVX2: Bool { info.avx2 != 0 && info.fma != 0 }
    public static var hasAVX512: Bool { info.avx512 != 0 }
    public static var hasAVX512BF16: Bool { info.avx512_bf16 != 0 }
    public static var hasAMX: Bool { info.amx != 0 }
    /// "avx2 fma avx512 avx512_bf16": the flags that matter to gift's kernels.
    public static var flags: String { String(cString: gift_cpu_flags()) }
    /// One line for logs: name, vendor family/model, flags.
    public static var summary: String {
        "\(name) (\(vendor) family \(family) model \(model); \(flags))"
    }
}
