import Foundation
import XCTest
@testable import GiftCore

/// Chat templates rendered by gift's ChatTemplate against transformers' own renderer (one Python run per
/// test, all of a test's cases at once), compared byte for byte; plus the error paths.
final class ChatTemplateTests: XCTestCase {
    static let fixtures = packageRoot.appendingPathComponent("Tests/GiftCoreTests/Fixtures/chat-templates")

    func fixture(_ name: String) throws -> String {
        try String(contentsOf: ChatTemplateTests.fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    struct Case {
        var label: String
        var template: String
        var messages: String = "[]"       // JSON array
        var addGenerationPrompt = false
        var variables: String = "{}"      // JSON object
    }

    enum Reference { case text(String), error(type: String, message: String) }

    /// Renders every case with transformers (render_jinja_template, after apply_chat_template's message
    /// normalisation). Dict keys are sorted on the Python side too, since StrictJSON keeps no order.
    static let script = #"""
import json, sys
try:
    from transformers.utils import chat_template_utils as ctu
except ImportError as e:
    sys.stderr.write("No module named transformers (%s)\n" % e)
    sys.exit(3)

def srt(x):
    if isinstance(x, dict):
        return {k: srt(x[k]) for k in sorted(x)}
    if isinstance(x, list):
        return [srt(v) for v in x]
    return x

def normalize(msgs):
    if hasattr(ctu, "_normalize_chat_messages"):
        return ctu._normalize_chat_messages(msgs)
    return [{k: v for k, v in m.items() if v is not None} for m in msgs]

def render(tpl, msgs, agp, variables):
    msgs = normalize(srt(msgs))
    variables = srt(variables)
    if hasattr(ctu, "render_jinja_template"):
        out, _ = ctu.render_jinja_template(conversations=[msgs], chat_template=tpl,
                                           add_generation_prompt=agp, **variables)
        return out[0]
    variables.setdefault("tools", None)
    variables.setdefault("documents", None)
    return ctu._compile_jinja_template(tpl).render(messages=msgs, add_generation_prompt=agp, **variables)

cases = json.load(open(sys.argv[1], encoding="utf-8"))
results = []
for c in cases:
    try:
        results.append({"ok": render(c["template"], c["messages"], c["agp"], c["variables"])})
    except Exception as e:
        results.append({"error": str(e), "type": type(e).__name__})
sys.stdout.write(json.dumps(results))
"""#

    func reference(_ cases: [Case]) throws -> [Reference] {
        let dir = try temporaryDirectory(self)
        var json = "["
        for (k, c) in cases.enumerated() {
            if k > 0 { json += ",\n" }
            json += "{\"template\": \(StrictJSON.quote(c.template)), \"messages\": \(c.messages), "
                + "\"agp\": \(c.addGenerationPrompt), \"variables\": \(c.variables)}"
        }
        json += "]"
        let path = dir.appendingPathComponent("cases.json")
        try json.write(to: path, atomically: true, encoding: .utf8)
        let r = try runPython(ChatTemplateTests.script, [path.path])
        if r.stderr.contains("No module named") {
            throw XCTSkip("transformers/jinja2 not available to the test Python (set GIFT_PYTHON): \(r.stderr.prefix(300))")
        }
        guard r.status == 0 else { XCTFail("reference renderer failed: \(r.stderr)"); return [] }
        guard case .array(let items) = try StrictJSON.parse(Array(r.stdout.utf8)) else {
            XCTFail("reference output is not a JSON array"); return []
        }
        return items.map { item in
            guard case .object(let o) = item else { return .error(type: "?", message: "bad reference item") }
            if case .string(let s)? = o["ok"] { return .text(s) }
            var type = "?", message = ""
            if case .string(let t)? = o["type"] { type = t }
            if case .string(let m)? = o["error"] { message = m }
            return .error(type: type, message: message)
        }
    }

    func parseJSON(_ text: String) throws -> StrictJSON { try StrictJSON.parse(Array(text.utf8)) }

    /// Renders each case here and compares with the reference: the same text, or both failing (with
    /// raise_exception's message carried over).
    func compare(_ cases: [Case], file: StaticString = #filePath, line: UInt = #line) throws {
        let refs = try reference(cases)
        XCTAssertEqual(refs.count, cases.count, "reference results", file: file, line: line)
        var compiled: [String: ChatTemplate] = [:]
        for (c, ref) in zip(cases, refs) {
            let ours: Result<String, Error>
            do {
                let t: ChatTemplate
                if let cached = compiled[c.template] { t = cached } else {
                    t = try ChatTemplate(source: c.template, name: c.label)
                    compiled[c.template] = t
                }
                guard case .array(let msgs) = try parseJSON(c.messages), case .object(let vars) = try parseJSON(c.variables)
                else { XCTFail("\(c.label): bad case JSON", file: file, line: line); continue }
                ours = .success(try t.render(messages: msgs, addGenerationPrompt: c.addGenerationPrompt, variables: vars))
            } catch {
                ours = .failure(error)
            }
            switch (ref, ours) {
            case (.text(let want), .success(let got)):
                if want != got {
                    XCTFail("\(c.label): rendered text differs\n--- transformers:\n\(want.debugDescription)\n--- gift:\n\(got.debugDescription)",
                            file: file, line: line)
                }
            case (.text(let want), .failure(let e)):
                XCTFail("\(c.label): gift failed (\(e)) where transformers rendered \(want.debugDescription)", file: file, line: line)
            case (.error(let type, let message), .success(let got)):
                XCTFail("\(c.label): transformers failed (\(type): \(message)) where gift rendered \(got.debugDescription)",
                        file: file, line: line)
            case (.error(let type, let message), .failure(let e)):
                if ["TemplateError", "UndefinedError", "TemplateRuntimeError"].contains(type) {
                    XCTAssertTrue("\(e)".contains(message), "\(c.label): gift's error '\(e)' lacks transformers' message '\(message)'",
                                  file: file, line: line)
                }
            }
        }
    }

    // MARK: conversations

    static let userOnly = #"[{"role": "user", "content": "What is 2 + 3?"}]"#
    static let systemUser = #"[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}]"#
    static let multiTurn = #"""
    [{"role": "system", "content": "  Be helpful.\n"}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "Hi, how can I help?"}, {"role": "user", "content": "Tell me a joke."}]
    """#
    static let noSystemMulti = #"""
    [{"role": "user", "content": "First question"}, {"role": "assistant", "content": " First answer "},
     {"role": "user", "content": "Second question"}, {"role": "assistant", "content": "Second answer"}]
    """#
    static let tricky = #"""
    [{"role": "system", "content": "Sys with \"quotes\" and 'apostrophes'\n\n"},
     {"role": "user", "content": "  Quote \"this\" and 'that'\n\ttab, back\\slash, ünïcödé — 漢字 😀 \u2028 end  "},
     {"role": "assistant", "content": "\n{\"json\": [1, 2], \"k\": null}\n", "reasoning_content": null},
     {"role": "user", "content": "ok\r\nbye\u00a0"}]
    """#
    static let conversations = ["user-only": userOnly, "system-user": systemUser, "multi-turn": multiTurn,
                                "no-system-multi": noSystemMulti, "tricky": tricky]

    static let weatherTools = #"""
    [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
      "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}]
    """#

    func standardCases(_ file: String, variables: String, extra: [(String, String, String)] = []) throws -> [Case] {
        let source = try fixture(file)
        var cases: [Case] = []
        for (label, msgs) in ChatTemplateTests.conversations.sorted(by: { $0.key < $1.key }) {
            for agp in [false, true] {
                cases.append(Case(label: "\(file) \(label) agp=\(agp)", template: source, messages: msgs,
                                  addGenerationPrompt: agp, variables: variables))
            }
        }
        for (label, msgs, vars) in extra {
            for agp in [false, true] {
                cases.append(Case(label: "\(file) \(label) agp=\(agp)", template: source, messages: msgs,
                                  addGenerationPrompt: agp, variables: vars))
            }
        }
        return cases
    }

    // MARK: the models' templates

    func testLLaDA() throws {
        try compare(try standardCases("llada-8b-instruct.jinja",
                                      variables: #"{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}"#))
    }

    static let qwenVars = #"{"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}"#
    static let qwenToolConversation = #"""
    [{"role": "system", "content": "You can call tools."}, {"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather",
       "arguments": {"city": "Paris", "unit": "c"}}}, {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}]},
     {"role": "tool", "content": "{\"temp\": 21}"}, {"role": "tool", "content": "12:00"},
     {"role": "assistant", "content": "It is 21 °C at noon."}, {"role": "user", "content": "Thanks"}]
    """#

    func testQwen25() throws {
        let toolVars = #"{"eos_token": "<|im_end|>", "tools": \#(ChatTemplateTests.weatherTools)}"#
        try compare(try standardCases("qwen2.5-instruct.jinja", variables: ChatTemplateTests.qwenVars, extra: [
            ("tools", ChatTemplateTests.qwenToolConversation, toolVars),
            ("tools-no-system", ChatTemplateTests.userOnly, toolVars),
            ("tool-calls-without-tools", ChatTemplateTests.qwenToolConversation, ChatTemplateTests.qwenVars),
        ]))
    }

    func testDream() throws {
        try compare(try standardCases("dream-v0-instruct-7b.jinja", variables: ChatTemplateTests.qwenVars, extra: [
            ("tools", ChatTemplateTests.qwenToolConversation,
             #"{"eos_token": "<|im_end|>", "tools": \#(ChatTemplateTests.weatherTools)}"#),
        ]))
    }

    static let llamaVars = #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "date_string": "26 Jul 2024"}"#
    static let llamaToolConversation = #"""
    [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "  Weather in Paris?  "},
     {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather",
       "arguments": {"city": "Paris"}}}]},
     {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
     {"role": "ipython", "content": {"temp": 21, "ok": true, "list": [1, 2.5, null]}},
     {"role": "assistant", "content": "21 degrees and clear."}]
    """#

    func llamaExtra(builtin: Bool) -> [(String, String, String)] {
        let base = #""bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "date_string": "09 Nov 2025""#
        var extra: [(String, String, String)] = [
            ("tools-in-user", ChatTemplateTests.llamaToolConversation, "{\(base), \"tools\": \(ChatTemplateTests.weatherTools)}"),
            ("tools-in-system", ChatTemplateTests.llamaToolConversation,
             "{\(base), \"tools\": \(ChatTemplateTests.weatherTools), \"tools_in_user_message\": false}"),
            ("tools-no-messages-left", #"[{"role": "system", "content": "x"}]"#,
             "{\(base), \"tools\": \(ChatTemplateTests.weatherTools)}"),
            ("two-tool-calls", #"""
             [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [
               {"function": {"name": "f", "arguments": {}}}, {"function": {"name": "g", "arguments": {}}}]}]
             """#, "{\(base)}"),
        ]
        if builtin {
            extra.append(("builtin-tools", #"""
             [{"role": "user", "content": "Search the weather"}, {"role": "assistant", "tool_calls": [{"type": "function",
               "function": {"name": "brave_search", "arguments": {"query": "weather \"Paris\"", "n": "3"}}}]},
              {"role": "ipython", "content": "sunny"}]
             """#, "{\(base), \"builtin_tools\": [\"brave_search\", \"code_interpreter\", \"wolfram_alpha\"]}"))
        }
        return extra
    }

    func testLlama31() throws {
        try compare(try standardCases("llama-3.1-8b-instruct.jinja", variables: ChatTemplateTests.llamaVars,
                                      extra: llamaExtra(builtin: true)))
    }

    func testLlama32() throws {
        // without date_string, both sides take today's date from strftime_now("%d %b %Y")
        try compare(try standardCases("llama-3.2-3b-instruct.jinja", variables: ChatTemplateTests.llamaVars,
                                      extra: llamaExtra(builtin: false) + [
                                        ("strftime-date", ChatTemplateTests.userOnly,
                                         #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}"#),
                                      ]))
    }

    func testTulu3() throws {
        try compare(try standardCases("tulu-3-8b.jinja",
                                      variables: #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}"#))
    }

    static let mistralVars = #"{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}"#

    func testMistralV01() throws {
        // conversations with a system message, or two user turns in a row, raise in the template
        try compare(try standardCases("mistral-7b-instruct-v0.1.jinja", variables: ChatTemplateTests.mistralVars, extra: [
            ("user-user", #"[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]"#, ChatTemplateTests.mistralVars),
            ("tool-role", #"[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]"#, ChatTemplateTests.mistralVars),
        ]))
    }

    func testMistralV03() throws {
        let toolConversation = #"""
        [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"},
         {"role": "assistant", "tool_calls": [{"id": "abc123def", "type": "function", "function": {"name": "get_weather",
           "arguments": {"city": "Paris"}}}]},
         {"role": "tool", "tool_call_id": "abc123def", "content": "21 C"},
         {"role": "tool", "tool_call_id": "abc123xyz", "content": {"content": {"temp": 21}}},
         {"role": "assistant", "content": "  It is 21 C.  "}, {"role": "user", "content": "Thanks"}]
        """#
        let badId = #"""
        [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "short", "function": {"name": "f", "arguments": {}}}]}]
        """#
        let toolVars = #"{"bos_token": "<s>", "eos_token": "</s>", "tools": \#(ChatTemplateTests.weatherTools)}"#
        try compare(try standardCases("mistral-7b-instruct-v0.3.jinja", variables: ChatTemplateTests.mistralVars, extra: [
            ("tools", toolConversation, toolVars),
            ("tools-last-user", ChatTemplateTests.multiTurn, toolVars),
            ("bad-tool-call-id", badId, ChatTemplateTests.mistralVars),
            ("user-user", #"[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]"#, ChatTemplateTests.mistralVars),
        ]))
    }

    // MARK: jinja2 semantics, template by template

    func testJinjaSemantics() throws {
        let snippets: [(String, String)] = [
            ("{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", "{}"),
            ("{% for i in [1,2] %}{% if true %}{% set y = i %}{% endif %}{{ y }}{% endfor %}[{{ y }}]", "{}"),
            ("{{ d.foo }}|{{ d.foo is defined }}|{{ (d.foo or 'z') }}|{{ d.foo | length }}", #"{"d": {}}"#),
            ("{{ foo ~ 'a' }}|{{ foo }}|{{ foo is defined }}|{{ foo is none }}|{{ foo | default('dd') }}", "{}"),
            ("{{ [1, 'a', none, true, 1.5, {'k': 'v'}] }} {{ ('a', 'b') }} {{ (1,) }} {{ () }}", "{}"),
            (#"{{ "it's" }}|{{ ["it's", 'say "hi"', 'both \' "', 'tab\tnl\n\x01\x7f\xa0\u200b\u2028é😀'] }}"#, "{}"),
            ("{{ 'it''s' }} {{ 'a' 'b' }}", "{}"),
            ("{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1e3 }}", "{}"),
            ("{{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 1e16 }} {{ 9.5e15 }} {{ 123456789.125 }} {{ 10 / 5 }} {{ -0.0 }} {{ 1_000 }} {{ 0x1f }}", "{}"),
            ("{{ 3.0 * 2 }} {{ 2 * 'ab' }} {{ [1] * 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ true + 1 }} {{ 1 - 0.5 }}", "{}"),
            ("{{ 'abc'[::-1] }} {{ [1,2,3][1:] }} {{ [1,2,3][:-1] }} {{ 'héllo'|length }} {{ 'héllo'[1] }} {{ 'abcdef'[1:5:2] }} {{ [1,2,3][5:] }} {{ 'abc'[-1] }}", "{}"),
            ("{{ x|tojson }}", #"{"x": {"a": [1, 2.5, null, true, false], "é": "ü\n\"\u2028\u007f\u0001\t\\", "e": 1e300, "n": -0.0}}"#),
            ("{{ x|tojson(indent=2) }}|{{ x|tojson(indent=0) }}|{{ [] | tojson(indent=4) }}", #"{"x": {"a": [1, {}, []], "b": {"c": "d"}}}"#),
            ("{{ x|tojson(ensure_ascii=True) }} {{ x|tojson(separators=(',', ':')) }} {{ x|tojson(sort_keys=true) }}", #"{"x": {"é": "😀", "b": [1, 2]}}"#),
            ("{{ none }} {{ true }} {{ false }} {{ x }} {{ y }} {{ z }}", #"{"x": null, "y": 2.0, "z": 12345678901234}"#),
            ("{{ 'a' in undefinedvar }} {{ undefinedvar|length }} {{ undefinedvar|trim }}|{{ undefinedvar is iterable }}", "{}"),
            ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1,2] == [1,2] }} {{ [1,2] < [1,3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", "{}"),
            ("{{ undefinedvar == none }} {{ undefinedvar != 1 }} {{ none == none }} {{ 'a' != 'b' }}", "{}"),
            ("{{ x['items'] }} {{ x.get('items') }} {{ x.get('nope', 'dflt') }} {{ x.get('nope') }} {{ x.keys() | list }}", #"{"x": {"items": 1, "b": 2}}"#),
            ("{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %} {% for k in x %}{{ k }}{% endfor %} {{ x.values() | list }}", #"{"x": {"a": 1, "b": [2]}}"#),
            ("{% for a in [] %}x{% else %}empty{% endfor %}|{% for a in [1,2,3,4] if a is even %}{{ loop.index }}/{{ loop.length }}:{{ a }} {% endfor %}", "{}"),
            ("{% for a in 'xyz' %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.cycle('o', 'e') }}{{ loop.previtem }}{{ loop.nextitem }} {% endfor %}", "{}"),
            ("{% for a in [1,2,3,4,5] %}{% if a == 2 %}{% continue %}{% endif %}{% if a == 4 %}{% break %}{% endif %}{{ a }}{% endfor %}", "{}"),
            ("{% for r in [[1,2],[3]] %}{% for c in r %}{{ loop.depth }}{{ c }}{% endfor %}{{ loop.index }}{% endfor %}", "{}"),
            ("  {% if true %}\n  x\n  {% endif %}\n  y\n", "{}"),
            ("a  {% if true %}b{% endif %}|{{ 'a' }}  {% if true %}b{% endif %}", "{}"),
            ("a\n  {#- c #}\n  b {#+ c +#}\nz", "{}"),
            ("line1\n    {%- if true -%}\n   mid   \n  {%- endif %}\n  tail  \n\n", "{}"),
            ("{% if true %}\r\nwin\r\n{% endif %}\r\nend\r\n", "{}"),
            ("x {%+ if true %}y{% endif +%}\nz\n\t{% if false %}{% else %}\telse{% endif %}", "{}"),
            ("{{ 'a' -}}   \n\n  {{- 'b' }} {{- ' c' }}  {#- comment -#}  d", "{}"),
            ("{% raw %}{{ not parsed }} {% if %}{% endraw %}\n  {%- raw -%}  x  {%- endraw %}", "{}"),
            ("{{ 'a\\tb\\x41\\u00e9\\q\\101\\\\' }}", "{}"),
            ("{{ 3 is divisibleby 3 }} {{ true is number }} {{ true is integer }} {{ 1.0 is float }} {{ x is mapping }} {{ x is sequence }} {{ 'a' is string }} {{ 5 is odd }} {{ none is sameas none }} {{ 1 is in [1] }} {{ 'A' is upper }} {{ 'a' is lower }} {{ x is callable }}", #"{"x": {"a": 1}}"#),
            ("{% set ns = namespace(a=1, b=[]) %}{% set ns.a = ns.a + 1 %}{% for i in range(3) %}{% set ns.a = ns.a * 2 %}{% endfor %}{{ ns.a }} {{ ns }} {{ ns.zz is defined }}", "{}"),
            ("{% set a, b = [1, 'two'] %}{{ b }}{{ a }}{% set c = 1, 2 %}{{ c }}{% set blk %} Block {{ a }} {% endset %}[{{ blk }}]{% set t | trim | upper %}  hi  {% endset %}[{{ t }}]", "{}"),
            ("{{ 'a b  c  '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ ' a b  c  '.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ' x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ ' y '.lstrip() }}|{{ ' y '.rstrip() }}|", "{}"),
            ("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'Hello'.lower() }} {{ 'Hello'.upper() }} {{ 'a-b-c'.replace('-', '+') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '.') }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abcabc'.count('bc') }} {{ ', '.join(['x', 'y']) }}", "{}"),
            ("{{ x|string }} {{ 1.0|string }} {{ [3,1,2]|sort }} {{ ['b','A','c']|sort }} {{ [3,1,2]|sort(reverse=true) }} {{ x|items|list }} {{ x|dictsort }}", #"{"x": {"a": "b'c", "B": 2}}"#),
            ("{{ 'abc'|first }} {{ [1,2]|last }} {{ [1,2]|join(', ') }} {{ 'abc'|list }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }} {{ [1,2,2,'a','A']|unique|list }}", "{}"),
            ("{{ x is defined }}{{ x.y is defined }}|{{ x.y }}|{{ 1 if false }}|{{ 'y' if true }}|{{ 'a' if false else 'b' if false else 'c' }}", #"{"x": null}"#),
            ("{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('n') }} {{ none | d('n', true) }}", "{}"),
            ("{{ 'abc' ~ 1 ~ none ~ true ~ [1] ~ 2.50 }}", "{}"),
            ("{{ -1 | abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ '3'|int + 1 }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ 3|float }} {{ '2.5'|float }} {{ [1,2,3]|sum }} {{ [3,1,2]|max }} {{ [3,1,2]|min }}", "{}"),
            ("{{ [1,2] + [3] }} {{ 'ab' + 'cd' }} {{ (1, 2) + (3,) }}", "{}"),
            ("{{ 'HeLLo wORLD'|lower }} {{ 'hello'|upper }} {{ 'hello wORLD-x(y'|title }} {{ 'hELLO'|capitalize }} {{ '  pad  '|trim }}|{{ 'xxpadxx'|trim('x') }}|{{ 'a-b'|replace('-', '--') }} {{ 'one two  three'|wordcount }}", "{}"),
            ("{{ msgs|selectattr('role', 'equalto', 'user')|list|length }} {{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|join(',') }} {{ msgs|map(attribute='role')|list }} {{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ ['a','b']|map('upper')|list }} {{ msgs|selectattr('extra')|list|length }} {{ ['', 'x', none]|select|list }}",
             #"{"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "extra": 1}, {"role": "user", "content": "c"}]}"#),
            ("{{ ['code_interpreter', 'x', 'y'] | reject('equalto', 'code_interpreter') | join(', ') }} {{ msgs[0].content }} {{ msgs[-1]['role'] }} {{ msgs[0] == msgs[0] }} {{ msgs[0] == msgs[1] }} {{ msgs[1].extra }} {{ msgs.0.role }}",
             #"{"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "extra": 1}]}"#),
            ("{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in x }} {{ not 'x' in x }} {{ not true and false }} {{ false or 'fallback' }} {{ 0 and 1 }} {{ '' or [] }}", #"{"x": {"x": 1}}"#),
            ("{{ x|tojson }} {{ x.a|tojson }} {{ x.b[0] }}{{ x.b[1] }} {{ x }} {{ 'yes' if x.c else 'no' }}", #"{"x": {"a": 1.5, "b": ["q", 7], "c": false}}"#),
            ("{{ '%s' }} {{ '{}'.__class__ }}|{{ [].append }}|{{ 'x'.nosuchmethod }}", "{}"),
            ("{% if x %}T{% elif y %}Y{% else %}F{% endif %}{% if not x and not y %}N{% endif %}", #"{"x": 0, "y": [0]}"#),
            ("{{ msg['content'] | trim }}|{{ msg.content.split('\n')[1] }}|{{ msg.content | length }}", #"{"msg": {"content": "  line one\nline two 😀  "}}"#),
            ("{% set d = {'a': 1, 'b': [1, 2], 'c': {'n': none}} %}{{ d }} {{ d|tojson }} {{ d.c.n is none }} {{ dict(x=1, y='z') }} {{ {'q': 1}.items()|list }}", "{}"),
            ("{{ bos_token }}{{ messages|length }}{{ add_generation_prompt }}{{ tools }}{{ documents }}{{ tools is none }}{{ tools is defined }}", #"{"bos_token": "<s>"}"#),
            ("{% generation %}gen {{ 1 }}{% endgeneration %}|{{ strftime_now is defined }}|{{ raise_exception is defined }}|{{ range(2, 10, 3)|list }}|{{ range(3)|join }}", "{}"),
        ]
        try compare(snippets.enumerated().map { k, s in Case(label: "snippet \(k): \(s.0.prefix(50))", template: s.0, variables: s.1) })
    }

    /// Errors of Python at run time: both sides must fail (the messages need not match).
    func testRuntimeErrorsMatch() throws {
        let snippets = ["{{ foo.bar }}", "{{ d.foo.bar }}", "{{ foo + 'a' }}", "{{ 'a' + 1 }}", "{{ 1 / 0 }}", "{{ x | tojson }}",
                        "{{ none.x }}|{{ [1][5] }}", "{{ 1 < 'a' }}", "{% for a in 5 %}{% endfor %}", "{{ foo() }}",
                        "{% set a, b = [1] %}", "{{ 'abc' in 1 }}", "{% set x = 1 %}{% set x.y = 2 %}", "{{ [1, 2] | first | upper }}"]
        let vars = #"{"d": {}, "x": null}"#
        let cases = snippets.map { Case(label: "error \($0)", template: $0, variables: vars) }
        // "{{ x | tojson }}" with x = None renders "null"; the others raise in Python
        try compare(cases)
    }

    // MARK: errors

    func testSyntaxErrorNamesTemplateLineAndColumn() {
        XCTAssertThrowsError(try ChatTemplate(source: "{% if x %}\n  {{ x + }}\n{% endif %}", name: "broken-template")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("broken-template"), m)
            XCTAssertTrue(m.contains("line 2, column 10"), m)
            XCTAssertTrue((e as? GiftError)?.kind == .format, m)
        }
        XCTAssertThrowsError(try ChatTemplate(source: "ok\n{% for m in messages %}{{ m }}", name: "unclosed")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("unclosed") && m.contains("endfor") && m.contains("line 2"), m)
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{{ 'abc }}", name: "quote")) { e in
            XCTAssertTrue("\(e)".contains("line 1, column 4"), "\(e)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "a\n\n   {# never closed", name: "comment")) { e in
            XCTAssertTrue("\(e)".contains("line 3, column 4") && "\(e)".contains("comment"), "\(e)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{{ x ) }}", name: "paren")) { e in
            XCTAssertTrue("\(e)".contains("unexpected ')'"), "\(e)")
        }
    }

    func testUnsupportedConstructIsNamed() {
        // (source, what the message must name, where)
        let cases: [(String, String, String)] = [
            ("{% macro greet(n) %}hi {{ n }}{% endmacro %}", "unsupported construct: the 'macro' tag", "line 1, column 4"),
            ("x\n  {% include 'other.jinja' %}", "unsupported construct: the 'include' tag", "line 2, column 6"),
            ("{{ messages | wordwrap }}", "unsupported construct: the 'wordwrap' filter", "line 1, column 15"),
            ("{% for m in messages recursive %}{% endfor %}", "unsupported construct: recursive", "line 1, column 22"),
            ("{{ f(*args) }}", "unsupported construct: *args", "line 1, column 6"),
            ("{{ m | nosuchfilter }}", "no filter named 'nosuchfilter'", "line 1, column 8"),
            ("{% if m is nosuchtest %}{% endif %}", "no test named 'nosuchtest'", "line 1, column 12"),
            ("{% frobnicate %}", "unknown tag 'frobnicate'", "line 1, column 4"),
        ]
        for (source, construct, place) in cases {
            XCTAssertThrowsError(try ChatTemplate(source: source, name: "t-\(construct.count)")) { e in
                let m = "\(e)"
                XCTAssertTrue(m.contains(construct) && m.contains(place) && m.contains("t-\(construct.count)"), "\(source): \(m)")
            }
        }
    }

    func testRaiseExceptionSurfacesItsMessage() throws {
        let t = try ChatTemplate(source: try fixture("mistral-7b-instruct-v0.1.jinja"), name: "mistral-v0.1")
        let msgs = try parseJSON(#"[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]"#)
        guard case .array(let m) = msgs else { return XCTFail() }
        XCTAssertThrowsError(try t.render(messages: m, addGenerationPrompt: false, variables: ["bos_token": .string("<s>")])) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("Conversation roles must alternate user/assistant/user/assistant/..."), s)
            XCTAssertTrue(s.contains("mistral-v0.1") && s.contains("raised") && s.contains("line 1, column"), s)
            XCTAssertEqual((e as? GiftError)?.kind, .data)
        }
        let u = try ChatTemplate(source: "a\n{{ foo.bar }}", name: "undef")
        XCTAssertThrowsError(try u.render(messages: [], addGenerationPrompt: false)) { e in
            XCTAssertTrue("\(e)".contains("'foo' is undefined") && "\(e)".contains("line 2, column 4"), "\(e)")
        }
    }

    /// The same output without Python: LLaDA's template, as the team's design notes write it.
    func testLLaDAWithoutReference() throws {
        let t = try ChatTemplate(source: try fixture("llada-8b-instruct.jinja"), name: "llada")
        let msgs: [StrictJSON] = [.object(["role": .string("user"), "content": .string("  Hi  ")])]
        let out = try t.render(messages: msgs, addGenerationPrompt: false, variables: ["bos_token": .string("<|startoftext|>")])
        XCTAssertEqual(out, "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    func testStrftimeNowUsesTheClock() throws {
        let t = try ChatTemplate(source: "{{ strftime_now('%b %Y|%f|%%') }}", name: "date")
        let when = Date(timeIntervalSince1970: 1_700_000_000.25)  // 2023-11-14 22:13:20.25 UTC
        let out = try t.render(messages: [], addGenerationPrompt: false, variables: [:], now: { when })
        XCTAssertEqual(out, "Nov 2023|250000|%")
    }
}
