import Foundation

/// `gift inspect`: the deterministic loss, betas, weights, logits and gradients of one objective on a
/// batch with explicit t and mask (architecture.md, "The inspect contract").
public enum Inspect {
    public struct Output {
        public var loss: Double
        public var masked: Int
        public var responseTokens: Int
        public var batch: Int, seqLen: Int
        public var betas: [Float]      // [B, L]
        public var weights: [Float]    // [B, L]
        public var logits: FloatBuffer // [B, L, V]
        public var grads: FloatBuffer  // flat, layout order

        public var summaryJSON: String {
            "{\"loss\": \(loss), \"masked\": \(masked), \"response_tokens\": \(responseTokens)}"
        }
    }

    /// Parses BATCH.json, checking every field against the model before use.
    public static func readBatch(path: String, config c: ModelConfig) throws -> [TrainSequence] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GiftError(.io, "\(path): cannot read (\(error.localizedDescription))")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw GiftError(.format, "\(path): not a JSON object")
        }
        guard let list = root["sequences"] as? [Any], !list.isEmpty else {
            throw GiftError(.format, "\(path): field 'sequences' must be a non-empty array")
        }
        var seqs: [TrainSequence] = []
        for (n, item) in list.enumerated() {
            let at = "\(path): sequences[\(n)]"
            guard let o = item as? [String: Any] else { throw GiftError(.format, "\(at) is not an object") }
            func ints(_ k: String) throws -> [Int] {
                guard let a = o[k] as? [Any] else { throw GiftError(.format, "\(at): field '\(k)' must be an array of integers") }
                return try a.enumerated().map { i, v in
                    guard let num = v as? NSNumber, let x = Int(exactly: num.doubleValue) else {
                        throw GiftError(.format, "\(at): \(k)[\(i)] is not an integer")
                    }
                    return x
                }
            }
            let ids = try ints("input_ids"), mask = try ints("mask")
            guard let pn = o["prompt_length"] as? NSNumber, let P = Int(exactly: pn.doubleValue) else {
                throw GiftError(.format, "\(at): field 'prompt_length' must be an integer")
            }
            guard let tn = o["t"] as? NSNumber else { throw GiftError(.format, "\(at): field 't' must be a number") }
            let t = tn.doubleValue
            let L = ids.count
            if L == 0 { throw GiftError(.format, "\(at): input_ids is empty") }
            if let first = seqs.first, first.tokens.count != L {
                throw GiftError(.format, "\(at): length \(L) differs from sequences[0]'s \(first.tokens.count); pad every sequence to one length")
            }
            if L > c.maxSequenceLength { throw GiftError(.format, "\(at): length \(L) exceeds the model's max_sequence_length \(c.maxSequenceLength)") }
            if P < 0 || P >= L { throw GiftError(.format, "\(at): prompt_length \(P) must be in [0, \(L - 1)]") }
            if !(t > 0 && t < 1) { throw GiftError(.format, "\(at): t = \(t) must be in (0, 1)") }
            if mask.count != L { throw GiftError(.format, "\(at): mask has \(mask.count) entries, input_ids \(L)") }
            for (i, id) in ids.enumerated() where id < 0 || id >= c.vocab {
                throw GiftError(.format, "\(at): input_ids[\(i)] = \(id) is outside the model's vocabulary of \(c.vocab)")
            }
            for (i, m) in mask.enumerated() {
                if m != 0 && m != 1 { throw GiftError(.format, "\(at): mask[\(i)] = \(m) must be 0 or 1") }
                if m == 1 && i < P { throw GiftError(.format, "\(at): mask[\(i)] = 1 on a prompt position (prompt_length \(P))") }
            }
            seqs.append(TrainSequence(tokens: ids.map(Int32.init), promptLength: P, exampleIndex: n,
                                      fixedT: t, fixedMask: mask.map { $0 == 1 }))
        }
        return seqs
    }

    /// Runs one objective on the batch: nothing is random.
    public static func run(model: Transformer, params: FloatBuffer, options: ObjectiveOptions,
                           batch inSeqs: [TrainSequence]) -> Output {
        var seqs = inSeqs
        let B = seqs.count, L = seqs[0].tokens.count, V = model.config.vocab
        let runner = ObjectiveRunner(model: model, options: options, capacityTokens: B * L, maxSeqLen: L)
        if options.kind == .giftRef {
            // the frozen reference is the model given: its betas, cached per example as in training
            var o = options; o.kind = .gift
            let betas = ObjectiveRunner(model: model, options: o, capacityTokens: B * L, maxSeqLen: L)
                .pass1Betas(params.pointer, seqs)
            for b in 0..<B {
                seqs[b].cachedBetas = (seqs[b].promptLength..<L).map { Float(betas[b * L + $0]) }
            }
        }
        let grads = FloatBuffer(count: model.layout.count)
        let logits = FloatBuffer(count: B * L * V)
        let (st, prep) = runner.run(params.pointer, grads: grads.pointer, seqs, seed: 0, step: 0,
                                    normalizer: .of(seqs), captureLogits: logits.pointer)
        return Output(loss: st.loss, masked: st.maskedTokens, responseTokens: st.responseTokens, batch: B, seqLen: L,
                      betas: prep.betas.map(Float.init), weights: prep.weights.map(Float.init),
                      logits: logits, grads: grads)
    }

    /// Writes the contract's tensors: loss, betas, weights, logits, grad/<parameter name>.
    public static func write(_ out: Output, layout: ParameterLayout, to path: String) throws {
        let B = out.batch, L = out.seqLen
        var entries = [
            SafetensorsWriteEntry(name: "loss", shape: [1], values: [Float(out.loss)]),
            SafetensorsWriteEntry(name: "betas", shape: [B, L], values: out.betas),
            SafetensorsWriteEntry(name: "weights", shape: [B, L], values: out.weights),
            SafetensorsWriteEntry(name: "logits", shape: [B, L, layout.config.vocab], pointer: out.logits.pointer,
                                  count: out.logits.count),
        ]
        for t in layout.tensors {
            entries.append(SafetensorsWriteEntry(name: "grad/" + t.name, shape: t.shape,
                                                 pointer: out.grads.pointer + t.offset, count: t.count))
        }
        try SafetensorsFile.write(path: path, tensors: entries, metadata: ["loss": "\(out.loss)"])
    }
}
