// Drives realm serve with the official ollama client: list, a streamed
// chat, a non-streamed generate and a raw streamed generate, greedy.
// Prints one JSON object with what it received; the Go test
// (tests/server, TestOllamaNodeClient) checks it.
//
//   node ollama.mjs http://127.0.0.1:PORT MODEL
import { Ollama } from "ollama";

const [host, model] = process.argv.slice(2);
const headers = process.env.REALM_TEST_KEY ? { Authorization: `Bearer ${process.env.REALM_TEST_KEY}` } : {};
const ollama = new Ollama({ host, headers });

const out = { version: null, list: [], chat: { text: "", parts: 0, done: null }, generate: null, raw: { text: "", parts: 0, done: null } };
out.version = (await ollama.version()).version;
out.list = (await ollama.list()).models.map((m) => ({ name: m.name, size: m.size, format: m.details?.format, family: m.details?.family }));

const chat = await ollama.chat({
  model,
  messages: [{ role: "user", content: "Tell me a story." }],
  stream: true,
  options: { temperature: 0, num_predict: 24 },
});
for await (const part of chat) {
  out.chat.parts++;
  out.chat.text += part.message.content;
  if (part.done) out.chat.done = { reason: part.done_reason, prompt: part.prompt_eval_count, eval: part.eval_count };
}

const gen = await ollama.generate({ model, prompt: "Once upon a time", raw: true, stream: false, options: { temperature: 0, num_predict: 40 } });
out.generate = { text: gen.response, reason: gen.done_reason, prompt: gen.prompt_eval_count, eval: gen.eval_count, done: gen.done };

const raw = await ollama.generate({ model, prompt: "Once upon a time", raw: true, stream: true, options: { temperature: 0, num_predict: 40, stop: ["Lily"] } });
for await (const part of raw) {
  out.raw.parts++;
  out.raw.text += part.response;
  if (part.done) out.raw.done = { reason: part.done_reason, eval: part.eval_count };
}
console.log(JSON.stringify(out));
