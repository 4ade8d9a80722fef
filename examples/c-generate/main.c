/*
 * c-generate: the generate example in C, proving the Realm ABI is
 * language-neutral.
 *
 *   realm run c-generate.wasm -- MODEL_NAME PROMPT [MAX_TOKENS]
 *
 * Build: clang --target=wasm32-wasi -O2 -I abi -o c-generate.wasm examples/c-generate/main.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realm.h"

static int fail(const char *what, int32_t r) {
	char msg[512];
	int32_t n = realm_host_last_error(msg, sizeof msg - 1);
	if (n < 0 || n > (int32_t)sizeof msg - 1) n = 0;
	msg[n] = 0;
	fprintf(stderr, "c-generate: %s failed: errno %d: %s\n", what, (int)-r, msg);
	return 1;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: c-generate MODEL_NAME PROMPT [MAX_TOKENS]\n");
		return 2;
	}
	int max_tokens = argc > 3 ? atoi(argv[3]) : 64;
	if (max_tokens <= 0) {
		fprintf(stderr, "c-generate: MAX_TOKENS must be a positive integer\n");
		return 2;
	}
	int32_t model = realm_host_load_model_by_name(argv[1], (uint32_t)strlen(argv[1]));
	if (model < 0) return fail("load_model_by_name", model);

	char params[64];
	int plen = snprintf(params, sizeof params, "{\"max_tokens\":%d}", max_tokens);
	fflush(stdout);
	int32_t n = realm_host_generate(model, argv[2], (uint32_t)strlen(argv[2]), params, (uint32_t)plen);
	if (n < 0) return fail("generate", n);
	printf("\n");
	fprintf(stderr, "generated %d tokens\n", (int)n);
	realm_host_unload_model(model);
	return 0;
}
