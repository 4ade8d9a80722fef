// bench.c: a llama-bench-like harness over the prebuilt libllama of the
// npm package node-llama-cpp (scripts/llamacpp/package.json pins it), so
// that scripts/compare-llamacpp.sh can time llama.cpp exactly the way
// `realm bench` times Realm: ppP = one llama_decode of a P-token batch
// after clearing the KV memory, tgN = N single-token decodes each
// feeding back the greedy (argmax) token; both after one warm-up run,
// R repetitions. With a depth D (llama-bench's -d), D pseudo-random
// tokens are decoded into the KV memory once per test (untimed, in
// batches of the context's n_batch) and every repetition starts from
// them (the positions after D are removed), as `realm bench -d` does.
// It prints a JSON array with llama-bench's field names (n_prompt, n_gen,
// n_depth, n_threads, avg_ts, stddev_ts, samples_ts, samples_ns) plus the
// process CPU time, the time to the first token (process start → model
// load, context, one single-token decode: ttft_ms, like realm bench's;
// ttft_cpu_ms the process CPU time until then)
// and the process's VmRSS after the tests (rss_bytes).
//
// The prebuilt package ships no headers: the few functions used are
// declared here, and llama_context_params is filled through its first
// three fields (n_ctx, n_batch, n_ubatch, all uint32_t) in the layout of
// the llama.cpp release that node-llama-cpp 3.22.1 bundles (ggml 0.5.0).
// Parameter structs are passed as opaque buffers larger than the real
// ones.
//
// Build: cc -O2 -o bench bench.c -L$BINS -l:libllama.v0.5.0.so
//        -l:libggml.v0.5.0.so -l:libggml-base.so -lm -Wl,-rpath,$BINS
// Run from $BINS (ggml loads its CPU variant libraries from there):
//        bench MODEL P N THREADS REPS [DEPTH]
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { char b[4096]; } params_t;
typedef struct {
	int32_t n_tokens;
	int32_t *token;
	float *embd;
	int32_t *pos;
	int32_t *n_seq_id;
	int32_t **seq_id;
	int8_t *logits;
} llama_batch;

extern void ggml_backend_load_all(void);
extern void llama_backend_init(void);
extern params_t llama_model_default_params(void);
extern params_t llama_context_default_params(void);
extern void *llama_model_load_from_file(const char *path, params_t p);
extern void *llama_init_from_model(void *model, params_t p);
extern const void *llama_model_get_vocab(const void *model);
extern int32_t llama_vocab_n_tokens(const void *vocab);
extern llama_batch llama_batch_get_one(int32_t *tokens, int32_t n);
extern int32_t llama_decode(void *ctx, llama_batch b);
extern float *llama_get_logits_ith(void *ctx, int32_t i);
extern void llama_set_n_threads(void *ctx, int32_t n, int32_t nb);
extern void *llama_get_memory(void *ctx);
extern void llama_memory_clear(void *mem, _Bool data);
extern _Bool llama_memory_seq_rm(void *mem, int32_t seq_id, int32_t p0, int32_t p1);

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void) {
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

// rss returns VmRSS of this process in bytes (0 when unknown).
static long long rss(void) {
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long long kb = 0;
	if (!f) return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) kb = atoll(line + 6);
	fclose(f);
	return kb * 1024;
}

// lcg fills t[0..n) with the pseudo-random tokens `realm bench` uses
// (seed 12345 for the pp batch, 777 for the depth).
static void lcg(int32_t *t, int n, uint32_t x, int32_t nv) {
	for (int i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		t[i] = (int32_t)((x >> 8) % (uint32_t)nv);
	}
}

// argmax of the last decoded token's logits.
static int32_t greedy(void *ctx, int32_t nv) {
	const float *l = llama_get_logits_ith(ctx, -1);
	int32_t best = 0;
	for (int32_t j = 1; j < nv; j++)
		if (l[j] > l[best]) best = j;
	return best;
}

int main(int argc, char **argv) {
	double t_start = now();
	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: %s MODEL PROMPT_TOKENS GEN_TOKENS THREADS REPS [DEPTH]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	int P = atoi(argv[2]), N = atoi(argv[3]), T = atoi(argv[4]), R = atoi(argv[5]);
	int D = argc == 7 ? atoi(argv[6]) : 0;
	if (P < 0 || N < 0 || T < 1 || R < 1 || D < 0 || P + N == 0) {
		fprintf(stderr, "%s: bad arguments\n", argv[0]);
		return 2;
	}
	ggml_backend_load_all();
	llama_backend_init();
	void *model = llama_model_load_from_file(path, llama_model_default_params());
	if (!model) {
		fprintf(stderr, "%s: cannot load %s\n", argv[0], path);
		return 1;
	}
	int32_t nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
	params_t cp = llama_context_default_params();
	uint32_t *u = (uint32_t *)cp.b;
	int B = P > 0 ? P : 512; // n_batch = n_ubatch: one decode for pp, depth in B-token batches
	u[0] = (uint32_t)(D + P + N + 16); // n_ctx
	u[1] = u[2] = (uint32_t)B;
	void *ctx = llama_init_from_model(model, cp);
	if (!ctx) {
		fprintf(stderr, "%s: cannot create a context\n", argv[0]);
		return 1;
	}
	llama_set_n_threads(ctx, T, T);
	void *mem = llama_get_memory(ctx);
	int32_t first_tok = 1;
	if (llama_decode(ctx, llama_batch_get_one(&first_tok, 1))) goto fail;
	greedy(ctx, nv);
	double ttft = now() - t_start, ttft_cpu = cpu();
	int32_t *toks = malloc(sizeof(int32_t) * (P > 0 ? P : 1));
	int32_t *dtoks = malloc(sizeof(int32_t) * (D > 0 ? D : 1));
	lcg(toks, P, 12345, nv);
	lcg(dtoks, D, 777, nv);
	printf("[");
	int first = 1;
	for (int test = 0; test < 2; test++) {
		int n = test == 0 ? P : N;
		if (n == 0) continue;
		llama_memory_clear(mem, 1);
		for (int i = 0; i < D; i += B) // the depth, once per test
			if (llama_decode(ctx, llama_batch_get_one(dtoks + i, D - i < B ? D - i : B))) goto fail;
		double *ns = malloc(sizeof(double) * R), sum = 0, sum2 = 0, c = 0;
		for (int r = -1; r < R; r++) { // r = -1: warm-up
			if (D > 0) {
				if (!llama_memory_seq_rm(mem, 0, D, -1)) goto fail;
			} else {
				llama_memory_clear(mem, 1);
			}
			double t0 = now(), c0 = cpu();
			if (test == 0) {
				if (llama_decode(ctx, llama_batch_get_one(toks, P))) goto fail;
				greedy(ctx, nv);
			} else {
				int32_t tok = 1;
				for (int i = 0; i < N; i++) {
					if (llama_decode(ctx, llama_batch_get_one(&tok, 1))) goto fail;
					tok = greedy(ctx, nv);
				}
			}
			double dt = now() - t0;
			if (r >= 0) {
				ns[r] = dt * 1e9;
				sum += n / dt;
				sum2 += (n / dt) * (n / dt);
				c += cpu() - c0;
			}
		}
		double m = sum / R, sd = R > 1 ? sqrt(fmax(0, (sum2 - R * m * m) / (R - 1))) : 0;
		printf("%s\n {\"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"n_threads\": %d, \"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"tokens_per_cpu_s\": %.4f, \"ttft_ms\": %.1f, \"ttft_cpu_ms\": %.1f, \"rss_bytes\": %lld, \"samples_ts\": [",
		       first ? "" : ",", test == 0 ? P : 0, test == 0 ? 0 : N, D, T, m, sd, n * R / c, ttft * 1e3, ttft_cpu * 1e3, rss());
		for (int r = 0; r < R; r++) printf("%s%.4f", r ? ", " : "", n / (ns[r] * 1e-9));
		printf("], \"samples_ns\": [");
		for (int r = 0; r < R; r++) printf("%s%.0f", r ? ", " : "", ns[r]);
		printf("]}");
		first = 0;
		free(ns);
	}
	printf("\n]\n");
	return 0;
fail:
	fprintf(stderr, "%s: llama_decode failed\n", argv[0]);
	return 1;
}
