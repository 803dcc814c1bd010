import ArgumentParser
import GiftCore

// Every command declares itself alike: a `CommandConfiguration` literal (name, abstract, a usage line
// written out, since ArgumentParser never wraps USAGE, a discussion ending in examples), then one
// `@Option`/`@Flag` property a switch, then `run()`. That is ArgumentParser's declarative shape, not logic:
// a shared helper would only rename CommandConfiguration's parameters, so the commands keep it as it is
// (and `duplicates` shows their heads and option lists as alike).
@main
struct Gift: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gift",
        abstract: "Fine-tune masked diffusion language models (LLaDA) with GIFT, data parallel over MPI.",
        discussion: """
        Start with `gift train`: the built-in quickstart, a small model that learns 4×4 Sudoku from scratch in \
        about two minutes on 2 cores; RUN_DIR/summary.txt puts its test accuracy beside the untrained model's.

        To work with a model of your own: `gift init --preset tiny --out model` makes a model folder (Hugging \
        Face LLaDA layout), `gift inspect` shows an objective's loss and gradients on a batch, `gift bench` \
        measures training speed, `gift eval` scores a model on a task and `gift compare` tests whether GIFT \
        beats SFT over several seeds. Every command explains itself with `gift help COMMAND`.

        Examples:
          gift train
          gift help train
        """,
        subcommands: [TrainCommand.self, DataCommand.self, ExportCommand.self, CompareCommand.self, InitCommand.self, InspectCommand.self, BenchCommand.self, TokenizeCommand.self, GenerateCommand.self, EvalCommand.self, MPICheckCommand.self, SaveBenchCommand.self, PlanCommand.self, LoadCheckCommand.self])
}
