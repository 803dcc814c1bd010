/// Bytes one rank sends per optimizer step in the gradient and parameter collectives of each ZeRO stage
/// (ring algorithms: a reduce-scatter or an allgather of V bytes sends V·(R−1)/R per rank, an allreduce
/// twice that). The step's few scalar allreduces (loss sums, the gradient norm) are left out.
///
/// N parameters, R ranks, A micro-batches per step, g bytes per gradient float (4, or 2 with
/// `--grad-reduce-dtype bf16`), O = E + H floats outside the blocks (E the embedding, H ln_f and the head),
/// P gathers of every block per micro-batch (3 for GIFT: pass 1 forward, pass 2 forward, backward; 2
/// without pass 1), p bytes per gathered float (4, or 2 under --precision bf16: the matrices of the blocks
/// and the head travel as bf16; the embedding and the norms (a few floats) in fp32):
///   ZeRO 0: allreduce of the summed gradients once per step (fp32: 2·4·N; bf16: a bf16 reduce-scatter
///           and an fp32 allgather of the sums)                          (g + 4)·N·(R−1)/R
///   ZeRO 1: reduce-scatter once per step + allgather of the parameters  (g + 4)·N·(R−1)/R
///   ZeRO 2: reduce-scatter every micro-batch (no full gradient is kept) + allgather of the parameters
///                                                                       A·g·N·(R−1)/R + 4·N·(R−1)/R
///   ZeRO 3: reduce-scatter every micro-batch, P gathers of the blocks per micro-batch, the outer units
///           gathered once per step                                      (A·(g·N + p·P·(N−O)) + 4·E + p·H)·(R−1)/R
enum Collectives {
    static func bytesPerStep(_ z: Plan.Sizes, stage: Int, ranks R: Int, gradAccum A: Int, gatherPasses P: Int,
                             gradBytes g: Int, gatherBytes p: Int = 4) -> Int {
        guard R > 1 else { return 0 }
        let n = z.n, o = z.outer
        let volume: Int
        switch stage {
        case 0, 1: volume = g * n + 4 * n
        case 2: volume = A * g * n + 4 * n
        default: volume = A * (g * n + p * P * (n - o)) + 4 * z.embedding + p * (o - z.embedding)
        }
        return volume * (R - 1) / R
    }

    /// The stage's formula in the words of the comment above (for the plan's report).
    static func formula(stage: Int) -> String {
        switch stage {
        case 0: return "allreduce of the gradients (reduce-scatter in g bytes, allgather in 4): (g + 4)·N·(R−1)/R"
        case 1: return "reduce-scatter + parameter allgather: (g·N + 4·N)·(R−1)/R"
        case 2: return "reduce-scatter per micro-batch + parameter allgather: (A·g·N + 4·N)·(R−1)/R"
        default: return "reduce-scatter per micro-batch, blocks gathered P times per micro-batch, outer units once: (A·(g·N + p·P·(N−O)) + 4·E + p·H)·(R−1)/R"
        }
    }
}
