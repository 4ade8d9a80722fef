#!/usr/bin/env python3
"""Writes internal/chat/testdata from llama.cpp's own sources and renderer.

Usage: gen.py LLAMA_CPP_SOURCE_DIR RENDER_BINARY OUT_DIR

- copies the chosen models/templates/*.jinja into OUT_DIR/templates/;
- extracts the test cases of tests/test-chat-template.cpp (template,
  bos/eos, expected jinja output) into OUT_DIR/llamacpp_tests.json;
- renders every template x conversation with RENDER_BINARY (render.cpp:
  llama.cpp's common_chat_templates_apply, the llama-server path, linked
  against node-llama-cpp's prebuilt libllama-common) into OUT_DIR/rendered.json.
"""
import json, os, re, subprocess, sys, time

src, render_bin, out = sys.argv[1:4]

TEMPLATES = [
    # file in models/templates, bos, eos, supports tools in the request
    ("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", True),
    ("meta-llama-Llama-3.2-3B-Instruct", "<|begin_of_text|>", "<|eot_id|>", True),
    ("meta-llama-Llama-3.3-70B-Instruct", "<|begin_of_text|>", "<|eot_id|>", True),
    ("Qwen-Qwen2.5-7B-Instruct", "", "<|im_end|>", True),
    ("Qwen-Qwen3-0.6B", "", "<|im_end|>", True),
    ("Qwen-QwQ-32B", "", "<|im_end|>", True),
    ("google-gemma-2-2b-it", "<bos>", "<eos>", False),
    ("microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>", False),
    ("mistralai-Mistral-Nemo-Instruct-2407", "<s>", "</s>", True),
    ("Mistral-Small-3.2-24B-Instruct-2506", "<s>", "</s>", True),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", False),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", False),
    ("HuggingFaceTB-SmolLM3-3B", "", "<|im_end|>", True),
    # not in llama.cpp's tree: extra/ (see extra/README.md)
    ("google-gemma-3-it", "<bos>", "<eos>", False),
    ("ibm-granite-granite-3.3-2B-Instruct", "", "<|end_of_text|>", True),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "<|begin_of_text|>", "<|im_end|>", True),
]

CONVERSATIONS = {
    "system_user": ([{"role": "system", "content": "You are a helpful assistant"},
                     {"role": "user", "content": "Hello"}], True),
    "user_only": ([{"role": "user", "content": "What is 2+2?"}], True),
    "multi_turn": ([{"role": "system", "content": "You are a helpful assistant"},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi there"},
                    {"role": "user", "content": "Who are you"},
                    {"role": "assistant", "content": "   I am an assistant   "},
                    {"role": "user", "content": "Another question"}], True),
    "no_generation_prompt": ([{"role": "user", "content": "Hello"},
                              {"role": "assistant", "content": "Hi there"}], False),
    "developer_role": ([{"role": "developer", "content": "Answer in French."},
                        {"role": "user", "content": "Hello"}], True),
}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}]


def c_string(s, i):
    """Parses the C++ string literal starting at s[i] == '"'; returns (text, end)."""
    assert s[i] == '"'
    i += 1
    buf = bytearray()
    while s[i] != '"':
        if s[i] == "\\":
            n = s[i + 1]
            buf += {"n": b"\n", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "r": b"\r"}[n]
            i += 2
        else:
            buf += s[i].encode()
            i += 1
    return buf.decode(), i + 1


def extract_tests(path):
    text = open(path, encoding="utf-8").read()
    body = text[text.index("std::vector<TestCase> test_cases {"):text.index("std::vector<char> formatted_chat")]
    cases = []
    for block in re.split(r"\n        \{\n", body)[1:]:
        fields = {}
        for m in re.finditer(r"/\* \.(\w+)=? \*/\s*", block):
            name, j = m.group(1), m.end()
            if name == "extra_conversation":
                extra = []
                for pm in re.finditer(r'\{"([^"]+)", ', block[j:]):
                    role = pm.group(1)
                    content, _ = c_string(block[j:], pm.end())
                    extra.append({"role": role, "content": content})
                fields[name] = extra
                continue
            if block[j] == '"' or block.startswith('U8C("', j):
                if block.startswith('U8C(', j):
                    j += 4
                val, _ = c_string(block, j)
                fields[name] = val
            elif block.startswith("true", j) or block.startswith("false", j):
                fields[name] = block.startswith("true", j)
        cases.append(fields)
    return cases


def run(inputs):
    p = subprocess.run([render_bin], input="\n".join(json.dumps(x) for x in inputs) + "\n",
                       capture_output=True, text=True, check=True)
    return [json.loads(l) for l in p.stdout.splitlines()]


os.makedirs(os.path.join(out, "templates"), exist_ok=True)
base_conv = [{"role": r, "content": c} for r, c in [
    ("system", "You are a helpful assistant"), ("user", "Hello"), ("assistant", "Hi there"),
    ("user", "Who are you"), ("assistant", "   I am an assistant   "), ("user", "Another question")]]
tests = []
for c in extract_tests(os.path.join(src, "tests/test-chat-template.cpp")):
    if not c.get("supported_with_jinja", True):
        continue
    want = c.get("expected_output_jinja") or c["expected_output"]
    tests.append({"name": c["name"], "template": c["template_str"], "bos": c.get("bos_token", ""),
                  "eos": c.get("eos_token", ""), "messages": base_conv + c.get("extra_conversation", []),
                  "want": want})
with open(os.path.join(out, "llamacpp_tests.json"), "w", encoding="utf-8") as f:
    json.dump(tests, f, indent=1, ensure_ascii=False)

inputs, meta = [], []
for name, bos, eos, tools in TEMPLATES:
    path = os.path.join(src, "models/templates", name + ".jinja")
    extra = os.path.join(os.path.dirname(os.path.abspath(__file__)), "extra", name + ".jinja")
    if not os.path.exists(path) and os.path.exists(extra):
        path = extra
    tmpl = open(path, encoding="utf-8").read()
    with open(os.path.join(out, "templates", name + ".jinja"), "w", encoding="utf-8") as f:
        f.write(tmpl)
    convs = list(CONVERSATIONS.items())
    if tools:
        convs.append(("tools", ([{"role": "user", "content": "What is the weather in Paris?"}], True)))
    for cname, (msgs, agp) in convs:
        inp = {"template": tmpl, "bos": bos, "eos": eos, "messages": msgs, "add_generation_prompt": agp}
        if cname == "tools":
            inp["tools"] = TOOLS
        inputs.append(inp)
        meta.append({"template": name, "conversation": cname, "bos": bos, "eos": eos,
                     "add_generation_prompt": agp, "messages": msgs, "tools": TOOLS if cname == "tools" else None})
results = run(inputs)
rendered = []
for m, r in zip(meta, results):
    m = {k: v for k, v in m.items() if v is not None}
    if "prompt" in r:
        m["want"] = r["prompt"]
    else:
        m["want_error"] = r["error"]
    rendered.append(m)
with open(os.path.join(out, "rendered.json"), "w", encoding="utf-8") as f:
    json.dump({"date": time.strftime("%Y-%m-%d"), "cases": rendered}, f, indent=1, ensure_ascii=False)
print(len(tests), "llama.cpp test cases;", len(rendered), "rendered cases;",
      sum(1 for r in rendered if "want_error" in r), "errors")
