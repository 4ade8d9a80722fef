// dot32.glsl: the products of elements 32u .. 32u+31 of the weight row
// at byte ro (row length a multiple of 32) with nc ≤ 4 columns of X
// (column c starts at X[xi + c*cols]), added to acc. The common types
// decode whole words and keep no arrays (which would live in scratch
// memory on some drivers); the others go element by element.

void acc4(inout vec4 acc, float w, uint i, uint nc, uint cols) {
	acc.x += w * X[i];
	if (nc > 1u) {
		acc.y += w * X[i + cols];
		if (nc > 2u) {
			acc.z += w * X[i + 2u * cols];
			if (nc > 3u) acc.w += w * X[i + 3u * cols];
		}
	}
}

void dot32(uint ro, uint u, uint xi, uint nc, uint cols, inout vec4 acc) {
	uint x0 = xi + 32u * u;
#if defined(TYPE_F32)
	uint w0 = (ro >> 2) + 32u * u;
	for (uint i = 0u; i < 32u; i++) acc4(acc, uintBitsToFloat(W[w0 + i]), x0 + i, nc, cols);
#elif defined(TYPE_F16)
	uint w0 = (ro >> 2) + 16u * u;
	for (uint i = 0u; i < 16u; i++) {
		vec2 h = unpackHalf2x16(W[w0 + i]);
		acc4(acc, h.x, x0 + 2u * i, nc, cols);
		acc4(acc, h.y, x0 + 2u * i + 1u, nc, cols);
	}
#elif defined(TYPE_Q8_0)
	uint bo = ro + u * 34u;
	float d = rdf16(bo);
	for (uint i = 0u; i < 8u; i++) {
		uint w = rd32(bo + 2u + 4u * i);
		for (uint j = 0u; j < 4u; j++) acc4(acc, d * float(sext8((w >> (8u * j)) & 0xFFu)), x0 + 4u * i + j, nc, cols);
	}
#elif defined(TYPE_Q4_0)
	uint bo = ro + u * 18u;
	float d = rdf16(bo);
	for (uint i = 0u; i < 4u; i++) {
		uint w = rd32(bo + 2u + 4u * i);
		for (uint j = 0u; j < 4u; j++) {
			uint byte = (w >> (8u * j)) & 0xFFu;
			acc4(acc, d * float(int(byte & 15u) - 8), x0 + 4u * i + j, nc, cols);
			acc4(acc, d * float(int(byte >> 4) - 8), x0 + 4u * i + j + 16u, nc, cols);
		}
	}
#elif defined(TYPE_Q4_K)
	uint bo = ro + (u >> 3) * 144u;
	uint sub = u & 7u;
	uint sc, m;
	scaleMinK4(sub, bo + 4u, sc, m);
	float d1 = rdf16(bo) * float(sc);
	float m1 = rdf16(bo + 2u) * float(m);
	uint q0 = bo + 16u + (sub >> 1) * 32u;
	uint sh = (sub & 1u) * 4u;
	for (uint i = 0u; i < 8u; i++) {
		uint w = rd32(q0 + 4u * i);
		for (uint j = 0u; j < 4u; j++) acc4(acc, d1 * float((w >> (8u * j + sh)) & 15u) - m1, x0 + 4u * i + j, nc, cols);
	}
#elif defined(TYPE_Q6_K)
	uint bo = ro + (u >> 3) * 210u;
	uint s = u & 7u;
	uint n = s >> 2, quarter = s & 3u;
	float d = rdf16(bo + 208u);
	float s0 = d * float(sext8(rd8(bo + 192u + 8u * n + 2u * quarter)));
	float s1 = d * float(sext8(rd8(bo + 192u + 8u * n + 2u * quarter + 1u)));
	uint ql = bo + 64u * n + ((quarter & 1u) == 1u ? 32u : 0u);
	uint qh = bo + 128u + 32u * n;
	uint lsh = quarter < 2u ? 0u : 4u;
	uint hsh = 2u * quarter;
	for (uint i = 0u; i < 8u; i++) {
		uint wl = rd32(ql + 4u * i);
		uint wh = rd32(qh + 4u * i);
		float sc = i < 4u ? s0 : s1;
		for (uint j = 0u; j < 4u; j++) {
			uint q = ((wl >> (8u * j + lsh)) & 15u) | (((wh >> (8u * j + hsh)) & 3u) << 4);
			acc4(acc, sc * float(int(q) - 32), x0 + 4u * i + j, nc, cols);
		}
	}
#elif defined(TYPE_Q5_K)
	uint bo = ro + (u >> 3) * 176u;
	uint sub = u & 7u;
	uint sc, m;
	scaleMinK4(sub, bo + 4u, sc, m);
	float d1 = rdf16(bo) * float(sc);
	float m1 = rdf16(bo + 2u) * float(m);
	uint q0 = bo + 48u + (sub >> 1) * 32u;
	uint sh = (sub & 1u) * 4u;
	for (uint i = 0u; i < 8u; i++) {
		uint w = rd32(q0 + 4u * i);
		uint h = rd32(bo + 16u + 4u * i);
		for (uint j = 0u; j < 4u; j++) {
			uint q = ((w >> (8u * j + sh)) & 15u) | (((h >> (8u * j + sub)) & 1u) << 4);
			acc4(acc, d1 * float(q) - m1, x0 + 4u * i + j, nc, cols);
		}
	}
#elif defined(TYPE_IQ4_NL)
	uint bo = ro + u * 18u;
	float d = rdf16(bo);
	for (uint i = 0u; i < 4u; i++) {
		uint w = rd32(bo + 2u + 4u * i);
		for (uint j = 0u; j < 4u; j++) {
			uint byte = (w >> (8u * j)) & 0xFFu;
			acc4(acc, d * iq4(byte & 15u), x0 + 4u * i + j, nc, cols);
			acc4(acc, d * iq4(byte >> 4), x0 + 4u * i + j + 16u, nc, cols);
		}
	}
#elif defined(TYPE_IQ4_XS)
	uint bo = ro + (u >> 3) * 136u;
	uint ib = u & 7u;
	uint ls = ((rd8(bo + 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u) | (((rd16(bo + 2u) >> (2u * ib)) & 3u) << 4);
	float dl = rdf16(bo) * float(int(ls) - 32);
	uint q0 = bo + 8u + 16u * ib;
	for (uint i = 0u; i < 4u; i++) {
		uint w = rd32(q0 + 4u * i);
		for (uint j = 0u; j < 4u; j++) {
			uint byte = (w >> (8u * j)) & 0xFFu;
			acc4(acc, dl * iq4(byte & 15u), x0 + 4u * i + j, nc, cols);
			acc4(acc, dl * iq4(byte >> 4), x0 + 4u * i + j + 16u, nc, cols);
		}
	}
#else
	for (uint i = 0u; i < 32u; i++) acc4(acc, deq(ro, 32u * u + i), x0 + i, nc, cols);
#endif
}
