import ArgumentParser
import Foundation
import GiftCore

/// The matrix-multiply backend and precision, shared by every command that runs the model.
struct ComputeFlags: ParsableArguments {
    @Option(help: "Matrix-multiply backend: auto (the fastest of OpenBLAS and oneDNN, and in bf16 of oneDNN's native kernel and the emulation, timed on the model's own GEMM shapes once per machine: see GIFT_KERNEL_CACHE in the README), openblas or onednn (GIFT_ONEDNN_LIB=PATH loads another oneDNN 2.x/3.x build).")
    var gemm: String = "auto"
    @Option(help: "Matmul input precision: fp32, or bf16 (inputs rounded to bf16, fp32 accumulation; weights, gradients, optimizer state, softmax, norms and loss stay fp32).")
    var precision: String = "fp32"

    /// Applies the choice process-wide; a typo or a missing oneDNN fails here, before any file is read.
    func apply() throws {
        guard let p = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16, not '\(precision)'") }
        try Gemm.configure(gemm: gemm, precision: p)
    }

    /// `--gemm auto`: the kernels measured for `model` at `tokens` rows per GEMM (rank 0's on every rank;
    /// once per machine, `KernelCache`), their table on stderr (rank 0). Other choices are left as `apply` set them.
    /// `forwardOnly`: the command runs no backward (sampling), so only the forward products are timed.
    func settle(comm: Communicator = SingleProcess(), model: ModelConfig, tokens: Int, what: String, forwardOnly: Bool = true) throws {
        guard gemm == "auto", let p = Precision(rawValue: precision) else { return }
        let lines = try KernelChoice.settle(comm: comm, model: model, tokens: max(1, tokens), what: what, precision: p,
                                            classes: forwardOnly ? [.forward] : KernelChoice.ShapeClass.allCases)
        if comm.rank == 0 { for l in lines { FileHandle.standardError.write(Data("\(l)\n".utf8)) } }
    }
}
