import ArgumentParser
import Foundation
import GiftCore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's model as a Hugging Face LLaDA folder (config.json + model.safetensors).",
        usage: "gift export <source> --out <out> [<options>]\ngift export --model <m> --adapter <a> --out <out>",  // ArgumentParser never wraps USAGE
        discussion: """
        CHECKPOINT_OR_RUN is a checkpoint folder (RUN_DIR/checkpoints/step-NNNNNNNN) or a run folder, whose \
        newest complete checkpoint is used (a corrupt newest one is reported and skipped). The shards are \
        verified (sizes and checksums) before anything is written.

        When the run started from a model folder, the result is a drop-in replacement of it: its tokenizer \
        files, generation_config.json and remote-code files (*.py) are copied, its config.json keys gift does \
        not write (auto_map, ...) kept, and the weights written in its dtype (--dtype auto) and sharding \
        (shards + index when it was sharded).

        A LoRA run's checkpoint holds adapters: without --merge they are written as a PEFT adapter folder \
        (adapter_config.json + adapter_model.safetensors); with --merge the base (the run's model, checked \
        against the fingerprint recorded in training) plus the adapters, W + (alpha/r)·B·A, as a full model \
        folder, the same weights as PEFT's merge_and_unload(). Without a checkpoint, --model BASE --adapter DIR \
        merges a PEFT adapter folder into BASE.

        Examples:
          gift export runs/gift1 --out exported/gift1 --dtype bf16
          gift export runs/gift1/checkpoints/step-00000400 --out exported/gift1-step400
          gift export runs/s1k-lora --merge --out exported/s1k-merged --dtype bf16
        """)

    @Argument(help: "Checkpoint folder or run folder.") var source: String?
    @Flag(help: "LoRA: write the base with the adapters merged in (a full model folder).") var merge = false
    @Option(help: "With --adapter: the base model folder to merge a PEFT adapter folder into.") var model: String?
    @Option(help: "With --model: a PEFT adapter folder.") var adapter: String?
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
        if let model, let adapter {
            guard source == nil else { throw ValidationError("give a checkpoint or --model with --adapter, not both") }
            let (config, params) = try PEFTAdapter.merged(base: model, adapter: adapter)
            let (dt, copied) = try ModelCompanions.saveLike(model, dst: out, config: config, parameters: params, dtype: forced)
            print("merged \(adapter) into \(model): \(out) (\(params.count) parameters, \(dt.rawValue)"
                  + (copied.isEmpty ? ")" : "; copied \(copied.joined(separator: ", ")))"))
            return
        }
        guard let source else { throw ValidationError("give a checkpoint or run folder, or --model BASE --adapter DIR") }
        if !merge, let c = try Resume.loraCheckpoint(source) {
            // the adapters alone: the base is neither needed nor loaded
            let (man, layout, adapters) = try Resume.readAdapters(c)
            try PEFTAdapter.save(out, layout: layout, weights: adapters.pointer, baseModel: man.lora!.baseModel)
            print("exported the LoRA adapters of \(c) to \(out) (PEFT format, r \(layout.lora.r), \(layout.count) parameters; --merge writes the merged model)")
            return
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
