#!/usr/bin/env node
// run.mjs drives llama.cpp (the CPU prebuilt binaries that the npm package
// node-llama-cpp ships) so that Realm's outputs and speed can be compared
// with it on the same machine.
//
//   node run.mjs version
//   node run.mjs generate -m MODEL.gguf -p PROMPT [-n 32] [-t THREADS] [--ctx 512] [--ignore-eos] [--logits]
//   node run.mjs embed    -m MODEL.gguf [-t THREADS] [--ctx 512] TEXT...
//   node run.mjs bench    -m MODEL.gguf [-p 128] [-n 32] [-t THREADS] [-r 5] [--fa auto|on|off]
//
// generate tokenizes PROMPT the way llama.cpp's common_tokenize(add_special,
// parse_special) does (BOS prepended when the vocabulary asks for it, special
// tokens parsed), greedily decodes up to N tokens (argmax, no penalties) and
// prints {"prompt_ids":[...],"ids":[...],"text":"...","llama_cpp":{...}}; with
// --logits also "logits": one row of n_vocab raw logits per generated token
// (row i = the logits id i was picked from). It stops early at an
// end-of-generation token unless --ignore-eos is given.
//
// bench measures like llama-bench: ppP = one decode of a batch of P tokens
// (BOS + pseudo-random ids) in a cleared context, tgN = N single-token
// decodes (each feeding back the previous greedy token), each test after one
// warm-up run and repeated R times; every decode outputs its last token's
// logits, as in llama-bench. It prints a JSON
// array with llama-bench's field names (n_prompt, n_gen, n_threads, avg_ts,
// stddev_ts, samples_ts, ...).
//
// Only the prebuilt binaries are ever used: the build-from-source fallback
// and every download are switched off, so a missing or unusable prebuilt is
// an error, never a network access or a compile.
import { readFileSync, statSync, openSync, readSync, closeSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";

// node-llama-cpp reads these when it is imported; set them first.
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
process.env.NODE_LLAMA_CPP_GPU = "false";
const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");

const require = createRequire(import.meta.url);

function usage(msg) {
  if (msg) process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node run.mjs version\n" +
      "       node run.mjs generate -m MODEL -p PROMPT [-n N] [-t THREADS] [--ctx 512] [--ignore-eos] [--logits]\n" +
      "       node run.mjs bench -m MODEL [-p 128] [-n 32] [-t THREADS] [-r 5] [--fa auto|on|off]\n",
  );
  process.exit(2);
}

function intOpt(v, name, min) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

// pkgRoot is the folder of an installed package (found from its entry
// point: node-llama-cpp's "exports" hides its package.json).
function pkgRoot(name) {
  let dir = dirname(require.resolve(name));
  for (;;) {
    try {
      if (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name === name) return dir;
    } catch {
      // no package.json here: go up
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the folder of package ${name}`);
    dir = up;
  }
}

function pkgVersion(name) {
  return JSON.parse(readFileSync(join(pkgRoot(name), "package.json"), "utf8")).version;
}

// prebuiltDir is the folder of the linux-x64 CPU prebuilt.
function prebuiltDir() {
  return join(pkgRoot("@node-llama-cpp/linux-x64"), "bins", "linux-x64");
}

// elfDataSymbol reads an exported data symbol of a 64-bit little-endian ELF
// shared library without loading it: the int32 at the symbol (kind "int"),
// or the NUL-terminated string a pointer at the symbol points to (kind
// "cstr", resolved through its R_X86_64_RELATIVE relocation).
function elfDataSymbol(buf, name, kind) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error("not a 64-bit little-endian ELF file");
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 0x18)),
      size: Number(buf.readBigUInt64LE(o + 0x20)),
      link: buf.readUInt32LE(o + 0x28),
      entsize: Number(buf.readBigUInt64LE(o + 0x38)),
    });
  }
  const vaddrToOffset = (va) => {
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      if (buf.readUInt32LE(o) !== 1) continue; // PT_LOAD
      const off = Number(buf.readBigUInt64LE(o + 8));
      const vaddr = Number(buf.readBigUInt64LE(o + 0x10));
      const filesz = Number(buf.readBigUInt64LE(o + 0x20));
      if (va >= vaddr && va < vaddr + filesz) return off + (va - vaddr);
    }
    throw new Error(`address 0x${va.toString(16)} is not in the file`);
  };
  const dynsym = sections.find((s) => s.type === 11); // SHT_DYNSYM
  if (!dynsym) throw new Error("no .dynsym");
  const strtab = sections[dynsym.link];
  let addr = -1;
  for (let o = dynsym.offset; o < dynsym.offset + dynsym.size; o += dynsym.entsize) {
    const nameOff = strtab.offset + buf.readUInt32LE(o);
    const end = buf.indexOf(0, nameOff);
    if (buf.toString("latin1", nameOff, end) === name) {
      addr = Number(buf.readBigUInt64LE(o + 8));
      break;
    }
  }
  if (addr < 0) throw new Error(`symbol ${name} not found`);
  if (kind === "int") return buf.readInt32LE(vaddrToOffset(addr));
  let target = Number(buf.readBigUInt64LE(vaddrToOffset(addr)));
  for (const s of sections.filter((s) => s.type === 4)) { // SHT_RELA
    for (let o = s.offset; o < s.offset + s.size; o += s.entsize) {
      if (Number(buf.readBigUInt64LE(o)) === addr && (Number(buf.readBigUInt64LE(o + 8)) & 0xffffffff) === 8) { // R_X86_64_RELATIVE
        target = Number(buf.readBigInt64LE(o + 16));
      }
    }
  }
  const so = vaddrToOffset(target);
  return buf.toString("latin1", so, buf.indexOf(0, so));
}

// buildInfo describes the llama.cpp that the prebuilt binaries contain.
function buildInfo(llama) {
  const info = {
    node_llama_cpp: pkgVersion("node-llama-cpp"),
    prebuilt_package: "@node-llama-cpp/linux-x64@" + pkgVersion("@node-llama-cpp/linux-x64"),
    build_type: llama.buildType,
    release: llama.llamaCppRelease.release,
    repo: llama.llamaCppRelease.repo,
  };
  const dir = prebuiltDir();
  try {
    const meta = JSON.parse(readFileSync(join(dir, "_nlcBuildMetadata.json"), "utf8"));
    info.prebuilt_release = meta.buildOptions?.llamaCpp?.release;
  } catch (e) {
    info.prebuilt_release_error = String(e.message ?? e);
  }
  // The llama.cpp source tree node-llama-cpp bundles (and builds its
  // prebuilt binaries from): a git bundle whose header names the commit.
  try {
    const bundle = join(pkgRoot("node-llama-cpp"), "llama", "gitRelease.bundle");
    const fd = openSync(bundle, "r");
    const head = Buffer.alloc(512);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    const m = /^([0-9a-f]{40}) HEAD$/m.exec(head.toString("latin1"));
    if (m) info.source_commit = m[1];
  } catch {
    // no bundle in this version: nothing to report
  }
  // What the compiled library says about itself (llama.cpp's build-info).
  try {
    const lib = readFileSync(join(dir, "libllama-common.so"));
    info.build_commit = elfDataSymbol(lib, "LLAMA_COMMIT", "cstr");
    info.build_number = elfDataSymbol(lib, "LLAMA_BUILD_NUMBER", "int");
  } catch (e) {
    info.build_info_error = String(e.message ?? e);
  }
  info.system_info = llama.systemInfo;
  // The ggml CPU variant ggml picked for this CPU (the library mapped in).
  try {
    const m = /libggml-cpu-([a-z0-9_]+)\.so/.exec(readFileSync("/proc/self/maps", "utf8"));
    if (m) info.cpu_variant = m[1];
  } catch {
    // no /proc: nothing to report
  }
  return info;
}

async function openLlama() {
  return getLlama({
    gpu: false,
    build: "never", // never compile llama.cpp from source
    usePrebuiltBinaries: true,
    skipDownload: true, // never download llama.cpp's source
    progressLogs: false,
    maxThreads: 0, // the context's thread count is used as given
    logLevel: LlamaLogLevel.error,
    logger: (level, message) => {
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(`llama.cpp: ${message}\n`);
    },
  });
}

// tokenizePrompt tokenizes text like common_tokenize(vocab, text, add_special = true,
// parse_special = true): BOS first when the vocabulary adds it, EOS last when it adds that.
function tokenizePrompt(model, text) {
  const ids = [...model.tokenize(text, true)];
  if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) ids.unshift(model.tokens.bos);
  if (model.tokens.shouldAppendEosToken && model.tokens.eos != null) ids.push(model.tokens.eos);
  return ids;
}

async function generate(args) {
  const { values } = parseArgs({
    args,
    options: {
      m: { type: "string", short: "m" },
      p: { type: "string", short: "p" },
      n: { type: "string", short: "n", default: "32" },
      t: { type: "string", short: "t", default: "2" },
      ctx: { type: "string", default: "512" },
      "ignore-eos": { type: "boolean", default: false },
      logits: { type: "boolean", default: false },
    },
  });
  if (!values.m) usage("generate: -m MODEL is required");
  if (values.p == null) usage("generate: -p PROMPT is required");
  const n = intOpt(values.n, "-n", 0);
  const threads = intOpt(values.t, "-t", 1);
  const ctxSize = intOpt(values.ctx, "--ctx", 16);

  const llama = await openLlama();
  const model = await llama.loadModel({ modelPath: resolve(values.m), gpuLayers: 0 });
  const context = await model.createContext({ contextSize: ctxSize, threads: { ideal: threads, min: threads }, sequences: 1 });
  const sequence = context.getSequence();
  const promptIds = tokenizePrompt(model, values.p);
  if (promptIds.length === 0) throw new Error("the prompt has no tokens (and the vocabulary adds no BOS)");
  if (promptIds.length + n > context.contextSize) throw new Error(`prompt (${promptIds.length} tokens) + ${n} exceeds the context (${context.contextSize})`);

  // One decode for the prompt, then one decode per generated token, each
  // sampled with temperature 0: node-llama-cpp then samples with
  // llama_sampler_init_greedy alone (argmax of the logits; no penalties, no
  // bias, no top-k/p), so the ids are llama.cpp's plain greedy ones.
  const nVocab = vocabSize(model);
  const ids = [];
  const logits = [];
  const next = { token: true, logits: values.logits, options: { temperature: 0 } };
  let input = [...promptIds.slice(0, -1), [promptIds[promptIds.length - 1], { generateNext: next }]];
  while (ids.length < n) {
    const out = await sequence.controlledEvaluate(input);
    const res = out[out.length - 1]?.next;
    if (res?.token == null) throw new Error(`no token sampled at step ${ids.length}`);
    if (values.logits) {
      const row = new Array(nVocab).fill(null);
      for (const [id, v] of res.logits) row[id] = v;
      logits.push(row);
    }
    ids.push(res.token);
    if (!values["ignore-eos"] && model.isEogToken(res.token)) break;
    input = [[res.token, { generateNext: next }]];
  }
  const text = model.detokenize(ids, false, promptIds);
  const result = { prompt_ids: promptIds, ids, text, n_threads: context.currentThreads, llama_cpp: buildInfo(llama) };
  if (values.logits) result.logits = logits;
  process.stdout.write(JSON.stringify(result) + "\n");
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

function meanStddev(v) {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length < 2) return [mean, 0];
  const ss = v.reduce((a, x) => a + (x - mean) * (x - mean), 0);
  return [mean, Math.sqrt(ss / (v.length - 1))];
}

// vocabSize is the number of tokens of the model's vocabulary.
function vocabSize(model) {
  const n = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
  if (Number.isInteger(n) && n > 0) return n;
  const emb = model.fileInfo.fullTensorInfo?.find((t) => t.name === "token_embd.weight");
  if (emb) return Number(emb.dimensions[1]);
  throw new Error("cannot tell the vocabulary size");
}

async function bench(args) {
  const { values } = parseArgs({
    args,
    options: {
      m: { type: "string", short: "m" },
      p: { type: "string", short: "p", default: "128" },
      n: { type: "string", short: "n", default: "32" },
      t: { type: "string", short: "t", default: "2" },
      r: { type: "string", short: "r", default: "5" },
      fa: { type: "string", default: "auto" },
    },
  });
  if (!values.m) usage("bench: -m MODEL is required");
  const nPrompt = intOpt(values.p, "-p", 0);
  const nGen = intOpt(values.n, "-n", 0);
  const threads = intOpt(values.t, "-t", 1);
  const reps = intOpt(values.r, "-r", 1);
  if (nPrompt + nGen === 0) usage("bench: nothing to run (-p 0 and -n 0)");
  const fa = { auto: "auto", on: true, off: false }[values.fa];
  if (fa === undefined) usage("--fa must be auto, on or off");

  const path = resolve(values.m);
  const llama = await openLlama();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  // One context for all runs, cleared before each (llama-bench clears the
  // memory, it does not recreate the context). The batch holds the whole
  // prompt so pp is a single decode.
  const ctxSize = Math.max(512, nPrompt + nGen + 1);
  const context = await model.createContext({
    contextSize: ctxSize,
    batchSize: Math.max(nPrompt, 1),
    threads: { ideal: threads, min: threads },
    sequences: 1,
    flashAttention: fa,
  });
  const sequence = context.getSequence();
  const nVocab = vocabSize(model);

  // Pseudo-random token ids (a fixed LCG, like `realm bench`'s), BOS first.
  let x = 12345;
  const rnd = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 8) % nVocab;
  };
  const first = model.tokens.shouldPrependBosToken && model.tokens.bos != null ? model.tokens.bos : rnd();

  // Like llama-bench (and `realm bench`), each decode outputs the logits of
  // its last token: controlledEvaluate with a greedy pick there, so the
  // output matmul is part of every timed decode.
  const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
  const runPP = async () => {
    const toks = [first];
    while (toks.length < nPrompt) toks.push(rnd());
    await sequence.clearHistory();
    const t0 = process.hrtime.bigint();
    await sequence.controlledEvaluate([...toks.slice(0, -1), [toks[toks.length - 1], greedy]]);
    return Number(process.hrtime.bigint() - t0);
  };
  // tg feeds back each greedy token, one decode per token.
  const runTG = async (n) => {
    await sequence.clearHistory();
    let tok = first;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const out = await sequence.controlledEvaluate([[tok, greedy]]);
      tok = out[0]?.next?.token ?? rnd();
    }
    return Number(process.hrtime.bigint() - t0);
  };

  const info = buildInfo(llama);
  const size = statSync(path).size;
  const results = [];
  for (const test of [
    { np: nPrompt, ng: 0, run: () => runPP() },
    { np: 0, ng: nGen, run: () => runTG(nGen) },
  ]) {
    if (test.np + test.ng === 0) continue;
    await test.run(); // warm-up, like llama-bench
    const samplesNs = [];
    for (let i = 0; i < reps; i++) samplesNs.push(await test.run());
    const samplesTs = samplesNs.map((ns) => ((test.np + test.ng) * 1e9) / ns);
    const [avgNs, sdNs] = meanStddev(samplesNs);
    const [avgTs, sdTs] = meanStddev(samplesTs);
    results.push({
      build_commit: info.build_commit,
      build_number: info.build_number,
      llama_cpp_release: info.release,
      source_commit: info.source_commit,
      backends: `CPU ${info.cpu_variant ?? ""} (node-llama-cpp ${info.node_llama_cpp})`,
      model_filename: path,
      model_size: size,
      n_batch: Math.max(nPrompt, 1),
      n_threads: context.currentThreads,
      flash_attn: String(values.fa),
      n_prompt: test.np,
      n_gen: test.ng,
      avg_ns: Math.round(avgNs),
      stddev_ns: Math.round(sdNs),
      avg_ts: avgTs,
      stddev_ts: sdTs,
      samples_ns: samplesNs,
      samples_ts: samplesTs,
    });
  }
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

// embed prints llama.cpp's pooled embedding (llama_get_embeddings_seq, not
// normalized) of each text, tokenized like tokenizePrompt (and, for a
// WordPiece vocabulary, closed with SEP as llama.cpp's add_special does):
// {"inputs":[{"text":...,"ids":[...],"embedding":[...]}],"elapsed_ms":...,"llama_cpp":{...}}
// (elapsed_ms: the embedding of all texts, one after another, after the load).
async function embed(args) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      m: { type: "string", short: "m" },
      t: { type: "string", short: "t", default: "2" },
      ctx: { type: "string", default: "512" },
    },
  });
  if (!values.m) usage("embed: -m MODEL is required");
  if (positionals.length === 0) usage("embed: at least one TEXT is required");
  const threads = intOpt(values.t, "-t", 1);
  const ctxSize = intOpt(values.ctx, "--ctx", 16);
  const llama = await openLlama();
  const model = await llama.loadModel({ modelPath: resolve(values.m), gpuLayers: 0 });
  const ec = await model.createEmbeddingContext({ contextSize: ctxSize, threads: { ideal: threads, min: threads } });
  const inputs = [];
  const t0 = performance.now();
  for (const text of positionals) {
    // llama.cpp's tokenizer (add_special) closes a WordPiece sequence
    // with SEP; node-llama-cpp's tokenize does not add it.
    const ids = tokenizePrompt(model, text);
    if (model.vocabularyType === "wpm" && model.tokens.sep != null && ids[ids.length - 1] !== model.tokens.sep) ids.push(model.tokens.sep);
    const e = await ec.getEmbeddingFor(ids);
    inputs.push({ text, ids, embedding: [...e.vector] });
  }
  const elapsedMs = performance.now() - t0;
  process.stdout.write(JSON.stringify({ inputs, elapsed_ms: elapsedMs, n_threads: threads, llama_cpp: buildInfo(llama) }) + "\n");
  await ec.dispose();
  await model.dispose();
  await llama.dispose();
}

async function version() {
  const llama = await openLlama();
  process.stdout.write(JSON.stringify(buildInfo(llama), null, 2) + "\n");
  await llama.dispose();
}

const [cmd, ...rest] = process.argv.slice(2);
try {
  switch (cmd) {
    case "generate":
      await generate(rest);
      break;
    case "bench":
      await bench(rest);
      break;
    case "embed":
      await embed(rest);
      break;
    case "version":
      await version();
      break;
    default:
      usage(cmd ? `unknown command ${JSON.stringify(cmd)}` : "");
  }
} catch (e) {
  process.stderr.write(`run.mjs: ${e?.stack ?? e}\n`);
  process.exit(1);
}
