import Foundation
import XCTest
@testable import GiftCore

/// The fp32 GEMM backends to run model tests on: OpenBLAS, and oneDNN where libdnnl is installed (it is
/// wherever launch/install-deps.sh ran, so CI covers both).
var fp32Backends: [String] { Gemm.onednnAvailable ? ["openblas", "onednn"] : ["openblas"] }

/// Selects a backend for a test. Test shapes are small: every fp32 GEMM goes through the backend under
/// test (in production oneDNN takes only GEMMs of at least `Gemm.defaultOnednnMinWork` multiply-adds).
/// Undo with `resetBackend()` in tearDown.
func useBackend(_ gemm: String, precision: Precision = .fp32, kernel: BF16Kernel? = nil) throws {
    try Gemm.configure(gemm: gemm, precision: precision, bf16Kernel: kernel)
    Gemm.onednnMinWork = 0
}

func resetBackend() {
    try? Gemm.configure(gemm: "openblas", precision: .fp32)
    Gemm.onednnMinWork = Gemm.defaultOnednnMinWork
}

/// Deterministic random Float arrays for tests.
func randomFloats(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    let r = CounterRNG(seed, 77)
    return (0..<n).map { Float(scale * r.normal(UInt64($0))) }
}

/// The repository root (the folder holding Package.swift).
let packageRoot: URL = {
    var u = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: u.appendingPathComponent("Package.swift").path) {
        u.deleteLastPathComponent()
    }
    return u
}()
/// The float64 golden outputs, carried by the project (copied from the team's shared/golden: see
/// Fixtures/README.md), so that a clone with nothing beside it passes.
let goldenDir = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/golden")

/// Central finite-difference check of a scalar function of a Float array against an analytic gradient.
/// The function is evaluated in Double; `h` is the step. Entries are compared with
/// |analytic − numeric| ≤ rtol·|numeric| + atol·max|analytic| (atol covers float32 rounding of small entries).
func checkGradient(_ name: String, x: inout [Float], analytic: [Float], indices: [Int]? = nil,
                   h: Float = 1e-2, rtol: Double = 1e-2, atol: Double = 1e-3,
                   file: StaticString = #filePath, line: UInt = #line, f: ([Float]) -> Double) {
    let gmax = analytic.map { Double(abs($0)) }.max() ?? 0
    for i in indices ?? Array(0..<x.count) {
        let x0 = x[i]
        x[i] = x0 + h; let fp = f(x)
        x[i] = x0 - h; let fm = f(x)
        x[i] = x0
        let num = (fp - fm) / Double(2 * h)
        let err = abs(Double(analytic[i]) - num)
        XCTAssertLessThanOrEqual(err, rtol * abs(num) + atol * gmax,
                                 "\(name)[\(i)]: analytic \(analytic[i]) vs numeric \(num)", file: file, line: line)
    }
}

/// Σ out[i]·proj[i] in Double: a scalar whose gradient w.r.t. out is proj.
func project(_ out: [Float], _ proj: [Float]) -> Double {
    zip(out, proj).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// The `gift` executable built next to the test bundle.
let giftBinary: URL = {
    var candidates: [URL] = []
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    // <bin>/giftPackageTests.xctest (a file on Linux, a bundle elsewhere): gift sits in <bin>
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<4 {
        candidates.append(dir.appendingPathComponent("gift"))
        dir.deleteLastPathComponent()
    }
    candidates += ["release", "debug"].map { packageRoot.appendingPathComponent(".build/\($0)/gift") }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
}()

/// Both pipes read to their ends at once (stdout on another thread) before anyone waits for the child,
/// so that a chatty child never blocks on a full pipe.
func readToEnd(_ out: Pipe, _ err: Pipe) -> (out: Data, err: Data) {
    // unchecked: `data` is written by the one reader thread and read only after `g.wait()`, which orders
    // the two accesses
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box(), g = DispatchGroup()
    g.enter(); DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); g.leave() }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    g.wait()
    return (outBox.data, errData)
}

struct RunResult { var status: Int32; var stdout: String; var stderr: String }

/// Runs a command, capturing its output; `env` adds to the environment.
@discardableResult
func runProcess(_ exe: URL, _ args: [String], env: [String: String] = [:], cwd: URL? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = exe
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    if let cwd { p.currentDirectoryURL = cwd }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let (outData, errData) = readToEnd(out, err)
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData, as: UTF8.self))
}

/// Test classes (or class/method names) run again in a process of their own, with `env` added: for
/// what a process fixes when it starts (the BLAS core, the oneDNN library). Returns the run, its last
/// "Executed N tests" line and N. Skips where the test bundle is not an executable (Linux's layout).
func rerunTests(_ tests: [String], env: [String: String]) throws -> (run: RunResult, tail: String, executed: Int) {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    guard bundle.lastPathComponent.hasSuffix(".xctest"), FileManager.default.isExecutableFile(atPath: bundle.path) else {
        throw XCTSkip("the test bundle is not an executable here (\(bundle.path)): a re-run needs Linux's xctest layout")
    }
    let r = try runProcess(bundle, [tests.map { "GiftCoreTests." + $0 }.joined(separator: ",")], env: env)
    let tail = (r.stdout + r.stderr).split(separator: "\n").filter { $0.contains("Executed") }.last.map(String.init) ?? ""
    let words = tail.split(whereSeparator: { $0 == " " || $0 == "\t" })
    return (r, tail, words.firstIndex(of: "Executed").flatMap { Int(words[$0 + 1]) } ?? 0)
}

func runGift(_ args: [String], env: [String: String] = [:]) throws -> RunResult {
    try runProcess(giftBinary, args, env: env)
}

/// How a guarded gift run ended: its status, whether a signal ended it, its stderr and its wall seconds.
struct GuardedRun { var status: Int32; var signaled: Bool; var stderr: String; var seconds: Double }

/// Runs gift with `args` (and `stdin`) for the untrusted-input tests, stopping it after 60 s (a hang fails
/// the test rather than the suite).
func runGiftGuarded(_ args: [String], stdin: String? = nil) throws -> GuardedRun {
    let p = Process()
    p.executableURL = giftBinary
    p.arguments = args
    let err = Pipe(), out = Pipe(), inp = Pipe()
    p.standardError = err; p.standardOutput = out; p.standardInput = inp
    let start = Date()
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? inp.fileHandleForWriting.close()
    let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: killer)
    let (_, errData) = readToEnd(out, err)
    p.waitUntilExit()
    killer.cancel()
    return GuardedRun(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                      stderr: String(decoding: errData, as: UTF8.self), seconds: Date().timeIntervalSince(start))
}

/// A folder made once and shared by the tests of one class (a trained tokenizer, a reference run), removed
/// by `remove()` in the class's tearDown. XCTest runs a class's tests one after another, so its lock is
/// never contended; it makes the sharing right whatever thread a test runs on.
final class SharedTestFolder: @unchecked Sendable {   // unchecked: `url` is read and written under `lock` only
    private let lock = NSLock()
    private var url: URL?
    private let prefix: String

    init(prefix: String) { self.prefix = prefix }

    /// The folder: the first call has `make` fill a new temporary path (a failed `make` leaves nothing behind
    /// and the next call tries again).
    func get(_ make: (URL) throws -> Void) throws -> URL {
        lock.lock(); defer { lock.unlock() }
        if let url { return url }
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        do { try make(d) } catch { try? FileManager.default.removeItem(at: d); throw error }
        url = d
        return d
    }

    func remove() {
        lock.lock(); defer { lock.unlock() }
        if let url { try? FileManager.default.removeItem(at: url) }
        url = nil
    }
}

/// A fresh temporary folder, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("gift-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: u) }
    return u
}

/// The training tests' run: the tiny model on generated Countdown data, 40 steps unless told.
func tinyTrainConfig(_ objective: ObjectiveKind, dir: URL, steps: Int = 40) -> RunConfig {
    var c = RunConfig()
    c.model = "tiny"; c.data = "countdown"; c.taskExamples = 800
    c.objective = ObjectiveOptions(kind: objective)
    c.microBatch = 16; c.maxSteps = steps; c.lr = 3e-3; c.warmupRatio = 0.1; c.schedule = .cosine
    c.maxLength = 48; c.seed = 3; c.out = dir.path; c.validationFraction = 0.05
    return c
}

/// A trainer for `c` from the preset's fresh initialisation, logging nothing.
func makeTrainer(_ c: RunConfig, comm: Communicator = SingleProcess()) throws -> Trainer {
    let mc = try ModelConfig.preset(c.model)
    let t = try Trainer(config: c, comm: comm, modelConfig: mc, params: ParameterLayout(mc).initialize(seed: c.initSeed),
                        data: try TrainData.load(c, model: mc))
    t.log = { _ in }
    return t
}

/// The loss of every step in a run folder's metrics.jsonl.
func stepLosses(_ dir: URL) throws -> [Double] {
    try MetricsWriter.read(dir.appendingPathComponent("metrics.jsonl").path).map { ($0["loss"] as! NSNumber).doubleValue }
}

/// Runs a Python script with the reference packages: launch/test.sh's venv (GIFT_PYTHON), else python3 on
/// PATH. Callers skip (XCTSkip, with the reason) when a package is missing: "No module named" in stderr.
func runPython(_ script: String, _ args: [String], env: [String: String] = [:]) throws -> RunResult {
    if let py = ProcessInfo.processInfo.environment["GIFT_PYTHON"], !py.isEmpty {
        return try runProcess(URL(fileURLWithPath: py), ["-c", script] + args, env: env)
    }
    return try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script] + args, env: env)
}

/// Runs a Python reference check whose last stdout line is a JSON object of numbers, and returns it: the
/// test is skipped when a module it imports is missing, fails (and throws) when the check exits nonzero or
/// prints no such line. `what` names the check in the messages.
func runPythonCheck(_ what: String, _ script: String, _ args: [String], env: [String: String] = [:],
                    file: StaticString = #filePath, line: UInt = #line) throws -> [String: Double] {
    let r = try runPython(script, args, env: env)
    if r.status != 0 && r.stderr.contains("No module named") {
        throw XCTSkip("\(what) skipped: \(r.stderr.split(separator: "\n").last ?? "")")
    }
    XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    guard let last = r.stdout.split(separator: "\n").last,
          let o = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Double] else {
        XCTFail("no result from the \(what): \(r.stdout) \(r.stderr)", file: file, line: line)
        throw GiftError(.format, "no result from the \(what)")
    }
    return o
}

/// The `mpirun` the MPI tests launch, and the environment of their jobs (root allowed, the fast-starting
/// ob1 transport, one BLAS thread per rank on the shared cores).
let mpirunURL = URL(fileURLWithPath: "/usr/bin/mpirun")
let mpiTestEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
                          "OPENBLAS_NUM_THREADS": "1"]

func skipUnlessMPI() throws {
    try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: mpirunURL.path), "mpirun not installed")
}

/// `gift mpi-check --count COUNT --values VALUES` on `ranks` ranks, with GIFT_MPI_CHUNK = `chunk` when
/// given; checks that it ended well and said so, and returns its stdout and the folder of its rank files.
func runMPICheck(_ test: XCTestCase, ranks: Int, chunk: Int?, count: Int, values: String,
                 file: StaticString = #filePath, line: UInt = #line) throws -> (stdout: String, dir: URL) {
    let dir = try temporaryDirectory(test)
    var e = mpiTestEnvironment
    if let chunk { e["GIFT_MPI_CHUNK"] = "\(chunk)" }
    let r = try runProcess(mpirunURL, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", giftBinary.path,
                                       "mpi-check", "--count", "\(count)", "--values", values, "--out", dir.path], env: e)
    XCTAssertEqual(r.status, 0, r.stdout + r.stderr, file: file, line: line)
    XCTAssertTrue(r.stdout.contains("all collectives correct"), r.stdout, file: file, line: line)
    return (r.stdout, dir)
}

let loraLogitsSeqLen = 12

/// A model's logits (with `lora`: base + adapters) at every position of a fixed batch (2 sequences of 12
/// seeded tokens, inference: no dropout), for the checks in Python: DIR/logits.f32 (row-major, fp32) and
/// DIR/tokens.json.
func writeLogits(config c: ModelConfig, weights: FloatBuffer, lora: (layout: LoRALayout, adapters: FloatBuffer)?,
                 dir: URL) throws -> (logits: URL, tokens: URL) {
    let B = 2, L = loraLogitsSeqLen
    let tokens = (0..<(B * L)).map { Int32(CounterRNG(7).bits(UInt64($0)) % UInt64(c.vocab)) }
    let model = Transformer(config: c, maxSeqLen: 64)
    let acts = Activations(config: c, capacityTokens: 64, maxSeqLen: 64, training: lora != nil)
    let run = lora.map { LoRARun(layout: $0.layout, weights: $0.adapters.pointer, capacityTokens: 64, training: true) }
    model.forward(weights.pointer, tokens: tokens, batch: B, seqLen: L, acts: acts, lora: run)
    let logits = model.head(weights.pointer, rows: (0..<Int32(B * L)).map { $0 }, acts: acts)
    let lpath = dir.appendingPathComponent("logits.f32")
    try Data(bytes: logits, count: B * L * c.vocab * 4).write(to: lpath)
    let tpath = dir.appendingPathComponent("tokens.json")
    try JSONSerialization.data(withJSONObject: (0..<B).map { b in (0..<L).map { Int(tokens[b * L + $0]) } }).write(to: tpath)
    return (lpath, tpath)
}
