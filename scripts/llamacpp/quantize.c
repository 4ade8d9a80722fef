// quantize.c: llama-quantize over the prebuilt libllama of the npm package
// node-llama-cpp (scripts/llamacpp/package.json pins it), so tests can
// compare `realm quantize` with llama.cpp's own file writer.
//
// The prebuilt package ships no headers: llama_model_quantize_params is
// taken from llama_model_quantize_default_params() as an opaque buffer
// larger than the real struct, and only its second field (ftype, an int
// after the int32 nthread, in the layout of the llama.cpp release that
// node-llama-cpp 3.22.1 bundles) is set.
//
// Build: cc -O2 -o quantize quantize.c -L$BINS -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,$BINS
// Run:   quantize IN.gguf OUT.gguf FTYPE   (FTYPE: LLAMA_FTYPE_* number)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct { char b[4096]; } params_t;
extern void ggml_backend_load_all(void);
extern void llama_backend_init(void);
extern params_t llama_model_quantize_default_params(void);
extern uint32_t llama_model_quantize(const char *in, const char *out, const params_t *p);

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: quantize IN.gguf OUT.gguf FTYPE\n");
		return 2;
	}
	ggml_backend_load_all();
	llama_backend_init();
	params_t p = llama_model_quantize_default_params();
	int32_t nthread = 1;
	int32_t ftype = atoi(argv[3]);
	((int32_t *)p.b)[0] = nthread;
	((int32_t *)p.b)[1] = ftype;
	uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
	if (rc != 0) {
		fprintf(stderr, "llama_model_quantize failed: %u\n", rc);
		return 1;
	}
	return 0;
}
