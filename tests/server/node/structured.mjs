// Structured output with the official openai client: N chat completions
// with response_format json_schema (seeds 0..N-1), the same requests
// without it, and a tool call forced with tool_choice "required"
// (streamed and not). Prints one JSON object; the Go test validates.
//
//   node structured.mjs http://127.0.0.1:PORT/v1 MODEL N SCHEMA_JSON TOOLS_JSON
import OpenAI from "openai";

const [baseURL, model, n, schemaText, toolsText] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 120000 });
const schema = JSON.parse(schemaText);
const tools = JSON.parse(toolsText);
const messages = [{ role: "user", content: "Describe a person as JSON." }];
const out = { constrained: [], free: [], tool: null, toolStream: null };
for (let i = 0; i < Number(n); i++) {
  const r = await client.chat.completions.create({
    model, messages, temperature: 1, seed: i, max_tokens: 400,
    response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
  });
  out.constrained.push({ text: r.choices[0].message.content, finish: r.choices[0].finish_reason });
}
for (let i = 0; i < 20; i++) {
  const r = await client.chat.completions.create({ model, messages, temperature: 1, seed: i, max_tokens: 60 });
  out.free.push({ text: r.choices[0].message.content, finish: r.choices[0].finish_reason });
}
const ask = [{ role: "user", content: "What is the weather in Paris?" }];
const t = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: "required", temperature: 1, seed: 1, max_tokens: 200 });
out.tool = { finish: t.choices[0].finish_reason, calls: t.choices[0].message.tool_calls ?? [] };
const stream = await client.chat.completions.create({
  model, messages: ask, tools, tool_choice: { type: "function", function: { name: tools[0].function.name } },
  temperature: 1, seed: 2, max_tokens: 200, stream: true,
});
const calls = [];
let finish = null;
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    for (const d of c.delta.tool_calls ?? []) {
      calls[d.index] ??= { name: "", arguments: "" };
      calls[d.index].name += d.function?.name ?? "";
      calls[d.index].arguments += d.function?.arguments ?? "";
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
}
out.toolStream = { finish, calls };
console.log(JSON.stringify(out));
