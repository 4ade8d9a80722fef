// quantref.c: writes reference vectors for Realm's quantizers from ggml
// itself (the prebuilt libggml-base of the npm package node-llama-cpp, see
// package.json): for each type it quantizes a fixed input with
// ggml_quantize_chunk (no importance matrix, as llama-quantize does
// without --imatrix) and dequantizes the result with ggml's row decoder.
//
// Output file per type (little endian): "RQR1", u32 ggml type id,
// u32 element count n, f32 input[n], u32 byte count m, quantized bytes[m],
// f32 dequantized[n].
//
// Build: cc -O2 -o quantref quantref.c -L$BINS -l:libggml-base.so -lm -Wl,-rpath,$BINS
// Run:   quantref OUTDIR
// The input is Gaussian (a fixed xorshift generator, Box–Muller) with
// 1% outliers ×4, plus edge blocks: all zero, one nonzero element, a
// constant, all negative, tiny (1e-20) and large (1e4) magnitudes.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern size_t ggml_quantize_chunk(int type, const float *src, void *dst, int64_t start,
                                  int64_t nrows, int64_t n_per_row, const float *imatrix);
extern size_t ggml_row_size(int type, int64_t ne);
extern void dequantize_row_q5_K(const void *x, float *y, int64_t k);
extern void dequantize_row_iq4_nl(const void *x, float *y, int64_t k);
extern void dequantize_row_iq4_xs(const void *x, float *y, int64_t k);
extern void ggml_bf16_to_fp32_row(const void *x, float *y, int64_t k);

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
	rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
	return ((rs >> 11) + 0.5) / 9007199254740992.0;
}
static float gauss(void) {
	return (float)(sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand()));
}

enum { ROW = 1024, ROWS = 8, N = ROW * ROWS };

static void fill(float *x) {
	for (int i = 0; i < N; i++) {
		x[i] = gauss();
		if (i % 97 == 0) x[i] *= 4;
	}
	// Edge blocks in the first row (each 32 elements, inside one
	// 256-element super-block where the type has one).
	memset(x, 0, 32 * sizeof(float));                     // all zero
	for (int i = 32; i < 64; i++) x[i] = 0;               // one nonzero
	x[40] = 0.75f;
	for (int i = 64; i < 96; i++) x[i] = 0.5f;            // constant
	for (int i = 96; i < 128; i++) x[i] = -fabsf(x[i]);   // all negative
	for (int i = 256; i < 512; i++) x[i] *= 1e-20f;       // tiny super-block
	for (int i = 512; i < 768; i++) x[i] *= 1e4f;         // large super-block
}

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: quantref OUTDIR\n");
		return 2;
	}
	static float x[N], y[N];
	fill(x);
	struct { int type; const char *name; void (*deq)(const void *, float *, int64_t); } ts[] = {
		{13, "q5_k", dequantize_row_q5_K},
		{20, "iq4_nl", dequantize_row_iq4_nl},
		{23, "iq4_xs", dequantize_row_iq4_xs},
		{30, "bf16", ggml_bf16_to_fp32_row},
	};
	for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		size_t m = ggml_row_size(ts[k].type, ROW) * ROWS;
		unsigned char *q = calloc(1, m);
		size_t got = ggml_quantize_chunk(ts[k].type, x, q, 0, ROWS, ROW, NULL);
		if (got != m) {
			fprintf(stderr, "%s: quantize wrote %zu bytes, want %zu\n", ts[k].name, got, m);
			return 1;
		}
		ts[k].deq(q, y, N);
		char path[4096];
		snprintf(path, sizeof path, "%s/ggml-%s.bin", argv[1], ts[k].name);
		FILE *f = fopen(path, "wb");
		if (!f) { perror(path); return 1; }
		uint32_t hdr[3] = {ts[k].type, N, 0};
		uint32_t mm = (uint32_t)m;
		if (!put(f, "RQR1", 4) || !put(f, hdr, 8) || !put(f, x, sizeof x) || !put(f, &mm, 4) ||
		    !put(f, q, m) || !put(f, y, sizeof y) || fclose(f) != 0) {
			perror(path);
			return 1;
		}
		free(q);
		printf("%s: %zu bytes\n", path, m);
	}
	return 0;
}
