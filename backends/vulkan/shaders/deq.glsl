// deq.glsl: element k of a weight row that starts at byte ro of W, for
// the weight type selected by one of TYPE_F32, TYPE_F16, TYPE_Q8_0,
// TYPE_Q4_0, TYPE_Q4_K, TYPE_Q6_K. The including shader declares W.

uint rd8(uint b) { return (W[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
// rd16 reads a little-endian u16 at an even byte offset.
uint rd16(uint b) { return (W[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu; }
float rdf16(uint b) { return unpackHalf2x16(rd16(b)).x; }
int sext8(uint v) { return int(v << 24) >> 24; }

float deq(uint ro, uint k) {
#if defined(TYPE_F32)
	return uintBitsToFloat(W[(ro >> 2) + k]);
#elif defined(TYPE_F16)
	return rdf16(ro + 2u * k);
#elif defined(TYPE_Q8_0)
	uint bo = ro + (k >> 5) * 34u;
	return rdf16(bo) * float(sext8(rd8(bo + 2u + (k & 31u))));
#elif defined(TYPE_Q4_0)
	uint bo = ro + (k >> 5) * 18u;
	uint j = k & 31u;
	uint byte = rd8(bo + 2u + (j & 15u));
	uint q = j < 16u ? (byte & 15u) : (byte >> 4);
	return rdf16(bo) * float(int(q) - 8);
#elif defined(TYPE_Q4_K)
	uint bo = ro + (k >> 8) * 144u;
	uint j = k & 255u;
	uint sub = j >> 5;
	uint byte = rd8(bo + 16u + (sub >> 1) * 32u + (j & 31u));
	uint q = (sub & 1u) == 1u ? (byte >> 4) : (byte & 15u);
	uint sc, m;
	if (sub < 4u) {
		sc = rd8(bo + 4u + sub) & 63u;
		m = rd8(bo + 8u + sub) & 63u;
	} else {
		sc = (rd8(bo + 8u + sub) & 15u) | ((rd8(bo + sub) >> 6) << 4);
		m = (rd8(bo + 8u + sub) >> 4) | ((rd8(bo + 4u + sub) >> 6) << 4);
	}
	float d = rdf16(bo);
	float dmin = rdf16(bo + 2u);
	return (d * float(sc)) * float(q) - (dmin * float(m));
#elif defined(TYPE_Q6_K)
	uint bo = ro + (k >> 8) * 210u;
	uint j = k & 255u;
	uint n = j >> 7;
	uint r = j & 127u;
	uint quarter = r >> 5;
	uint l = r & 31u;
	uint ql = bo + 64u * n;
	uint qh = bo + 128u + 32u * n;
	uint scb = bo + 192u + 8u * n;
	uint h = rd8(qh + l);
	uint lo = rd8(ql + l + ((quarter & 1u) == 1u ? 32u : 0u));
	lo = quarter < 2u ? (lo & 15u) : (lo >> 4);
	uint q = lo | (((h >> (2u * quarter)) & 3u) << 4);
	int sc = sext8(rd8(scb + (l >> 4) + 2u * quarter));
	return rdf16(bo + 208u) * float(sc) * float(int(q) - 32);
#else
#error "no weight type defined"
#endif
}
