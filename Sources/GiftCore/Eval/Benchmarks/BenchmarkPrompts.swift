import Foundation

/// The benchmarks' prompts exactly as d1's eval code builds them (eval/gsm8k.py `create_prompt`, with the
/// system prompts of gsm8k.py, math500.py, countdown.py, sudoku.py; zero-shot, `add_reasoning=True` as
/// eval.py passes for every model):
///
///     messages = [{"role": "user", "content": SYSTEM_PROMPT + "\n\n" + question}]
///     prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + "<reasoning>"
///     input_ids = tokenizer(prompts, padding_side="left", padding="longest").input_ids
///
/// There is no system turn: the system prompt is the start of the user turn. Peculiarities kept byte for
/// byte: GSM8K's first line ends in a space after `\boxed{}.`; MATH500's prompt ends with a stray `"`, a
/// space and a newline after `</answer>`; Countdown's is three concatenated strings with no space or
/// newline before "Respond" (`...\boxed{a + b * c}Respond in the following format:`); Sudoku's starts
/// and ends with a newline (LLaDA's template trims the content, so those two newlines and the Sudoku
/// question's trailing newline do not reach the model with that template).
public enum BenchmarkPrompts {
    /// The text d1 appends after the chat template's generation prompt.
    public static let reasoningPrefill = "<reasoning>"

    /// d1's `GSM_SYSTEM_PROMPT` (eval/gsm8k.py).
    public static let gsm8k =
        "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final answer in a \\boxed{}. \n"
        + "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"

    /// d1's `MATH500_SYSTEM_PROMPT` (eval/math500.py).
    public static let math500 =
        "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final answer in a \\boxed{}.\n"
        + "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>\" \n"

    /// d1's `CTD_SYSTEM_PROMPT` (eval/countdown.py).
    public static let countdown =
        "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the provided target number. "
        + "You may use the operations +, -, *, and / as needed, but each number must be used exactly once. Think step-by-step. "
        + "After reasoning, provide only your final expression inside \\boxed{} tags without including an equals sign or the target number. "
        + "For example: \\boxed{a + b * c}Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"

    /// d1's `SUDOKU_SYSTEM_PROMPT` (eval/sudoku.py).
    public static let sudoku =
        "\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, "
        + "top-to-bottom, where '0' represents empty cells.\n\nRules:\n- Fill empty cells with digits 1-4\n"
        + "- Each row must contain digits 1-4 exactly once\n- Each column must contain digits 1-4 exactly once\n"
        + "- Each 2x2 box must contain digits 1-4 exactly once\n\n"
        + "Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.\n\n"
        + "Respond in this exact format:\n<reasoning>\nYour step-by-step solving process\n</reasoning>\n<answer>\n"
        + "[16-character solution string with no spaces or separators]\n</answer>\n"

    /// The benchmark's system prompt.
    public static func systemPrompt(_ b: Benchmark) -> String {
        switch b {
        case .gsm8k: return gsm8k
        case .math500: return math500
        case .countdown: return countdown
        case .sudoku: return sudoku
        }
    }

    /// The user turn's content: system prompt + "\n\n" + question.
    public static func userContent(_ b: Benchmark, question: String) -> String {
        systemPrompt(b) + "\n\n" + question
    }

    /// The one-message conversation d1 renders.
    public static func messages(_ b: Benchmark, question: String) -> [StrictJSON] {
        [.object(["role": .string("user"), "content": .string(userContent(b, question: question))])]
    }
}

/// Renders benchmark prompts with a model folder's chat template and tokenizer, as d1 does with
/// transformers: the template applied to the single user message with add_generation_prompt=True, then
/// "<reasoning>"; the ids are `tokenizer(prompt)` (add_special_tokens=True, so whatever the tokenizer's
/// post-processor adds, e.g. a BOS, comes on top of the template's own `bos_token`).
public struct BenchmarkPromptBuilder: Sendable {
    public let model: TextModel
    public let template: ChatTemplate

    /// A builder for `model`; its folder must have a chat template (tokenizer_config.json's
    /// `chat_template` or chat_template.jinja).
    public init(model: TextModel) throws {
        guard let t = model.template else {
            throw GiftError(.config, "benchmark prompts need the model folder's chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja)")
        }
        self.model = model
        self.template = t
    }

    /// A builder for the model folder `dir` (tokenizer.json plus the chat template).
    public init(modelDir dir: String) throws {
        try self.init(model: try TextModel.load(dir))
    }

    /// The prompt text: the rendered conversation with the generation prompt, then "<reasoning>".
    public func text(_ b: Benchmark, question: String) throws -> String {
        let rendered: String
        do {
            rendered = try template.render(messages: BenchmarkPrompts.messages(b, question: question),
                                           addGenerationPrompt: true, variables: model.variables)
        } catch let e as GiftError {
            throw GiftError(e.kind, "chat template \(model.templateName): \(e.message)")
        }
        return rendered + BenchmarkPrompts.reasoningPrefill
    }

    /// The prompt's ids as `tokenizer(prompt).input_ids` gives them (special tokens added).
    public func ids(_ b: Benchmark, question: String) throws -> [Int32] {
        try model.tokenizer.encode(try text(b, question: question), addSpecialTokens: true)
    }

    /// The text and ids of a problem.
    public func prompt(_ b: Benchmark, _ problem: BenchmarkProblem) throws -> (text: String, ids: [Int32]) {
        let t = try text(b, question: problem.question)
        return (t, try model.tokenizer.encode(t, addSpecialTokens: true))
    }
}
