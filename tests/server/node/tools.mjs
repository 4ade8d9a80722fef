// A tools round trip with the official openai client, against the echo
// app (tests/server/testdata/echo), which answers with the last user
// message: the model "asks" for a tool (the call text given as argv),
// the client gets tool_calls back, runs the tool and sends its result
// with the assistant message as the client received it; the echo app
// then returns the prompt the server rendered from all of it.
//
//   node tools.mjs http://127.0.0.1:PORT/v1/apps/echo MODEL CALLTEXT
import OpenAI from "openai";

const [baseURL, model, callText] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 30000 });
const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const messages = [{ role: "user", content: callText }];
const first = await client.chat.completions.create({ model, messages, tools });
const msg = first.choices[0].message;
const out = { finish: first.choices[0].finish_reason, calls: msg.tool_calls ?? [], prompt: null };
messages.push(msg);
for (const call of msg.tool_calls ?? []) {
  const args = JSON.parse(call.function.arguments);
  messages.push({ role: "tool", tool_call_id: call.id, content: `sunny in ${args.city}` });
}
messages.push({ role: "user", content: "PROMPT" });
const second = await client.chat.completions.create({ model, messages, tools });
out.prompt = second.choices[0].message.content;
console.log(JSON.stringify(out));
