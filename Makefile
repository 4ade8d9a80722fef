# Realm build and test entry points. `make run` builds everything and
# streams a story from the bundled model through a WASM guest and the
# chosen backend plugin; `make test` runs the whole test suite.

GO        ?= go
BIN       := bin
GOARCH_HOST := $(shell $(GO) env GOARCH)
PLUGINS   := reference
ifeq ($(GOARCH_HOST),amd64)
PLUGINS   += cpu-avx2
endif
ifeq ($(GOARCH_HOST),arm64)
PLUGINS   += cpu-neon
endif
# The vulkan plugin builds everywhere; without cgo, the Vulkan headers or
# a device it reports why and the probe vetoes it.
PLUGINS   += vulkan
EXAMPLES  := generate pipeline sampler chat bench
MODEL     ?= stories260k
PROMPT    ?= Once upon a time
TOKENS    ?= 200

# Test groups whose Debian packages are missing (cguest, neon, vulkan):
# make test skips them and says so; scripts/deps.sh says what to install.
SKIPS     := $(shell scripts/deps.sh --skips)
# The vulkan plugin is built for real only with the vulkan_headers tag,
# set here when the C compiler finds the Vulkan headers. The tag is part
# of Go's build cache key, so a build made before the headers were
# installed is never reused after (without it the plugin is a stub that
# says why).
VULKAN_HEADERS := $(shell printf '\043include <vulkan/vulkan.h>\n' | $$($(GO) env CC) -E -x c - >/dev/null 2>&1 && echo yes)
GOTAGS    ?= $(if $(VULKAN_HEADERS),$(if $(filter vulkan,$(SKIPS)),,vulkan_headers))
TAGS      := $(if $(strip $(GOTAGS)),-tags $(GOTAGS))

.PHONY: all build plugins examples run test test-go test-neon test-clone conformance deps vet fuzz loadtest generate clean cluster-demo helm-test

all: build

build: $(BIN)/realm plugins examples $(BIN)/conformance/abiguest.wasm

$(BIN)/realm: FORCE
	$(GO) build $(TAGS) -o $@ ./cmd/realm

plugins: $(addprefix $(BIN)/realm-backend-,$(PLUGINS))

$(BIN)/realm-backend-%: FORCE
	$(GO) build $(TAGS) -o $@ ./cmd/realm-backend-$*

examples: $(addprefix $(BIN)/examples/,$(addsuffix .wasm,$(EXAMPLES)))

$(BIN)/examples/%.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./examples/$*

$(BIN)/conformance/abiguest.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./internal/conformance/abiguest

# The C guest needs clang, lld and wasi-libc (installed by deps-c).
$(BIN)/examples/c-generate.wasm: examples/c-generate/main.c abi/realm.h
	@mkdir -p $(BIN)/examples
	clang --target=wasm32-wasi --sysroot=/usr -O2 -I abi -o $@ examples/c-generate/main.c

run: build
	$(BIN)/realm run $(BIN)/examples/generate.wasm -- $(MODEL) "$(PROMPT)" $(TOKENS)

# Debian packages the tests need: installed when missing as root on
# Debian (CI); anyone else is told the apt-get command and what is skipped.
deps:
	@scripts/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(TAGS) ./...
	@# The whole tree must also build for arm64 (the cpu-neon machines).
	GOARCH=arm64 $(GO) vet ./...

# deps runs first, in its own make, so everything after it sees what it
# installed (the Vulkan headers decide how the vulkan plugin builds).
test: deps
	$(MAKE) vet build test-go test-neon conformance test-clone helm-test

# REALM_SKIP tells the tests which groups make skips (TestCGuest reads it).
test-go:
	REALM_SKIP="$(SKIPS)" $(GO) test $(TAGS) -count=1 -timeout 20m ./...

test-neon:
ifneq ($(filter neon,$(SKIPS)),)
	@echo "test-neon: SKIPPED: qemu-user-static or gcc-aarch64-linux-gnu missing (scripts/deps.sh says how to install them)"
else
	scripts/neon-test.sh
endif

# A backend this machine can run must not be skipped wholesale, except one
# whose packages deps.sh reported missing.
conformance: build
	$(BIN)/realm conformance --backend all $(if $(filter vulkan,$(SKIPS)),--may-skip vulkan) --json $(BIN)/conformance.json

# The repository alone must be enough to test it: clone HEAD into an empty
# temporary directory (no ../shared or anything else beside it) and run
# the Go tests there (nearly every package reads the reference data, so
# all of them; 3.5 to 5 minutes on 2 cores with a warm build cache).
# Uncommitted changes are not in the clone.
CLONE_PKGS ?= ./...
test-clone:
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "test-clone: SKIPPED: not a git checkout"; exit 0; }; \
	test -z "$$(git status --porcelain --untracked-files=no)" || echo "test-clone: note: uncommitted changes are not in the clone"; \
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	git clone -q . "$$tmp/r" && cd "$$tmp/r" && \
	echo "test-clone: go test in a clone of $$(git rev-parse --short HEAD) at $$tmp/r" && \
	env -u REALM_REFERENCE_DIR REALM_SKIP="$(SKIPS)" $(GO) test $(TAGS) -count=1 -timeout 20m $(CLONE_PKGS)

# A bounded local load test of realm serve: 64 clients for 30 s on loopback.
# Load tests (not part of make test): the soak of realm serve (errors, RSS),
# then continuous batching on the synthetic TinyLlama-1.1B Q4_0 file with
# 1, 4 and 8 streaming clients beside llama.cpp's llama-server (built under
# /tmp from the source in the node-llama-cpp package; see the script's knobs).
loadtest:
	$(GO) test -count=1 -timeout 5m -run TestLoad -v ./tests/server -load
	scripts/loadtest.sh

# A front end and two workers on loopback stream a story (realm serve --cluster, realm worker).
cluster-demo: $(BIN)/realm $(BIN)/realm-backend-reference $(BIN)/examples/chat.wasm $(BIN)/examples/generate.wasm
	BIN=$(BIN) scripts/cluster-demo.sh

# Render deploy/helm/realm with the Helm library and decode every manifest
# (a module of its own: Helm and the Kubernetes types stay out of go.mod).
helm-test:
	cd deploy/helm/charttest && $(GO) test -count=1 ./...

fuzz:
	$(GO) test ./gguf -run '^$$' -fuzz FuzzRead -fuzztime 60s

generate:
	$(GO) generate ./...

clean:
	rm -rf $(BIN)

FORCE:
