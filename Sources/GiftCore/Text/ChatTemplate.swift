import Foundation

/// A Hugging Face `chat_template` (Jinja), rendered as transformers' `apply_chat_template` renders it:
/// jinja2 with `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, transformers' `tojson`
/// (json.dumps with ensure_ascii=False), `raise_exception`, `strftime_now`, `namespace` and `dict`, and
/// the `{% generation %}` tag. The template is parsed once; rendering is pure.
///
/// The supported subset covers the chat templates of LLaDA, Qwen 2.5 / Dream, Llama 3.x, Tulu 3 and
/// Mistral: output, `if`/`elif`/`else`, `for` (with `loop.*`, `else`, `if` filters, tuple targets),
/// `set` (including `namespace` attributes and block sets), `break`/`continue`, comments, `raw`, Python
/// expressions and the usual filters, tests and str/dict methods. Anything else (macros, includes, ...)
/// is refused when the template is parsed, with its line and column.
///
/// Known differences from transformers: StrictJSON objects keep no key order, so dicts from `messages`
/// and `variables` iterate (and `tojson`/print) in sorted key order where Python keeps the JSON's order;
/// integers are 64-bit (Python's are unbounded).
///
/// A chat template comes with a model folder and is untrusted: its work is bounded by `CTLimits`, and
/// every limit reached is a GiftError naming the template, line and column.
public struct ChatTemplate: Sendable {
    public let name: String
    let body: [CTNode]
    let lineStarts: [Int]

    /// Parses `source`; errors are GiftErrors naming `name` and the line and column.
    public init(source: String, name: String) throws {
        self.name = name
        let scalars = CTLexer.normalize(source)
        var starts = [0]
        for (i, u) in scalars.enumerated() where u == "\n" { starts.append(i + 1) }
        lineStarts = starts
        do {
            body = try CTParser.parse(try CTLexer.tokenize(scalars))
        } catch let e as CTSyntaxError {
            throw GiftError(.format, "chat template '\(name)', \(ChatTemplate.location(e.pos, starts)): \(e.message)")
        }
    }

    /// "line L, column C" (1-based; columns count Unicode code points).
    static func location(_ pos: Int, _ lineStarts: [Int]) -> String {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= pos { lo = mid } else { hi = mid - 1 }
        }
        return "line \(lo + 1), column \(pos - lineStarts[lo] + 1)"
    }

    /// Renders the conversation. `variables` are what transformers passes besides the messages (the
    /// tokenizer's special tokens `bos_token`, `eos_token`, ..., and `tools`, `documents`, `date_string`,
    /// any other keyword); `tools` and `documents` are none unless given, as in transformers.
    /// Like apply_chat_template, keys of a message whose value is null are dropped, and a message's
    /// reasoning (`reasoning_content`, `thinking` or `reasoning`) is also given under the first two names.
    public func render(messages: [StrictJSON], addGenerationPrompt: Bool, variables: [String: StrictJSON] = [:]) throws -> String {
        try render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: variables, now: Date.init)
    }

    func render(messages: [StrictJSON], addGenerationPrompt: Bool, variables: [String: StrictJSON],
                now: @escaping () -> Date) throws -> String {
        let root = CTFrame(parent: nil)
        root.vars["tools"] = CTValue.none
        root.vars["documents"] = CTValue.none
        for (k, v) in variables { root.vars[k] = CTValue(json: v) }
        root.vars["messages"] = .list(messages.map(ChatTemplate.normalizeMessage))
        root.vars["add_generation_prompt"] = .bool(addGenerationPrompt)
        let ev = CTEvaluator(now: now)
        do {
            _ = try ev.exec(body, root)
        } catch let e as CTRuntimeError {
            let at = ChatTemplate.location(e.pos, lineStarts)
            if e.raised {
                throw GiftError(.data, "chat template '\(name)' raised an exception (\(at)): \(e.message)")
            }
            throw GiftError(.data, "chat template '\(name)', \(at): \(e.message)")
        }
        return ev.out
    }

    static let reasoningFields = ["reasoning_content", "thinking", "reasoning"]

    /// transformers' _normalize_chat_messages (null values dropped) and _alias_reasoning_fields.
    static func normalizeMessage(_ m: StrictJSON) -> CTValue {
        guard case .object(let o) = m else { return CTValue(json: m) }
        guard case .dict(var d) = CTValue(json: .object(o.filter { if case .null = $0.value { return false }; return true }))
        else { return CTValue(json: m) }
        if let field = reasoningFields.first(where: { d[$0] != nil }), let reasoning = d[field] {
            var out = CTDict()
            if d["thinking"] == nil { out["thinking"] = reasoning }
            for (k, v) in d.pairs { out[k] = v }
            out["reasoning_content"] = reasoning
            d = out
        }
        return .dict(d)
    }
}

/// Bounds on what an untrusted chat template can make gift do. transformers renders templates in jinja2's
/// ImmutableSandboxedEnvironment, whose only explicit bound is MAX_RANGE; everything else is bounded there
/// by Python itself (its recursion limit of 1000 frames, its parser's 100 indentation levels, memory). The
/// values here accept every template and conversation jinja2 renders in practice (real templates nest a
/// few levels, take thousands of steps a message and print kilobytes) and turn what would be a crash, an
/// allocation abort or a run of hours into an error.
enum CTLimits {
    /// Nesting of the template's syntax, all kinds together: blocks in blocks (`if`, `for`, `set` ...
    /// `endset`, `generation`), brackets, `not`/unary `-`/`+` chains, call arguments and subscripts.
    /// jinja2 fails sooner: its recursive parser takes about 13 Python frames per bracket level (so
    /// about 70 levels fit in the recursion limit of 1000) and the Python it compiles a template into
    /// allows 100 indentation levels (nested blocks).
    static let maxNesting = 100
    /// Height of an expression's tree, left-associative chains (`a + b + c ...`, `x.y.z ...`, `f|g|h ...`)
    /// included; jinja2's compiler recurses once per level (2 to 3 frames), so about 300 levels fit in
    /// Python's recursion limit.
    static let maxExpressionHeight = 300
    /// Nesting of the values a template builds (lists in lists, dicts in lists, namespaces ...); JSON
    /// input is bounded at 64 levels by StrictJSON. Python's repr and json.dumps of a value recurse
    /// once a level within the same 1000-frame limit.
    static let maxValueNesting = 100
    /// Bytes (UTF-8) of any string a template builds, and of its whole rendering: 64 MiB, a thousand
    /// times the longest conversation a context window holds. Python has no such limit short of memory
    /// (`"x" * 10000000000` is a MemoryError or a 10 GB string there).
    static let maxStringBytes = 1 << 26
    /// Items of any list a template builds; ten times jinja2's MAX_RANGE.
    static let maxListLength = 1_000_000
    /// jinja2's sandbox MAX_RANGE: the most items `range` may produce.
    static let maxRange = 100_000
    /// Evaluation steps of one rendering: each statement and expression node evaluated and each loop
    /// iteration is one, and work proportional to data (building strings and lists, searching them)
    /// costs about one step per 16 items or 64 bytes. jinja2 has no such bound (two nested
    /// `range(100000)` loops run for hours there); real templates take about 10^2 steps per message,
    /// so 5·10^6 steps (one to two seconds) leave room for conversations of tens of thousands of messages.
    static let maxSteps = 5_000_000
}
