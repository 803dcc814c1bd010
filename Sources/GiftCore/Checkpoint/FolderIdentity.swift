import Foundation

/// What every rank of a ZeRO-3 start can compare about the model folder it was given, without any rank
/// reading the whole model: under ZeRO-3 each rank reads only the byte ranges of its own shard and no
/// start broadcast follows, so two hosts holding different files of the same config would otherwise train
/// silently on a mix of both.
///
/// Each rank checksums (XXH64), in the same order on every rank:
/// - `config.json`, all its bytes;
/// - the index file, all its bytes, when the folder is sharded (it is what maps tensors to files);
/// - every weight file's size, its whole safetensors header (8-byte length + JSON: every tensor's name,
///   dtype, shape and byte offsets, and the metadata), and a sample of its tensor data read at the same
///   offsets on every rank: the first and last `edgeBytes` of the data section and `probes` reads of
///   `probeBytes` at evenly spaced offsets between them.
///
/// Why that is enough for what it guards against: two copies of a model that are not the same model
/// (another seed, another fine-tuning step, another export, a truncated or half-copied download) differ
/// in their size or header, or in nearly every weight byte, so the first 64 KiB already differ; the
/// probes, one every 1/65 of each file, also catch copies where only some tensors changed (a merge into
/// some layers, a partly rewritten file) as long as a changed tensor is larger than the probe stride.
/// The reads are ~390 KiB per file (≈ 70 reads), negligible beside the shard each rank then reads.
///
/// What it cannot catch: a change confined to bytes no sample covers (a single flipped bit, or a few
/// edited values inside one tensor smaller than the stride between probes) with the size and header left
/// as they were; a file rewritten on one host between this check and the shard read; an XXH64 collision
/// (2⁻⁶⁴). Files the weights do not come from (tokenizer, chat template) are not compared here; the data
/// they produce is (the training data's identity in `Trainer.synchronizeStart`). Conversely it is strict:
/// the same weights with a reformatted config.json or a header written by another tool count as different.
public struct FolderIdentity: Sendable {
    /// One compared value (file relative to the folder, what of it, the checksum or size).
    public typealias Item = RankAgreement.Item

    /// Bytes hashed at each end of a weight file's data section.
    public static let edgeBytes = 64 << 10
    /// Evenly spaced probes between the ends, and the bytes each reads.
    public static let probes = 64
    public static let probeBytes = 4 << 10
    /// What `sampled data` items mean, for messages.
    public static let sampleDescription = "tensor data at the sampled offsets (first and last \(edgeBytes >> 10) KiB, \(probes) probes of \(probeBytes >> 10) KiB)"

    public let dir: String
    public let items: [Item]

    /// Reads and validates the folder's config and weight headers exactly as `ModelFolder.loadRange` does
    /// (same errors), then the samples.
    public init(modelFolder dir: String) throws {
        self.dir = dir
        let w = try ModelFolder.WeightHeaders(dir)
        let fm = FileManager.default
        var items: [Item] = []
        func bytes(_ name: String) throws -> [UInt8] {
            let path = ModelFolder.join(dir, name)
            guard let d = fm.contents(atPath: path) else { throw GiftError(.io, "\(path): cannot read") }
            return [UInt8](d)
        }
        items.append(Item(file: ModelFolder.configFile, part: "bytes", value: XXH64.hash(try bytes(ModelFolder.configFile))))
        // the index is read only when there is no single weights file (`ModelFolder.locateTensors`)
        if !fm.fileExists(atPath: ModelFolder.join(dir, ModelFolder.weightsFile)) {
            items.append(Item(file: ModelFolder.indexFile, part: "bytes", value: XXH64.hash(try bytes(ModelFolder.indexFile))))
        }
        let prefix = ModelFolder.join(dir, "")
        for f in w.files {
            let name = f.path.hasPrefix(prefix) ? String(f.path.dropFirst(prefix.count)) : f.path
            items.append(Item(file: name, part: "size in bytes", value: UInt64(f.fileSize), shown: true))
            items.append(Item(file: name, part: "safetensors header", value: XXH64.hash(try f.bytes(at: 0, count: f.dataStart))))
            var h = XXH64()
            for r in Self.sampleRanges(dataStart: f.dataStart, fileSize: f.fileSize) {
                h.add(try f.bytes(at: r.lowerBound, count: r.count))
            }
            items.append(Item(file: name, part: Self.sampleDescription, value: h.digest))
        }
        self.items = items
    }

    /// `file` (an item's) as a path on this host.
    public func path(_ file: String) -> String { ModelFolder.join(dir, file) }

    /// The byte ranges sampled in a file whose data section is `dataStart..<fileSize`: the same on every
    /// rank for files of the same size and header. Overlapping ranges in a small file are read as they are.
    public static func sampleRanges(dataStart: Int, fileSize: Int) -> [Range<Int>] {
        let length = fileSize - dataStart
        guard length > 0 else { return [] }
        var out = [dataStart..<(dataStart + min(length, edgeBytes))]
        for k in 1...probes {
            let at = dataStart + length / (probes + 1) * k + length % (probes + 1) * k / (probes + 1)
            out.append(at..<min(fileSize, at + probeBytes))
        }
        out.append(max(dataStart, fileSize - edgeBytes)..<fileSize)
        return out
    }
}
