// Drives realm serve with the official openai client: one streamed chat
// completion, one non-streamed completion and a chat with logprobs,
// greedy; and a request with a field the server does not implement. Prints one JSON
// object with what it received; the Go test (tests/server) checks it.
//
//   node client.mjs http://127.0.0.1:PORT/v1 MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.REALM_TEST_KEY || "unused", maxRetries: 0, timeout: 30000 });

const out = { chat: { text: "", chunks: 0, roles: [], finish: null, usage: null }, completion: null };
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Tell me a story." }],
  max_tokens: 24,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  out.chat.chunks++;
  if (chunk.usage) out.chat.usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.role) out.chat.roles.push(c.delta.role);
    if (c.delta?.content) out.chat.text += c.delta.content;
    if (c.finish_reason) out.chat.finish = c.finish_reason;
  }
}
const comp = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
out.completion = { text: comp.choices[0].text, finish: comp.choices[0].finish_reason, usage: comp.usage, object: comp.object };
const lp = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Tell me a story." }],
  max_tokens: 8,
  temperature: 0,
  logprobs: true,
  top_logprobs: 2,
});
out.logprobs = { text: lp.choices[0].message.content, content: lp.choices[0].logprobs?.content ?? null };
try {
  await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a+$" } } } });
  out.refused = null;
} catch (e) {
  out.refused = { status: e.status, param: e.param ?? e.error?.param ?? null };
}
console.log(JSON.stringify(out));
