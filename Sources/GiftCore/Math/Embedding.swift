/// Token embedding lookup: x[t] = table[token[t]].
public enum Embedding {
    public static func forward(tokens: UnsafePointer<Int32>, table: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               count: Int, d: Int) {
        for t in 0..<count { (out + t * d).update(from: table + Int(tokens[t]) * d, count: d) }
    }

    /// dtable[token[t]] += dx[t]
    public static func backward(tokens: UnsafePointer<Int32>, dx: UnsafePointer<Float>, dtable: UnsafeMutablePointer<Float>,
                                count: Int, d: Int) {
        for t in 0..<count {
            let row = dtable + Int(tokens[t]) * d, g = dx + t * d
            for i in 0..<d { row[i] += g[i] }
        }
    }
}
