import ArgumentParser
import Foundation
import GiftCore

// The shape every command has (Gift.swift says why it is not shared).
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Loss, betas, weights, logits and every gradient of one objective on a fixed batch.",
        usage: "gift inspect --model <model> --batch <batch>\n--out <out> [<options>]",  // ArgumentParser never wraps USAGE; OPTIONS lists the rest
        discussion: """
        BATCH.json: {"sequences": [{"input_ids": [...], "prompt_length": P, "t": 0.41, "mask": [0,1,...]}]}. \
        All sequences have one length; mask[i] = 1 masks position i for pass 2 (response positions only); t is \
        the sequence's time for the weights. Nothing is random: the same inputs print the same numbers.

        Prints {"loss": ..., "masked": ..., "response_tokens": ...} and writes float32 tensors to --out: loss \
        [1], betas [B, L], weights [B, L], logits [B, L, V], grad/<parameter name>.

        Example:
          gift inspect --model runs/tiny-model --batch batch.json --objective gift --out inspect.safetensors
        """)

    @Option(help: "Model folder (config.json + safetensors).") var model: String
    @Option(help: "Batch file (JSON, see above).") var batch: String
    @OptionGroup var objective: ObjectiveFlags
    @OptionGroup var compute: ComputeFlags
    @Option(help: "Output safetensors file.") var out: String

    func run() throws {
        let options = try objective.options()   // flags first: a typo fails before any file is read
        try compute.apply()
        let (config, params) = try ModelFolder.load(model)
        let seqs = try Inspect.readBatch(path: batch, config: config)
        try compute.settle(model: config, tokens: seqs.count * seqs[0].tokens.count, what: "the batch", forwardOnly: false)
        let m = Transformer(config: config, maxSeqLen: seqs[0].tokens.count)
        let result = Inspect.run(model: m, params: params, options: options, batch: seqs)
        try Inspect.write(result, layout: m.layout, to: out)
        print(result.summaryJSON)
    }
}
