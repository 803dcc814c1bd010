import ArgumentParser
import Foundation
import GiftCore

struct MPICheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check",
        abstract: "Check the collectives training uses across the ranks of an MPI job.",
        discussion: """
        Runs allreduce (floats and doubles), reduce-scatter, allgather and broadcast on --count known
        elements and checks every result (sums against float64 ones with --values exact, whose sums are
        exact in any order), then the bf16 reduce-scatter and allgather (--grad-reduce-dtype bf16, ZeRO's
        bf16 gathers), checked bit for bit with either --values (bf16-rounded inputs, summed in rank order).
        Rank 0 prints one line per collective with its MPI call count and time; the bf16 lines also name
        their staged rounds. GIFT_MPI_CHUNK=N caps every count and displacement one MPI call gets at N
        (default 2^31-1); larger transfers go in rounds, which a small N exercises (the bf16 collectives
        always stage rounds of N/ranks values per rank, at most 2^22). --out DIR writes each rank's results
        to DIR/rank-R.bin and its bf16 results to DIR/rank-R-bf16.bin, to compare runs byte for byte.
        Exits non-zero on any wrong element.
        Example: mpirun -np 3 gift mpi-check --count 100000 (GIFT_MPI_CHUNK=300 to force the rounds)
        """)

    @Option(help: "Elements per collective.") var count: Int = 1 << 20
    @Option(help: "exact (dyadic values: sums exact in any order) or random (uniform in -1...1).") var values: String = "exact"
    @Option(help: "Folder for each rank's results (rank-R.bin).") var out: String?

    func run() throws {
        guard let kind = CollectiveCheck.Values(rawValue: values) else { throw ValidationError("--values must be exact or random") }
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        let comm: Communicator = try MPICommunicator.fromEnvironment() ?? SingleProcess()
        do {
            let o = try CollectiveCheck.run(comm: comm, count: count, values: kind)
            if let out {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                try o.results.write(to: URL(fileURLWithPath: out + "/rank-\(comm.rank).bin"))
                try o.bf16Results.write(to: URL(fileURLWithPath: out + "/rank-\(comm.rank)-bf16.bin"))
            }
            var wrong = [Double(o.mismatches)]
            try comm.allreduceSum(&wrong)
            if comm.rank == 0 {
                let limit = (comm as? MPICommunicator)?.chunkLimit ?? Int(Int32.max)
                print("\(comm.size) ranks, chunk limit \(limit) elements per MPI call")
                for l in o.lines { print(l) }
                print(wrong[0] == 0 ? "all collectives correct" : "\(Int(wrong[0])) wrong elements over all ranks")
            }
            (comm as? MPICommunicator)?.finalize()
            if wrong[0] != 0 { throw ExitCode(1) }
        } catch let e as ExitCode {
            throw e
        } catch where comm.size > 1 {
            comm.abort("\(error)")
        }
    }
}
