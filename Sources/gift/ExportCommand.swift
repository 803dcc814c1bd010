import ArgumentParser
import Foundation
import GiftCore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's model as a Hugging Face LLaDA folder (config.json + model.safetensors).",
        discussion: """
        CHECKPOINT_OR_RUN is a checkpoint folder (RUN_DIR/checkpoints/step-NNNNNNNN) or a run folder, whose \
        newest complete checkpoint is used (a corrupt newest one is reported and skipped). The shards are \
        verified (sizes and checksums) before anything is written.

        When the run started from a model folder, the result is a drop-in replacement of it: its tokenizer \
        files, generation_config.json and remote-code files (*.py) are copied, its config.json keys gift does \
        not write (auto_map, ...) kept, and the weights written in its dtype (--dtype auto) and sharding \
        (shards + index when it was sharded).

        Examples:
          gift export runs/gift1 --out exported/gift1 --dtype bf16
          gift export runs/gift1/checkpoints/step-00000400 --out exported/gift1-step400
        """)

    @Argument(help: "Checkpoint folder or run folder.") var source: String
    @Option(help: "Output model folder.") var out: String
    @Option(help: "f32, bf16, or auto (the source model folder's dtype; f32 for a preset).") var dtype: String = "auto"

    func run() throws {
        let forced: SafetensorsDType?
        switch dtype {
        case "auto": forced = nil
        case "f32": forced = .F32
        case "bf16": forced = .BF16
        default: throw ValidationError("--dtype must be auto, f32 or bf16")
        }
        let (config, params, from) = try Resume.loadModel(source) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        if let src = Resume.sourceModelFolder(ofCheckpoint: from) {
            let (dt, copied) = try ModelCompanions.saveLike(src, dst: out, config: config, parameters: params, dtype: forced)
            print("exported \(from) to \(out) (\(params.count) parameters, \(dt.rawValue), like \(src)"
                  + (copied.isEmpty ? ")" : "; copied \(copied.joined(separator: ", ")))"))
        } else {
            try ModelFolder.save(out, config: config, parameters: params, dtype: forced ?? .F32)
            print("exported \(from) to \(out) (\(params.count) parameters, \((forced ?? .F32).rawValue))")
        }
    }
}
