import CBLASShim

/// OpenBLAS, loaded at run time with the kernel ("core") chosen for this CPU before it loads: Debian's
/// OpenBLAS 0.3.21 runs its generic SSE3 kernel ("Prescott", 5-8x slower) on CPUs newer than itself, and
/// reads OPENBLAS_CORETYPE only when it loads. A user's OPENBLAS_CORETYPE is kept (refused, by name,
/// when this CPU cannot run it); GIFT_BLAS_LIB loads another build (GIFT_BLAS_PREFIX: its symbol prefix).
public enum Blas {
    /// Loads the library once; throws with the reason when it cannot (missing library, a core this
    /// CPU cannot run). Every command calls this before its first GEMM (`Gemm.configure`).
    public static func load() throws {
        if gift_blas_load() != 0 { throw GiftError(.usage, String(cString: gift_blas_error())) }
    }

    /// The kernel OpenBLAS runs ("Haswell", "SkylakeX", ...).
    public static var core: String { String(cString: gift_blas_corename()) }
    /// Its build line: "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
    public static var config: String { String(cString: gift_blas_config()) }
    /// "OpenBLAS 0.3.21" (the build line's first two words).
    public static var version: String { config.split(separator: " ").prefix(2).joined(separator: " ") }
    public static var libraryPath: String { String(cString: gift_blas_path()) }
    /// Why this core: "chosen by gift for ...", "OPENBLAS_CORETYPE=... set by the user", ...
    public static var choiceReason: String { String(cString: gift_blas_choice_reason()) }
    /// The core gift asks for on this CPU ("" where it leaves OpenBLAS's own choice).
    public static var bestCore: String { String(cString: gift_blas_best_core()) }
    public static func isGeneric(core: String) -> Bool { gift_blas_core_is_generic(core) != 0 }
    /// Whether this CPU can run a core's kernels (false for names gift does not know).
    public static func coreSupported(_ core: String) -> Bool { gift_blas_core_supported(core) != 0 }
    /// Whether the core in use is a generic pre-AVX kernel on a CPU that has AVX2 (never by gift's choice).
    public static var runsGenericKernel: Bool { CPU.hasAVX2 && isGeneric(core: core) }

    /// One line for logs: "OpenBLAS 0.3.21, core Haswell (chosen by gift for ...)".
    public static var summary: String {
        guard gift_blas_load() == 0 else { return "BLAS not loaded: \(String(cString: gift_blas_error()))" }
        return "\(version) (\(libraryPath)), core \(core) (\(choiceReason))"
    }

    /// A warning when the BLAS runs a generic kernel on a CPU with AVX2 or AVX-512, else nil.
    public static var genericKernelWarning: String? {
        guard runsGenericKernel else { return nil }
        return "warning: OpenBLAS runs its generic \(core) kernel on a CPU with \(CPU.flags): GEMMs run 5-8x below "
            + "this CPU's speed (\(choiceReason)); unset OPENBLAS_CORETYPE or set it to \(bestCore)"
    }
}
