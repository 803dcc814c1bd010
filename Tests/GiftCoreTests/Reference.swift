import Foundation
@testable import GiftCore

/// An independent, plain float64 LLaDA (or Dream) forward pass and objective, written from
/// architecture.md and objective.md with naive loops and no shared kernels, to check the real
/// implementation against. Dream: Qwen2's names written out here, q/k/v biases, and `logits` shifted
/// (row i is the model's row i−1, row 0 its own).
struct Reference {
    let c: ModelConfig
    var w: [String: [Double]]
    /// Round every matmul operand to bf16 (products and sums stay float64), at the points where gift's
    /// bf16 path rounds them: the model-level check of that path.
    var bf16 = false

    func r(_ x: Double) -> Double { bf16 ? Double(BFloat16.round(Float(x))) : x }

    init(config: ModelConfig, params: FloatBuffer) {
        c = config
        var w: [String: [Double]] = [:]
        for t in ParameterLayout(config).tensors {
            w[t.name] = (0..<t.count).map { Double(params[t.offset + $0]) }
        }
        self.w = w
    }

    func matvec(_ W: [Double], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
        (0..<rows).map { i in var s = 0.0; for j in 0..<cols { s += r(W[i * cols + j]) * r(x[j]) }; return s }
    }

    func rmsnorm(_ x: [Double], _ g: [Double]) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let r = 1 / (ms + c.rmsNormEps).squareRoot()
        return zip(x, g).map { $0 * r * $1 }
    }

    func rope(_ v: [Double], pos: Int) -> [Double] {
        let hd = v.count, h = hd / 2
        var out = v
        for j in 0..<h {
            let a = Double(pos) / Foundation.pow(c.ropeTheta, Double(2 * j) / Double(hd))
            out[j] = v[j] * Foundation.cos(a) - v[j + h] * Foundation.sin(a)
            out[j + h] = v[j + h] * Foundation.cos(a) + v[j] * Foundation.sin(a)
        }
        return out
    }

    /// A tensor's name in the config's family: `k` is the LLaDA name ("wte", "ln_f", "head", or a block's
    /// "q_proj" …), written out for Dream independently of gift's layout.
    func tname(_ k: String, _ l: Int = 0) -> String {
        switch c.family {
        case .llada:
            switch k {
            case "wte": return "model.transformer.wte.weight"
            case "ln_f": return "model.transformer.ln_f.weight"
            case "head": return "model.transformer.ff_out.weight"
            default: return "model.transformer.blocks.\(l).\(k).weight"
            }
        case .dream:
            switch k {
            case "wte": return "model.embed_tokens.weight"
            case "ln_f": return "model.norm.weight"
            case "head": return "lm_head.weight"
            default:
                let m = ["attn_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
                         "v_proj": "self_attn.v_proj", "attn_out": "self_attn.o_proj", "ff_norm": "post_attention_layernorm",
                         "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "ff_out": "mlp.down_proj"]
                return "model.layers.\(l).\(m[k]!).weight"
            }
        }
    }

    /// y + the bias of block l's projection `k` (Dream's q/k/v), y where there is none.
    func biased(_ y: [Double], _ k: String, _ l: Int) -> [Double] {
        guard c.family == .dream else { return y }
        let b = w[String(tname(k, l).dropLast(".weight".count)) + ".bias"]!
        return zip(y, b).map { $0 + $1 }
    }

    /// Logits [L][V] predicting each token of one sequence (Dream: the model's rows shifted by one).
    func logits(_ tokens: [Int]) -> [[Double]] {
        let z = rawLogits(tokens)
        return c.family == .dream ? (0..<z.count).map { z[max($0 - 1, 0)] } : z
    }

    /// The model's output rows [L][V], unshifted.
    func rawLogits(_ tokens: [Int]) -> [[Double]] {
        let d = c.dModel, hd = c.headDim, H = c.nHeads, KV = c.nKVHeads, ff = c.mlpHiddenSize, V = c.vocab
        let L = tokens.count
        var x: [[Double]] = tokens.map { Array(w[tname("wte")]![($0 * d)..<($0 * d + d)]) }
        for l in 0..<c.nLayers {
            func p(_ k: String) -> String { tname(k, l) }
            let xn = x.map { rmsnorm($0, w[p("attn_norm")]!) }
            let q = xn.map { biased(matvec(w[p("q_proj")]!, rows: d, cols: d, $0), "q_proj", l) }
            let k = xn.map { biased(matvec(w[p("k_proj")]!, rows: KV * hd, cols: d, $0), "k_proj", l) }
            let v = xn.map { biased(matvec(w[p("v_proj")]!, rows: KV * hd, cols: d, $0), "v_proj", l) }
            var att = [[Double]](repeating: [Double](repeating: 0, count: d), count: L)
            for h in 0..<H {
                let g = h / (H / KV)
                let qh = (0..<L).map { rope(Array(q[$0][(h * hd)..<(h * hd + hd)]), pos: $0) }
                let kh = (0..<L).map { rope(Array(k[$0][(g * hd)..<(g * hd + hd)]), pos: $0) }
                let vh = (0..<L).map { Array(v[$0][(g * hd)..<(g * hd + hd)]) }
                for i in 0..<L {
                    var s = (0..<L).map { j in zip(qh[i], kh[j]).reduce(0) { $0 + r($1.0) * r($1.1) } / Double(hd).squareRoot() }
                    let m = s.max()!
                    s = s.map { Foundation.exp($0 - m) }
                    let z = s.reduce(0, +)
                    // (gift multiplies the unnormalised exponentials by V, then divides by z)
                    for j in 0..<L { for e in 0..<hd { att[i][h * hd + e] += r(s[j]) * r(vh[j][e]) / z } }
                }
            }
            for i in 0..<L {
                let o = matvec(w[p("attn_out")]!, rows: d, cols: d, att[i])
                for e in 0..<d { x[i][e] += o[e] }
                let xn2 = rmsnorm(x[i], w[p("ff_norm")]!)
                let a = matvec(w[p("ff_proj")]!, rows: ff, cols: d, xn2)
                let u = matvec(w[p("up_proj")]!, rows: ff, cols: d, xn2)
                let hh = (0..<ff).map { a[$0] / (1 + Foundation.exp(-a[$0])) * u[$0] }
                let f = matvec(w[p("ff_out")]!, rows: d, cols: ff, hh)
                for e in 0..<d { x[i][e] += f[e] }
            }
        }
        return x.map { matvec(w[tname("head")]!, rows: V, cols: d, rmsnorm($0, w[tname("ln_f")]!)) }
    }

    static func logSoftmax(_ z: [Double]) -> [Double] {
        let m = z.max()!
        let lse = m + Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - m) })
        return z.map { $0 - lse }
    }

    struct Result { var loss: Double; var betas: [[Double]]; var weights: [[Double]]; var logits: [[[Double]]] }

    /// objective.md, step by step, for sequences with fixed t and mask.
    /// `frozenBetas` replaces pass 1 (finite differences hold the betas fixed: no gradient flows through them).
    func objective(_ o: ObjectiveOptions, _ seqs: [TrainSequence], frozenBetas: [[Double]]? = nil) -> Result {
        var betas: [[Double]] = [], weights: [[Double]] = [], allLogits: [[[Double]]] = []
        var total = 0.0
        let N = Double(seqs.reduce(0) { $0 + $1.responseLength })
        for (si, s) in seqs.enumerated() {
            let L = s.tokens.count, P = s.promptLength, n = L - P
            let toks = s.tokens.map(Int.init)
            var beta = [Double](repeating: 0, count: L)
            let pass1 = [.gift, .giftRaw, .nll, .giftSW, .giftRef].contains(o.kind)
            if let fb = frozenBetas, pass1 {
                beta = fb[si]
            } else if pass1 {
                let z = logits((0..<L).map { $0 < P ? toks[$0] : c.maskTokenId })
                let gamma = o.kind == .giftRaw || o.kind == .nll ? 1.0 : o.entropyPower
                for i in P..<L {
                    let lp = Reference.logSoftmax(z[i])
                    let v = o.kind == .nll ? -lp[toks[i]] : -lp.reduce(0) { $0 + Foundation.exp($1) * $1 }
                    beta[i] = Foundation.pow(v, gamma)
                }
            }
            var r = [Double](repeating: 1, count: L)
            if pass1 {
                let inc = (P..<L).filter { o.betaReference == .response || (toks[$0] != c.eosTokenId && toks[$0] != c.padTokenId) }
                let b0 = inc.isEmpty ? 0 : inc.reduce(0) { $0 + beta[$1] } / Double(inc.count)
                if b0 >= 1e-8 { for i in P..<L { r[i] = beta[i] / b0 } }
            }
            let t = s.fixedT!, m = s.fixedMask!
            var wt = [Double](repeating: 0, count: L)
            for i in P..<L where m[i] {
                let ti = max(1e-6, 1 - Foundation.pow(1 - t, r[i]))
                switch o.kind {
                case .sft: wt[i] = 1 / t
                case .giftSW: wt[i] = r[i] / t
                case .dream:
                    var acc = 0.0
                    for j in 0..<L where j != i && m[j] == false { acc += o.dreamP * Foundation.pow(1 - o.dreamP, Double(abs(i - j) - 1)) }
                    wt[i] = 0.5 * acc
                default:
                    wt[i] = o.giftWeight == .inverse ? 1 / ti : r[i] * Foundation.pow(1 - t, r[i] - 1) / ti
                }
            }
            let z = logits((0..<L).map { m[$0] ? c.maskTokenId : toks[$0] })
            var seqLoss = 0.0
            for i in P..<L where m[i] { seqLoss += wt[i] * -Reference.logSoftmax(z[i])[toks[i]] }
            total += o.lossNorm == .token ? seqLoss / N : seqLoss / Double(n) / Double(seqs.count)
            betas.append(beta); weights.append(wt); allLogits.append(z)
        }
        return Result(loss: total, betas: betas, weights: weights, logits: allLogits)
    }
}
