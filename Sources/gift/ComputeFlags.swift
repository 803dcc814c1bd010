import ArgumentParser
import GiftCore

/// The matrix-multiply backend and precision, shared by every command that runs the model.
struct ComputeFlags: ParsableArguments {
    @Option(help: "Matrix-multiply backend: auto (oneDNN when libdnnl is installed, else OpenBLAS), openblas or onednn.")
    var gemm: String = "auto"
    @Option(help: "Matmul input precision: fp32, or bf16 (inputs rounded to bf16, fp32 accumulation; weights, gradients, optimizer state, softmax, norms and loss stay fp32).")
    var precision: String = "fp32"

    /// Applies the choice process-wide; a typo or a missing oneDNN fails here, before any file is read.
    func apply() throws {
        guard let p = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16, not '\(precision)'") }
        try Gemm.configure(gemm: gemm, precision: p)
    }
}
