// Drives realm serve with the official openai client: n > 1 choices,
// streamed and not, with logprobs streamed per chunk (chat and the legacy
// completions shape), and the 400s of n beyond the policy and of an
// unknown tool type. Prints one JSON object; the Go test
// (tests/server/choices_node_test.go) checks it.
//
//   node choices.mjs http://127.0.0.1:PORT/v1 MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.REALM_TEST_KEY || "unused", maxRetries: 0, timeout: 60000 });
const messages = [{ role: "user", content: "Tell me a story." }];
const out = {};

const plain = await client.chat.completions.create({ model, messages, n: 2, max_tokens: 10, temperature: 1, seed: 7, logprobs: true, top_logprobs: 2 });
out.chat = {
  texts: plain.choices.map((c) => c.message.content),
  indexes: plain.choices.map((c) => c.index),
  logprobs: plain.choices.map((c) => c.logprobs.content.map((e) => e.token)),
  usage: plain.usage,
};

// Streamed: per choice index, its text, and per chunk whether the
// tokens of its logprobs spell its text.
const stream = await client.chat.completions.create({
  model, messages, n: 2, max_tokens: 10, temperature: 1, seed: 7, logprobs: true, top_logprobs: 2,
  stream: true, stream_options: { include_usage: true },
});
out.chatStream = { texts: ["", ""], tokens: [[], []], chunks: 0, spelled: 0, finish: [null, null], usage: null };
for await (const chunk of stream) {
  if (chunk.usage) out.chatStream.usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.finish_reason) out.chatStream.finish[c.index] = c.finish_reason;
    if (!c.delta?.content) continue;
    out.chatStream.chunks++;
    out.chatStream.texts[c.index] += c.delta.content;
    const toks = (c.logprobs?.content ?? []).map((e) => e.token);
    out.chatStream.tokens[c.index].push(...toks);
    if (toks.join("") === c.delta.content && c.logprobs.content.every((e) => e.top_logprobs.length === 2 && Array.isArray(e.bytes))) out.chatStream.spelled++;
  }
}

const cstream = await client.completions.create({
  model, prompt: "Once upon a time", n: 2, max_tokens: 10, temperature: 1, seed: 7, logprobs: 2, stream: true,
});
out.completionStream = { texts: ["", ""], chunks: 0, spelled: 0 };
for await (const chunk of cstream) {
  for (const c of chunk.choices) {
    if (!c.text) continue;
    out.completionStream.chunks++;
    out.completionStream.texts[c.index] += c.text;
    const lp = c.logprobs;
    if (lp && lp.tokens.join("") === c.text && lp.token_logprobs.length === lp.tokens.length && lp.top_logprobs.length === lp.tokens.length && lp.text_offset.length === lp.tokens.length) out.completionStream.spelled++;
  }
}
const cplain = await client.completions.create({ model, prompt: "Once upon a time", n: 2, max_tokens: 10, temperature: 1, seed: 7 });
out.completion = { texts: cplain.choices.map((c) => c.text), usage: cplain.usage };

const refuse = async (req) => {
  try {
    await client.chat.completions.create(req);
    return null;
  } catch (e) {
    return { status: e.status, param: e.param ?? e.error?.param ?? null };
  }
};
out.tooMany = await refuse({ model, messages, n: 500 });
out.badTool = await refuse({ model, messages, tools: [{ type: "retrieval" }] });
console.log(JSON.stringify(out));
