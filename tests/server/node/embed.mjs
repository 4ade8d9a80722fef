// Drives realm serve's embeddings with the official clients: openai's
// embeddings.create (which asks for base64 and decodes it) for one string
// and for a batch, with encoding_format float, and for token arrays;
// ollama's embed (a batch) and the legacy embeddings. Prints one JSON
// object with what it received; the Go test (tests/server,
// TestEmbeddingsNodeClients) checks it against llama.cpp's vectors.
//
//   node embed.mjs http://127.0.0.1:PORT MODEL TEXT1 TEXT2 IDS_JSON
import OpenAI from "openai";
import { Ollama } from "ollama";

const [host, model, text1, text2, idsJSON] = process.argv.slice(2);
const key = process.env.REALM_TEST_KEY;
const client = new OpenAI({ baseURL: host + "/v1", apiKey: key || "unused", maxRetries: 0, timeout: 30000 });
const ollama = new Ollama({ host, headers: key ? { Authorization: `Bearer ${key}` } : {} });

const vec = (d) => Array.from(d.embedding);
const out = {};
const one = await client.embeddings.create({ model, input: text1 });
out.one = { object: one.object, model: one.model, usage: one.usage, data: one.data.map(vec), index: one.data.map((d) => d.index) };
const batch = await client.embeddings.create({ model, input: [text1, text2], encoding_format: "float" });
out.batch = { usage: batch.usage, data: batch.data.map(vec), index: batch.data.map((d) => d.index) };
const toks = await client.embeddings.create({ model, input: [JSON.parse(idsJSON)], encoding_format: "float" });
out.tokens = { usage: toks.usage, data: toks.data.map(vec) };
try {
  await client.embeddings.create({ model, input: "" });
  out.empty = null;
} catch (e) {
  out.empty = { status: e.status, param: e.param ?? e.error?.param ?? null };
}
const oe = await ollama.embed({ model, input: [text1, text2] });
out.ollama = { model: oe.model, embeddings: oe.embeddings, prompt_eval_count: oe.prompt_eval_count };
const legacy = await ollama.embeddings({ model, prompt: text1 });
out.legacy = legacy.embedding;
console.log(JSON.stringify(out));
