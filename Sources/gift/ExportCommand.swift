import ArgumentParser
import Foundation
import GiftCore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's model as a Hugging Face LLaDA folder (config.json + model.safetensors).",
        discussion: """
        CHECKPOINT_OR_RUN is a checkpoint folder (RUN_DIR/checkpoints/step-NNNNNNNN) or a run folder, whose
        newest complete checkpoint is used (a corrupt newest one is reported and skipped). The shards are
        verified (sizes and checksums) before anything is written.
        Example: gift export runs/gift1 --out exported/gift1 --dtype bf16
        """)

    @Argument(help: "Checkpoint folder or run folder.") var source: String
    @Option(help: "Output model folder.") var out: String
    @Option(help: "f32 or bf16 tensors.") var dtype: String = "f32"

    func run() throws {
        guard let dt = ["f32": SafetensorsDType.F32, "bf16": .BF16][dtype] else { throw ValidationError("--dtype must be f32 or bf16") }
        let (config, params, from) = try Resume.loadModel(source) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        try ModelFolder.save(out, config: config, parameters: params, dtype: dt)
        print("exported \(from) to \(out) (\(params.count) parameters, \(dtype))")
    }
}
