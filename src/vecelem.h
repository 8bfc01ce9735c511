/*
 * vecelem.h
 *	  The elements of a vector stored in a gpuivf index, as float4, whatever
 *	  their width on disk.
 *
 * gpuivf indexes three types of one header layout (varlena header, int16
 * dim, int16 unused, then dim elements): codevec and pgvector's vector
 * (float4 elements) and pgvector's halfvec (IEEE 754 binary16 elements),
 * the last two through the codevec_pgvector companion's opclasses. The
 * element width follows from the value itself: its payload is 4 + dim * 4
 * or 4 + dim * 2 bytes. Every binary16 value is exactly a float4, so a
 * halfvec's elements read as float4 (the k-means, the list choice, the GPU
 * copy) are its values, and writing them back as binary16 gives the same
 * bits: the opclass's own distance function then sees what was stored.
 * codevec never links pgvector; the conversion is IEEE 754's, written out
 * (round to nearest, ties to even, as F16C's VCVTPS2PH with imm 0).
 */
#ifndef VECELEM_H
#define VECELEM_H

#include "postgres.h"

#include "codevec.h"

/* The header every indexed vector type shares (codevec.h's Codevec) */
#define VECELEM_HEADER		offsetof(Codevec, x)

/*
 * VecElemSize: bytes per element of the detoasted vector v (4 or 2); ERROR
 * XX002 for a payload that is neither (a type gpuivf cannot read).
 */
static inline int
VecElemSize(const void *v)
{
	const Codevec *c = (const Codevec *) v;
	Size		payload = VARSIZE(c) - VECELEM_HEADER;

	if (c->dim > 0 && payload == (Size) c->dim * 4)
		return 4;
	if (c->dim > 0 && payload == (Size) c->dim * 2)
		return 2;
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("vector of %d dimensions has %zu bytes of elements, neither float4 nor binary16",
					c->dim, payload)));
	pg_unreachable();
}

/* VecHalfToFloat: the float4 of binary16 bits h (exact) */
static inline float
VecHalfToFloat(uint16 h)
{
	uint32		sign = (uint32) (h & 0x8000) << 16;
	uint32		exp = (h >> 10) & 0x1f;
	uint32		man = h & 0x3ff;
	union
	{
		uint32		u;
		float		f;
	}			r;

	if (exp == 0x1f)
		r.u = sign | 0x7f800000 | (man << 13);	/* infinity, NaN */
	else if (exp != 0)
		r.u = sign | ((exp + 112) << 23) | (man << 13);
	else if (man == 0)
		r.u = sign;				/* +-0 */
	else
	{
		/* subnormal: man * 2^-24, exact in float4 */
		r.f = (float) man * (1.0f / 16777216.0f);
		r.u |= sign;
	}
	return r.f;
}

/* VecFloatToHalf: binary16 bits of f, round to nearest, ties to even */
static inline uint16
VecFloatToHalf(float f)
{
	union
	{
		float		f;
		uint32		u;
	}			v;
	uint32		sign,
				absu;

	v.f = f;
	sign = (v.u >> 16) & 0x8000;
	absu = v.u & 0x7fffffff;
	if (absu >= 0x7f800000)		/* infinity, NaN (quiet) */
		return sign | 0x7c00 | (absu > 0x7f800000 ? 0x200 : 0);
	if (absu >= 0x477ff000)		/* rounds past 65504 */
		return sign | 0x7c00;
	if (absu < 0x38800000)
	{
		/* a binary16 subnormal or zero: units of 2^-24, rounded to even */
		float		a;
		float		q;
		uint32		n;

		v.u = absu;
		a = v.f * 16777216.0f;	/* exact: a power of two */
		n = (uint32) a;
		q = a - (float) n;
		if (q > 0.5f || (q == 0.5f && (n & 1)))
			n++;
		return sign | n;
	}
	{
		uint32		e = ((absu >> 23) - 112) << 10;
		uint32		m = absu & 0x7fffff;
		uint32		h = e | (m >> 13);
		uint32		rest = m & 0x1fff;

		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++;				/* may carry into the exponent: correct */
		return sign | h;
	}
}

/*
 * VecElemToFloats: the dim elements of the detoasted vector v into out[dim]
 * as float4 (a copy for float4 elements, exact for binary16).
 */
static inline void
VecElemToFloats(const void *v, float *out)
{
	const Codevec *c = (const Codevec *) v;

	if (VecElemSize(v) == 4)
		memcpy(out, c->x, sizeof(float) * c->dim);
	else
	{
		const uint16 *h = (const uint16 *) c->x;

		for (int i = 0; i < c->dim; i++)
			out[i] = VecHalfToFloat(h[i]);
	}
}

/*
 * VecElemFromFloats: palloc a vector of dim elements x, of the element
 * width elemSize (4 or 2: VecElemSize of a value of the type wanted), with
 * the shared header. For binary16 the elements are rounded (exact when x
 * came from binary16).
 */
static inline void *
VecElemFromFloats(int elemSize, const float *x, int dim)
{
	Size		size = VECELEM_HEADER + (Size) elemSize * dim;
	Codevec    *c = palloc0(size);

	SET_VARSIZE(c, size);
	c->dim = dim;
	if (elemSize == 4)
		memcpy(c->x, x, sizeof(float) * dim);
	else
	{
		uint16	   *h = (uint16 *) c->x;

		for (int i = 0; i < dim; i++)
			h[i] = VecFloatToHalf(x[i]);
	}
	return c;
}

#endif							/* VECELEM_H */
