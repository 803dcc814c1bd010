import Foundation

/// One sequence of a batch: prompt, response and EOS padding (padding counts as response, LLaDA's
/// convention), and which example it came from.
public struct PaddedSequence: Equatable, Sendable {
    public var tokens: [Int32]
    /// tokens[0..<promptLength] is the prompt; everything after it, padding included, is response.
    public var promptLength: Int
    /// The example's global index (into the data set), for deterministic per-example randomness.
    public var exampleIndex: Int
    /// tokens[0..<contentLength] is the (possibly cut) example; the rest is the EOS padding.
    public var contentLength = 0

    public init(tokens: [Int32], promptLength: Int, exampleIndex: Int) {
        self.tokens = tokens; self.promptLength = promptLength; self.exampleIndex = exampleIndex
    }
}

/// Whether EOS padding is trained (`--pad-loss`). `on`, LLaDA's convention and the default: the padding
/// that fills a sequence to the batch length is response, masked and trained like the rest (the model
/// learns to end with EOS), and counts in the normaliser. `off`: padding is never masked, enters no loss
/// and no normaliser (token: N counts only the examples' own response tokens; sequence: each is divided
/// by its own unpadded response length), and no GIFT beta mean; it stays visible to attention (there is
/// no padding mask, objective.md). The response's own end-of-turn/EOS tokens (the chat template's, a
/// built-in task's) are trained either way.
public enum PadLoss: String, CaseIterable, Sendable { case on, off }

/// Truncation, padding, epoch order and the validation split.
public enum Batching {
    /// `e` cut to at most `maxLength` tokens (maxLength >= 1), and whether anything was cut.
    /// The whole prompt is kept when it leaves room for at least one response token, and the response
    /// is cut from its end; otherwise one response token is kept and the prompt loses its FIRST tokens
    /// (its last maxLength-1 tokens stay, next to the response). An example without a response keeps
    /// the last maxLength prompt tokens.
    public static func truncate(_ e: Example, maxLength: Int) -> (Example, Bool) {
        precondition(maxLength >= 1, "maxLength must be at least 1")
        if e.length <= maxLength { return (e, false) }
        // by lengths only: a mapped example stays mapped (its ids unread)
        let p = e.promptCount
        if p + 1 <= maxLength { return (e.keeping(promptSuffix: p, responsePrefix: maxLength - p), true) }
        if e.responseCount > 0 { return (e.keeping(promptSuffix: maxLength - 1, responsePrefix: 1), true) }
        return (e.keeping(promptSuffix: maxLength, responsePrefix: 0), true)
    }

    /// Truncates every example to `maxLength`; returns them and how many were cut.
    public static func truncateAll(_ examples: [Example], maxLength: Int) -> ([Example], Int) {
        var n = 0
        let out = examples.map { e -> Example in
            let (t, cut) = truncate(e, maxLength: maxLength)
            if cut { n += 1 }
            return t
        }
        return (out, n)
    }

    /// Prompt + response of each example, padded by appending `eos` to the response up to the length of
    /// the batch's longest sequence plus `minEOS`, or to exactly `toLength` when given. `minEOS` EOS
    /// tokens are always appended (0 by default; 1 teaches the model to end every response with EOS,
    /// even the longest one). With `toLength`, an example longer than toLength - minEOS is cut by
    /// `truncate` first (callers who count truncations truncate beforehand).
    public static func pad(_ examples: [(Example, Int)], eos: Int32, toLength: Int? = nil,
                           minEOS: Int = 0) -> [PaddedSequence] {
        precondition(minEOS >= 0)
        let length = toLength ?? ((examples.map { $0.0.length }.max() ?? 0) + minEOS)
        return examples.map { (e0, index) in
            var e = e0
            if e.length + minEOS > length { e = truncate(e, maxLength: max(1, length - minEOS)).0 }
            var tokens = e.prompt
            tokens.reserveCapacity(length)
            tokens.append(contentsOf: e.response)   // a mapped example's ids are read here, once
            if tokens.count < length { tokens.append(contentsOf: repeatElement(eos, count: length - tokens.count)) }
            var p = PaddedSequence(tokens: tokens, promptLength: e.promptCount, exampleIndex: index)
            p.contentLength = e.length
            return p
        }
    }

    /// A deterministic held-out split: example i goes to validation when a hash of (seed, i) falls
    /// below `validationFraction`. At least one example goes to validation when the fraction is > 0 and
    /// there are at least 2 examples, and at least one stays in training then. Order within each part
    /// is the input order.
    public static func split(_ examples: [Example], validationFraction: Double,
                             seed: UInt64) -> (train: [Example], validation: [Example]) {
        let mask = validationMask(count: examples.count, validationFraction: validationFraction, seed: seed)
        var train: [Example] = [], validation: [Example] = []
        for (i, e) in examples.enumerated() {
            if mask[i] { validation.append(e) } else { train.append(e) }
        }
        return (train, validation)
    }

    /// validation[i] for each index of `split`.
    public static func validationMask(count: Int, validationFraction: Double, seed: UInt64) -> [Bool] {
        let rng = CounterRNG(seed, 0x5350_4C49_54)  // "SPLIT"
        let u = (0..<count).map { rng.uniform(UInt64($0)) }
        var mask = u.map { $0 < validationFraction }
        if validationFraction > 0 && count >= 2 {
            if !mask.contains(true) { mask[u.indices.min { u[$0] < u[$1] }!] = true }
            if !mask.contains(false) { mask[u.indices.max { u[$0] < u[$1] }!] = false }
        }
        return mask
    }
}

/// The order of one epoch: a permutation of 0..<count that depends only on (seed, epoch), from
/// Fisher-Yates with counter-based draws.
public struct EpochOrder: Sendable {
    public let order: [Int]

    public init(count: Int, seed: UInt64, epoch: Int) {
        precondition(count >= 0 && epoch >= 0)
        order = Self.shuffled(Array(0..<count), CounterRNG(seed, 0x4550_4F43_48, UInt64(epoch)))  // "EPOCH"
    }

    /// Length-grouped (`--group-by-length`, HF Trainer's megabatch scheme): the epoch's shuffled order is
    /// cut into megabatches of `megabatch` global batches, each sorted by length (longest first, ties by
    /// index), so a global batch holds examples of similar length and pads little; then the order of the
    /// global batches is shuffled, so lengths do not come sorted. Depends only on (seed, epoch, lengths,
    /// batch): every number of ranks sees the same global batches.
    public init(lengths: [Int], batch: Int, seed: UInt64, epoch: Int, megabatch: Int = 50) {
        precondition(batch >= 1 && megabatch >= 1)
        let base = EpochOrder(count: lengths.count, seed: seed, epoch: epoch).order
        var grouped: [Int] = []
        grouped.reserveCapacity(base.count)
        let mega = batch * megabatch
        for start in stride(from: 0, to: base.count, by: mega) {
            grouped += base[start..<min(base.count, start + mega)].sorted {
                lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1
            }
        }
        // whole global batches change places; a last partial batch (never used by a step) stays last
        let full = grouped.count / batch
        let batches = Self.shuffled(Array(0..<full), CounterRNG(seed, 0x4752_4F55_50, UInt64(epoch)))  // "GROUP"
        order = batches.flatMap { grouped[($0 * batch)..<(($0 + 1) * batch)] } + grouped[(full * batch)...]
    }

    static func shuffled(_ x: [Int], _ rng: CounterRNG) -> [Int] {
        var a = x
        var i = a.count - 1
        while i > 0 {
            // Uniform in 0...i (multiply-high: bias below 2^-50 for any realistic count).
            let j = Int(rng.bits(UInt64(i)).multipliedFullWidth(by: UInt64(i + 1)).high)
            a.swapAt(i, j)
            i -= 1
        }
        return a
    }
}
