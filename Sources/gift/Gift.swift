import ArgumentParser
import GiftCore

@main
struct Gift: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gift",
        abstract: "Fine-tune masked diffusion language models (LLaDA) with GIFT, data parallel over MPI.",
        discussion: """
        Start with `gift init --preset tiny --out model` to make a model folder (Hugging Face LLaDA layout),
        then `gift inspect` to see an objective's loss and gradients on a batch, or `gift bench` to measure
        training speed. Every command explains itself with `gift help COMMAND`.
        """,
        subcommands: [TrainCommand.self, DataCommand.self, ExportCommand.self, CompareCommand.self, InitCommand.self, InspectCommand.self, BenchCommand.self, TokenizeCommand.self, GenerateCommand.self, EvalCommand.self, MPICheckCommand.self, SaveBenchCommand.self, PlanCommand.self])
}
