import ArgumentParser
import Foundation
import XCTest
@testable import GiftCore
@testable import gift

/// `RunSettings.all` is the one declaration of the run config's settings: the config file, `gift train`'s
/// flags and help, and the checkpoint's defining fields all come from it and agree.
final class RunSettingsTests: XCTestCase {
    /// A value of `s` other than its default that it accepts (as the config file holds it).
    static func sample(_ s: RunSetting) throws -> StrictJSON {
        let d = s.read(RunConfig())
        switch s.kind {
        case .switch: return .bool(!(d as! Bool))
        case .choice(let names): return .string(names.first { $0 != d as! String }!)
        case .number: let x = d as! Double; return .number(String(x == 0 ? 0.25 : x / 2))
        case .integer:
            // one up, or one down where one up is out of range (extra_eos)
            let i = Int("\(d)")!
            var probe = RunConfig()
            if (try? probe.set(s.key, .number(String(i + 1)), source: "probe")) != nil { return .number(String(i + 1)) }
            return .number(String(i - 1))
        case .text:
            let valid = ["eval_task": "sudoku", "lora_targets": "q_proj,ff_out", "memory_limit": "8G", "eval_benchmark": "gsm8k"]
            return .string(valid[s.key] ?? "x-\(s.key)")
        }
    }

    /// The default config with every setting at its sample.
    static func everyChanged() throws -> RunConfig {
        var c = RunConfig()
        for s in RunSettings.all { try c.set(s.key, try sample(s), source: "sample") }
        return c
    }

    /// `RunConfig.json` as it was written out before the table (the regression reference for config.json).
    static func jsonBeforeTheTable(_ c: RunConfig) -> [String: Any] {
        let objective = c.objective, lora = c.lora
        return [
            "model": c.model, "data": c.data, "task_examples": c.taskExamples,
            "objective": objective.kind.rawValue, "entropy_power": objective.entropyPower,
            "gift_weight": objective.giftWeight.rawValue, "beta_reference": objective.betaReference.rawValue,
            "time_epsilon": objective.timeEpsilon, "loss_norm": objective.lossNorm.rawValue, "dream_p": objective.dreamP,
            "micro_batch": c.microBatch, "grad_accum": c.gradAccum, "max_steps": c.maxSteps, "epochs": c.epochs,
            "lr": c.lr, "warmup_ratio": c.warmupRatio, "schedule": c.schedule.rawValue, "weight_decay": c.weightDecay,
            "beta1": c.beta1, "beta2": c.beta2, "adam_eps": c.adamEps, "max_grad_norm": c.maxGradNorm,
            "max_length": c.maxLength, "seed": c.seed, "out": c.out, "eval_every": c.evalEvery,
            "validation_fraction": c.validationFraction, "skip_bad_lines": c.skipBadLines, "data_format": c.dataFormat.rawValue,
            "max_bad_steps": c.maxBadSteps, "init_seed": c.initSeed, "zero": c.zero, "grad_reduce_dtype": c.gradReduceDtype.rawValue,
            "group_by_length": c.groupByLength, "pad_loss": c.padLoss.rawValue, "bucket_mb": c.bucketMB, "eval_task": c.evalTask,
            "eval_n": c.evalN, "gemm": c.gemm.rawValue, "precision": c.precision.rawValue,
            "lora_r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
            "lora_targets": lora.targets.map(\.rawValue).joined(separator: ","), "lora_rslora": lora.rslora, "adapter": c.adapter,
            "recompute": c.recompute.rawValue, "base_dtype": c.baseDtype.rawValue,
            "s1k_system_prompt": c.s1kSystemPrompt, "s1k_reasoning_tag": c.s1kReasoningTag, "s1k_answer_tag": c.s1kAnswerTag,
            "extra_eos": c.extraEOS, "min_lr_ratio": c.minLRRatio, "memory_limit": c.memoryLimit,
            // added since the table: --report-to, --eval-benchmark, --eval-data, --eval-gen-length (none defines a checkpoint)
            "report_to": c.reportTo.rawValue, "eval_benchmark": c.evalBenchmark, "eval_data": c.evalData,
            "eval_gen_length": c.evalGenLength,
        ]
    }

    /// `Resume.definingFields` and `addedLater` before the table.
    static let definingBeforeTheTable = ["task_examples", "objective", "entropy_power", "gift_weight", "beta_reference",
                                         "time_epsilon", "loss_norm", "dream_p", "max_steps", "epochs", "lr", "warmup_ratio",
                                         "schedule", "weight_decay", "beta1", "beta2", "adam_eps", "max_grad_norm",
                                         "max_length", "seed", "validation_fraction", "init_seed", "extra_eos", "min_lr_ratio",
                                         "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_rslora", "pad_loss"]
    static let addedLaterBeforeTheTable = ["extra_eos": "1", "min_lr_ratio": "0", "lora_r": "0", "lora_alpha": "16.0",
                                           "lora_dropout": "0.0", "lora_targets": "q_proj,k_proj,v_proj", "lora_rslora": "false",
                                           "pad_loss": "on"]

    static func bytes(_ o: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
    }

    /// config.json keeps its keys, values and JSON types; every setting reads back (json → set) to the
    /// same config, alone and all together.
    func testEverySettingRoundTrips() throws {
        let changed = try Self.everyChanged()
        for c in [RunConfig(), RunConfig.quickstart, changed] {
            XCTAssertEqual(String(decoding: c.jsonData(), as: UTF8.self),
                           String(decoding: try Self.bytes(Self.jsonBeforeTheTable(c)), as: UTF8.self))
        }
        XCTAssertEqual(RunSettings.all.count, Set(RunSettings.all.map(\.key)).count, "a key declared twice")
        let defaults = RunConfig().json, json = changed.json
        for s in RunSettings.all {
            XCTAssertNotEqual("\(json[s.key]!)", "\(defaults[s.key]!)", "\(s.key): the sample must change it")
            var one = RunConfig()
            try one.set(s.key, try Self.sample(s), source: "test")
            var back = RunConfig()
            let file = try StrictJSON.parse([UInt8](try Self.bytes([s.key: one.json[s.key]!])))
            guard case .object(let o) = file else { return XCTFail("not an object") }
            try back.set(s.key, o[s.key]!, source: "test")
            XCTAssertEqual(back, one, s.key)
        }
        let p = try temporaryDirectory(self).appendingPathComponent("config.json")
        try changed.jsonData().write(to: p)
        var back = RunConfig()
        try back.apply(file: p.path)
        XCTAssertEqual(back, changed)
    }

    /// `gift train --flag value` (and `--flag=value`) sets what the config file's key sets, for every setting.
    func testEveryFlagParsesAsItsConfigKey() throws {
        let changed = try Self.everyChanged()
        var all: [String] = []
        for s in RunSettings.all {
            var viaFile = RunConfig()
            try viaFile.set(s.key, try Self.sample(s), source: "test")
            let text = "\(changed.json[s.key]!)"
            let forms = s.kind == .switch ? [[s.flag]] : [[s.flag, text], ["\(s.flag)=\(text)"]]
            for args in forms {
                let cmd = try XCTUnwrap(try Gift.parseAsRoot(["train"] + args) as? TrainCommand, "\(args)")
                var viaFlag = RunConfig()
                try viaFlag.apply(try cmd.settingFlags())
                XCTAssertEqual(viaFlag, viaFile, "\(args)")
            }
            all += forms[0]
        }
        // all at once, among the command's own options
        let cmd = try XCTUnwrap(try Gift.parseAsRoot(["train", "--resume", "auto"] + all + ["--keep-last", "3"]) as? TrainCommand)
        var c = RunConfig()
        try c.apply(try cmd.settingFlags())
        XCTAssertEqual(c, changed)
        XCTAssertEqual(cmd.resume, "auto"); XCTAssertEqual(cmd.keepLast, 3)
        // the run's resolved config: a flag after the file wins; a value may start with a dash (the range
        // check, not the parser, refuses it)
        let run = try XCTUnwrap(try Gift.parseAsRoot(["train", "--model", "tiny", "--seed=7", "--lora-rslora", "--lora-r", "4",
                                                      "--recompute", "blocks", "--out", "o"]) as? TrainCommand).resolve()
        XCTAssertEqual(run.seed, 7); XCTAssertEqual(run.lora.r, 4); XCTAssertTrue(run.lora.rslora)
        XCTAssertEqual(run.recompute, .blocks); XCTAssertEqual(run.model, "tiny"); XCTAssertEqual(run.lr, RunConfig().lr)
        let negative = try XCTUnwrap(try Gift.parseAsRoot(["train", "--entropy-power", "-0.5"]) as? TrainCommand)
        var n = RunConfig()
        try n.apply(try negative.settingFlags())
        XCTAssertEqual(n.objective.entropyPower, -0.5)
    }

    /// The checkpoint's defining fields, and the values older checkpoints imply, are the ones from before the table.
    func testDefiningFieldsAreTheSame() {
        XCTAssertEqual(Set(Resume.definingFields), Set(Self.definingBeforeTheTable))
        XCTAssertEqual(Resume.definingFields.count, Self.definingBeforeTheTable.count)
        XCTAssertEqual(Resume.addedLater, Self.addedLaterBeforeTheTable)
    }

    /// An unknown flag or key, a missing value, a value to a switch and a bad value are errors naming the flag.
    func testErrorsNameTheFlagOrKey() throws {
        func parseError(_ args: [String]) -> String {
            do { _ = try Gift.parseAsRoot(["train"] + args); return "no error" } catch { return Gift.message(for: error) }
        }
        XCTAssertTrue(parseError(["--lrr", "1"]).contains("unknown flag '--lrr'; did you mean '--lr'?"), parseError(["--lrr", "1"]))
        XCTAssertTrue(parseError(["--micro_batch=2"]).contains("did you mean '--micro-batch'?"))
        XCTAssertTrue(parseError(["--resme", "auto"]).contains("did you mean '--resume'?"), parseError(["--resme", "auto"]))
        XCTAssertTrue(parseError(["--zzzzzz"]).contains("unknown flag '--zzzzzz'"))
        XCTAssertTrue(parseError(["--seed"]).contains("missing value for '--seed <seed>'"), parseError(["--seed"]))
        XCTAssertTrue(parseError(["--seed", "--lr", "1"]).contains("missing value for '--seed <seed>'"))
        XCTAssertTrue(parseError(["--skip-bad-lines=yes"]).contains("--skip-bad-lines takes no value"))
        XCTAssertTrue(parseError(["stray"]).contains("unexpected argument 'stray'"))
        for (args, want) in [(["--seed", "abc"], "--seed: field 'seed' must be an integer"),
                             (["--seed", "-1"], "--seed: field 'seed' must be a non-negative integer"),
                             (["--lr", "fast"], "--lr: field 'lr' must be a number"),
                             (["--zero", "4"], "--zero: field 'zero' must be 0, 1, 2 or 3"),
                             (["--recompute", "some"], "--recompute: field 'recompute' must be none or blocks"),
                             (["--gemm", "mkl"], "--gemm: field 'gemm' must be auto, openblas or onednn"),
                             (["--pad-loss", "x"], "--pad-loss: field 'pad_loss' must be one of on, off"),
                             (["--objective", "x"], "--objective: field 'objective' must be one of sft, gift, gift-raw, nll, gift-sw, dream, gift-ref")] {
            let cmd = try XCTUnwrap(try Gift.parseAsRoot(["train", "--model", "tiny"] + args) as? TrainCommand)
            XCTAssertThrowsError(try cmd.resolve()) { XCTAssertTrue("\($0)".contains(want), "\($0)") }
        }
        var c = RunConfig()
        XCTAssertThrowsError(try c.set("lrr", 1, source: "c.json")) {
            XCTAssertTrue("\($0)".contains("c.json: unknown field 'lrr' (did you mean 'lr'?); known fields: adam_eps, adapter"), "\($0)")
        }
    }

    /// `gift help train` (and `gift train --help`) teaches every setting: its flag, kind or choices, default
    /// and help, all from the table.
    func testHelpTeachesEverySetting() throws {
        func flat(_ s: String) -> String { s.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let help = flat(Gift.helpMessage(for: TrainCommand.self, columns: 100))
        for s in RunSettings.all {
            XCTAssertTrue(help.contains(s.usage + " - " + flat(s.helpText)), "\(s.key): \(s.helpText)")
        }
        XCTAssertTrue(help.contains("--micro-batch <micro-batch> - Sequences per micro-batch (per rank). (integer; default: 8)"), help)
        XCTAssertTrue(help.contains("(values: none, blocks; default: none)"))
        XCTAssertTrue(help.contains("--skip-bad-lines - Skip malformed JSONL lines"))
        for own in TrainCommand.ownFlags { XCTAssertTrue(help.contains(own + " "), own) }
        let r = try runGift(["train", "--help"], env: ["COLUMNS": "80"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for s in RunSettings.all { XCTAssertTrue(r.stdout.contains(s.flag), s.flag) }
    }

    func testSpellingFindsTheNearName() {
        XCTAssertEqual(Spelling.distance(Array("kitten"), Array("sitting")), 3)
        XCTAssertEqual(Spelling.distance([], Array("ab")), 2)
        XCTAssertEqual(Spelling.closest(to: "--grad-reduce-type", among: RunSettings.all.map(\.flag)), "--grad-reduce-dtype")
        XCTAssertNil(Spelling.closest(to: "--xyz", among: RunSettings.all.map(\.flag)))
    }
}
