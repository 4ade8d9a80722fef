// deq.glsl: element k of a weight row that starts at byte ro of W, for
// the weight type selected by one of TYPE_F32, TYPE_F16, TYPE_BF16,
// TYPE_Q4_0, TYPE_Q4_1, TYPE_Q5_0, TYPE_Q5_1, TYPE_Q8_0, TYPE_Q2_K,
// TYPE_Q3_K, TYPE_Q4_K, TYPE_Q5_K, TYPE_Q6_K, TYPE_IQ4_NL, TYPE_IQ4_XS
// (block layouts: FORMATS.md and gguf/iq4.go).
// The including shader declares W. Results are `precise` (no fused
// multiply-add), so that they equal the host's dequantization bit for bit.

uint rd8(uint b) { return (W[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
// rd16 reads a little-endian u16 at an even byte offset.
uint rd16(uint b) { return (W[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu; }
float rdf16(uint b) { return unpackHalf2x16(rd16(b)).x; }
int sext8(uint v) { return int(v << 24) >> 24; }

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j of a Q4_K or
// Q5_K block whose 12 scale bytes start at byte s.
void scaleMinK4(uint j, uint s, out uint sc, out uint m) {
	if (j < 4u) {
		sc = rd8(s + j) & 63u;
		m = rd8(s + j + 4u) & 63u;
	} else {
		sc = (rd8(s + j + 4u) & 15u) | ((rd8(s + j - 4u) >> 6) << 4);
		m = (rd8(s + j + 4u) >> 4) | ((rd8(s + j) >> 6) << 4);
	}
}

#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
// iq4 returns the non-linear grid value of 4-bit index q (gguf.IQ4NLValues).
float iq4(uint q) {
	const int g[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
	return float(g[q]);
}
#endif

float deq(uint ro, uint k) {
	precise float r;
#if defined(TYPE_F32)
	r = uintBitsToFloat(W[(ro >> 2) + k]);
#elif defined(TYPE_F16)
	r = rdf16(ro + 2u * k);
#elif defined(TYPE_BF16)
	r = uintBitsToFloat(rd16(ro + 2u * k) << 16);
#elif defined(TYPE_Q8_0)
	uint bo = ro + (k >> 5) * 34u;
	r = rdf16(bo) * float(sext8(rd8(bo + 2u + (k & 31u))));
#elif defined(TYPE_Q4_0)
	uint bo = ro + (k >> 5) * 18u;
	uint j = k & 31u;
	uint byte = rd8(bo + 2u + (j & 15u));
	uint q = j < 16u ? (byte & 15u) : (byte >> 4);
	r = rdf16(bo) * float(int(q) - 8);
#elif defined(TYPE_Q4_1)
	uint bo = ro + (k >> 5) * 20u;
	uint j = k & 31u;
	uint byte = rd8(bo + 4u + (j & 15u));
	uint q = j < 16u ? (byte & 15u) : (byte >> 4);
	precise float dq = rdf16(bo) * float(q);
	r = dq + rdf16(bo + 2u);
#elif defined(TYPE_Q5_0)
	uint bo = ro + (k >> 5) * 22u;
	uint j = k & 31u;
	uint byte = rd8(bo + 6u + (j & 15u));
	uint q = j < 16u ? (byte & 15u) : (byte >> 4);
	uint h = (rd8(bo + 2u + (j >> 3)) >> (j & 7u)) & 1u;
	r = rdf16(bo) * float(int(q | (h << 4)) - 16);
#elif defined(TYPE_Q5_1)
	uint bo = ro + (k >> 5) * 24u;
	uint j = k & 31u;
	uint byte = rd8(bo + 8u + (j & 15u));
	uint q = j < 16u ? (byte & 15u) : (byte >> 4);
	uint h = (rd8(bo + 4u + (j >> 3)) >> (j & 7u)) & 1u;
	precise float dq = rdf16(bo) * float(q | (h << 4));
	r = dq + rdf16(bo + 2u);
#elif defined(TYPE_Q2_K)
	uint bo = ro + (k >> 8) * 84u;
	uint j = k & 255u;
	uint n = j >> 7, rr = j & 127u, s = rr >> 5, h = (rr & 31u) >> 4, l = rr & 15u;
	uint sc = rd8(bo + n * 8u + s * 2u + h);
	uint q = (rd8(bo + 16u + 32u * n + 16u * h + l) >> (2u * s)) & 3u;
	precise float dl = rdf16(bo + 80u) * float(sc & 15u);
	precise float ml = rdf16(bo + 82u) * float(sc >> 4);
	precise float dq = dl * float(q);
	r = dq - ml;
#elif defined(TYPE_Q3_K)
	uint bo = ro + (k >> 8) * 110u;
	uint j = k & 255u;
	uint n = j >> 7, rr = j & 127u, s = rr >> 5, h = (rr & 31u) >> 4, l = rr & 15u;
	uint i = n * 8u + s * 2u + h;
	uint lo = i < 8u ? (rd8(bo + 96u + i) & 15u) : (rd8(bo + 96u + i - 8u) >> 4);
	uint hi = (rd8(bo + 96u + 8u + (i & 3u)) >> (2u * (i >> 2))) & 3u;
	int sc = int(lo | (hi << 4)) - 32;
	int q = int((rd8(bo + 32u + 32u * n + 16u * h + l) >> (2u * s)) & 3u);
	if ((rd8(bo + 16u * h + l) & (1u << (n * 4u + s))) == 0u) q -= 4;
	precise float dl = rdf16(bo + 108u) * float(sc);
	r = dl * float(q);
#elif defined(TYPE_Q4_K)
	uint bo = ro + (k >> 8) * 144u;
	uint j = k & 255u;
	uint sub = j >> 5;
	uint byte = rd8(bo + 16u + (sub >> 1) * 32u + (j & 31u));
	uint q = (sub & 1u) == 1u ? (byte >> 4) : (byte & 15u);
	uint sc, m;
	scaleMinK4(sub, bo + 4u, sc, m);
	precise float d1 = rdf16(bo) * float(sc);
	precise float m1 = rdf16(bo + 2u) * float(m);
	precise float dq = d1 * float(q);
	r = dq - m1;
#elif defined(TYPE_Q5_K)
	uint bo = ro + (k >> 8) * 176u;
	uint j = k & 255u;
	uint sub = j >> 5, c = sub >> 1, l = j & 31u;
	uint byte = rd8(bo + 48u + 32u * c + l);
	uint q = (sub & 1u) == 1u ? (byte >> 4) : (byte & 15u);
	if ((rd8(bo + 16u + l) & (1u << sub)) != 0u) q += 16u;
	uint sc, m;
	scaleMinK4(sub, bo + 4u, sc, m);
	precise float d1 = rdf16(bo) * float(sc);
	precise float m1 = rdf16(bo + 2u) * float(m);
	precise float dq = d1 * float(q);
	r = dq - m1;
#elif defined(TYPE_Q6_K)
	uint bo = ro + (k >> 8) * 210u;
	uint j = k & 255u;
	uint n = j >> 7;
	uint rr = j & 127u;
	uint quarter = rr >> 5;
	uint l = rr & 31u;
	uint h = rd8(bo + 128u + 32u * n + l);
	uint lo = rd8(bo + 64u * n + l + ((quarter & 1u) == 1u ? 32u : 0u));
	lo = quarter < 2u ? (lo & 15u) : (lo >> 4);
	uint q = lo | (((h >> (2u * quarter)) & 3u) << 4);
	int sc = sext8(rd8(bo + 192u + 8u * n + (l >> 4) + 2u * quarter));
	precise float ds = rdf16(bo + 208u) * float(sc);
	r = ds * float(int(q) - 32);
#elif defined(TYPE_IQ4_NL)
	uint bo = ro + (k >> 5) * 18u;
	uint j = k & 31u;
	uint byte = rd8(bo + 2u + (j & 15u));
	r = rdf16(bo) * iq4(j < 16u ? (byte & 15u) : (byte >> 4));
#elif defined(TYPE_IQ4_XS)
	uint bo = ro + (k >> 8) * 136u;
	uint j = k & 255u;
	uint ib = j >> 5, l = j & 31u;
	uint ls = ((rd8(bo + 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u) | (((rd16(bo + 2u) >> (2u * ib)) & 3u) << 4);
	precise float dl = rdf16(bo) * float(int(ls) - 32);
	uint byte = rd8(bo + 8u + 16u * ib + (l & 15u));
	r = dl * iq4(l < 16u ? (byte & 15u) : (byte >> 4));
#else
#error "no weight type defined"
#endif
	return r;
}

// rd32 reads a little-endian u32 at an even byte offset.
uint rd32(uint b) {
	uint i = b >> 2;
	return (b & 2u) == 0u ? W[i] : ((W[i] >> 16) | (W[i + 1u] << 16));
}
