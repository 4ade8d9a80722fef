# Realm configuration: backends, models and apps.
#
# Relative paths resolve against the directory of this file, except model
# paths, which resolve against models_dir. `realm backends` shows how the
# backends below rank on this machine and why; `realm models` lists every
# servable model name.

# Models are loaded by name: a model block below, or <models_dir>/<name>.gguf.
# Names match ^[a-z0-9][a-z0-9._-]{0,127}$ and must stay inside models_dir.
models_dir = "models"

# Idle models are unloaded (least recently used first) when loading another
# would exceed this. Units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB.
memory_budget = "2GiB"

# KV cache of each loaded model, shared by its sessions (the CPU backends
# allocate it in blocks of 32 positions as sessions fill them, and share
# the blocks of a common prompt prefix). A Decode that finds it full fails
# with ENOMEM (a 503 from realm serve). A model block may set its own.
# Default: the backend's (4GiB for the CPU backends, allocated on demand).
# kv_budget = "1GiB"

# Backends. Each declares the architecture it was built for and the cpuid
# feature names it cannot run without (`requires`); `prefers` lists
# features it uses when present (each one found adds to its score).
# Ranking among eligible backends: priority (higher first), GPU before CPU,
# then feature score. A backend with probe = true is started once and asked
# for its devices and a tiny self-test before it is chosen; a software
# device (lavapipe) ranks below the CPU backends unless pinned.
# Pin one with `--backend NAME` or REALM_BACKEND=NAME.

backend "vulkan" {
  binary   = "bin/realm-backend-vulkan"
  arch     = "any"
  gpu      = true
  probe    = true
  priority = 100
}

backend "cpu-avx2" {
  binary   = "bin/realm-backend-cpu-avx2"
  arch     = "amd64"
  requires = ["AVX2", "FMA3", "F16C"]
  prefers  = ["AVX512VNNI", "AVX512VL"] # the Q4_0/Q8_0 dot products use VNNI
  priority = 50
  threads  = 0 # 0: one thread per logical CPU
  # The Go runtime signals a thread that runs 10 ms without blocking
  # (async preemption): the kernel threads never block while generating,
  # and each signal saves their AVX-512/AMX state. Off: tg +1-3%.
  env = ["GODEBUG=asyncpreemptoff=1"]
}

backend "cpu-neon" {
  binary   = "bin/realm-backend-cpu-neon"
  arch     = "arm64"
  requires = ["ASIMD"]
  prefers  = ["ASIMDDP"] # SDOT integer dot products
  priority = 50
}

backend "reference" {
  binary   = "bin/realm-backend-reference"
  arch     = "any"
  priority = 10
}

model "stories260k" {
  path   = "stories260K.gguf"
  sha256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
}

# The app `realm serve` runs for each OpenAI request (examples/chat).
# max_n caps the choices (n) of one request: each is one run (default 8).
app "chat" {
  wasm       = "bin/examples/chat.wasm"
  models     = ["*"]
  max_tokens = 512
  timeout    = "120s"
  memory     = "64MiB"
  max_output = "16MiB"
  max_n      = 8
}

app "default" {
  wasm       = "bin/examples/generate.wasm"
  models     = ["*"]
  max_tokens = 512
  timeout    = "60s"
  memory     = "64MiB"
  max_output = "16MiB"
}

# max_concurrent is per model: that many requests run at once, and the CPU
# backends decode their sessions together, one forward pass per token for
# all of them (continuous batching). max_queue more wait in line; beyond
# that a request gets 429.
server {
  addr           = "127.0.0.1:8080"
  api_keys_file  = ""
  max_concurrent = 4
  max_queue      = 16
}
