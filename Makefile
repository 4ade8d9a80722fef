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

.PHONY: all build plugins examples run test test-go test-neon conformance deps vet fuzz loadtest generate clean cluster-demo helm-test

all: build

build: $(BIN)/realm plugins examples $(BIN)/conformance/abiguest.wasm

$(BIN)/realm: FORCE
	$(GO) build -o $@ ./cmd/realm

plugins: $(addprefix $(BIN)/realm-backend-,$(PLUGINS))

$(BIN)/realm-backend-%: FORCE
	$(GO) build -o $@ ./cmd/realm-backend-$*

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

# Debian packages the tests need, installed when missing (CI runs as root).
deps:
	@scripts/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	@# The whole tree must also build for arm64 (the cpu-neon machines).
	GOARCH=arm64 $(GO) vet ./...

# deps runs first, in its own make, so everything after it sees what it
# installed (the Vulkan headers decide how the vulkan plugin builds).
test: deps
	$(MAKE) vet build test-go test-neon conformance

test-go:
	$(GO) test -count=1 -timeout 20m ./...

test-neon:
	scripts/neon-test.sh

conformance: build
	$(BIN)/realm conformance --backend all --json $(BIN)/conformance.json

# A bounded local load test of realm serve: 64 clients for 30 s on loopback.
loadtest:
	$(GO) test -count=1 -timeout 5m -run TestLoad -v ./tests/server -load

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
