import ArgumentParser
import GiftCore

/// The matrix-multiply backend and precision, shared by every command that runs the model.
struct ComputeFlags: ParsableArguments {
    @Option(help: "Matrix-multiply backend: auto (OpenBLAS for fp32; for bf16 oneDNN where its bf16 kernel is the faster one, AMX, else OpenBLAS with bf16-rounded operands), openblas or onednn.")
    var gemm: String = "auto"
    @Option(help: "Matmul input precision: fp32, or bf16 (inputs rounded to bf16, fp32 accumulation; weights, gradients, optimizer state, softmax, norms and loss stay fp32).")
    var precision: String = "fp32"

    /// Applies the choice process-wide; a typo or a missing oneDNN fails here, before any file is read.
    func apply() throws {
        guard let p = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16, not '\(precision)'") }
        try Gemm.configure(gemm: gemm, precision: p)
    }
}
