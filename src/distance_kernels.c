/*
 * distance_kernels.c
 *	  Scalar, AVX2 and AVX-512 distance kernels and their run-time dispatch.
 *
 * Design. A sequential scan over 384-dimension vectors reads 1.5 kB per row
 * and does ~768 flops on it, so a single core is bound by memory bandwidth
 * once the arithmetic is vectorised; what matters is that the kernel keeps
 * enough independent FMA chains in flight (two accumulators of 8 or 16 lanes)
 * and handles any length without a scalar slow path for the common case.
 *
 *	- scalar: one float accumulator per quantity, in index order; also the
 *	  reference the unit tests compare the SIMD variants with.
 *	- avx2: two 8-lane FMA accumulators over 16 elements per iteration, one
 *	  8-lane step, then a scalar tail of at most 7 elements.
 *	- avx512: two 16-lane accumulators over 32 elements per iteration, then a
 *	  masked load for the tail (no scalar loop at all).
 *
 * Lane sums are reduced in a fixed order, so a variant is deterministic.
 * The x86 variants are compiled with __attribute__((target(...))), not with
 * global -mavx2 flags, so the rest of the extension stays baseline x86-64 and
 * the binary runs on any x86-64 CPU; CodevecKernelsBest() checks CPUID.
 */
#include "distance_kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------------
 * Scalar
 * --------------------------------------------------------------------- */

/* Sum squared differences in index order */
static float
ScalarL2Squared(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
	{
		float		d = a[i] - b[i];

		s += d * d;
	}
	return s;
}

/* Sum products in index order */
static float
ScalarInnerProduct(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Sum absolute differences in index order */
static float
ScalarL1(const float *a, const float *b, int n)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += fabsf(a[i] - b[i]);
	return s;
}

/* Compute a.b, a.a and b.b in one pass */
static void
ScalarCosineParts(const float *a, const float *b, int n,
				  float *dot, float *na, float *nb)
{
	float		d = 0.0f,
				x = 0.0f,
				y = 0.0f;

	for (int i = 0; i < n; i++)
	{
		d += a[i] * b[i];
		x += a[i] * a[i];
		y += b[i] * b[i];
	}
	*dot = d;
	*na = x;
	*nb = y;
}

const CodevecKernels codevec_kernels_scalar = {
	"scalar", ScalarL2Squared, ScalarInnerProduct, ScalarL1, ScalarCosineParts
};

#if defined(__x86_64__)

/* ---------------------------------------------------------------------
 * AVX2 + FMA
 * --------------------------------------------------------------------- */

#define AVX2_TARGET __attribute__((target("avx2,fma")))

/* Add the 8 lanes of v in a fixed order */
AVX2_TARGET static inline float
Avx2HorizontalSum(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);
	__m128		s = _mm_add_ps(lo, hi);

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Sum squared differences, 16 elements per iteration */
AVX2_TARGET static float
Avx2L2Squared(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;
	float		s;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	if (i + 8 <= n)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		i += 8;
	}
	s = Avx2HorizontalSum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		s += d * d;
	}
	return s;
}

/* Sum products, 16 elements per iteration */
AVX2_TARGET static float
Avx2InnerProduct(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;
	float		s;

	for (; i + 16 <= n; i += 16)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	if (i + 8 <= n)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		i += 8;
	}
	s = Avx2HorizontalSum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Sum absolute differences (sign bit cleared with an and-not) */
AVX2_TARGET static float
Avx2L1(const float *a, const float *b, int n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;
	float		s;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, d0));
		s1 = _mm256_add_ps(s1, _mm256_andnot_ps(sign, d1));
	}
	if (i + 8 <= n)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, d0));
		i += 8;
	}
	s = Avx2HorizontalSum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += fabsf(a[i] - b[i]);
	return s;
}

/* Compute a.b, a.a and b.b in one pass, 8 elements per iteration */
AVX2_TARGET static void
Avx2CosineParts(const float *a, const float *b, int n,
				float *dot, float *na, float *nb)
{
	__m256		sd = _mm256_setzero_ps();
	__m256		sa = _mm256_setzero_ps();
	__m256		sb = _mm256_setzero_ps();
	int			i = 0;
	float		d,
				x,
				y;

	for (; i + 8 <= n; i += 8)
	{
		__m256		va = _mm256_loadu_ps(a + i);
		__m256		vb = _mm256_loadu_ps(b + i);

		sd = _mm256_fmadd_ps(va, vb, sd);
		sa = _mm256_fmadd_ps(va, va, sa);
		sb = _mm256_fmadd_ps(vb, vb, sb);
	}
	d = Avx2HorizontalSum(sd);
	x = Avx2HorizontalSum(sa);
	y = Avx2HorizontalSum(sb);
	for (; i < n; i++)
	{
		d += a[i] * b[i];
		x += a[i] * a[i];
		y += b[i] * b[i];
	}
	*dot = d;
	*na = x;
	*nb = y;
}

const CodevecKernels codevec_kernels_avx2 = {
	"avx2", Avx2L2Squared, Avx2InnerProduct, Avx2L1, Avx2CosineParts
};

/* ---------------------------------------------------------------------
 * AVX-512F
 * --------------------------------------------------------------------- */

#define AVX512_TARGET __attribute__((target("avx512f")))

/* Mask of the first r (0..15) lanes */
AVX512_TARGET static inline __mmask16
Avx512TailMask(int r)
{
	return (__mmask16) ((1u << r) - 1u);
}

/* Sum squared differences, 32 elements per iteration, masked tail */
AVX512_TARGET static float
Avx512L2Squared(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = (n - i >= 16) ? (__mmask16) 0xFFFF : Avx512TailMask(n - i);
		__m512		d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* Sum products, 32 elements per iteration, masked tail */
AVX512_TARGET static float
Avx512InnerProduct(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = (n - i >= 16) ? (__mmask16) 0xFFFF : Avx512TailMask(n - i);

		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* Sum absolute differences, masked tail */
AVX512_TARGET static float
Avx512L1(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));

		s0 = _mm512_add_ps(s0, _mm512_abs_ps(d0));
		s1 = _mm512_add_ps(s1, _mm512_abs_ps(d1));
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = (n - i >= 16) ? (__mmask16) 0xFFFF : Avx512TailMask(n - i);
		__m512		d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));

		s0 = _mm512_add_ps(s0, _mm512_abs_ps(d0));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* Compute a.b, a.a and b.b in one pass, 32 elements per iteration, masked tail */
AVX512_TARGET static void
Avx512CosineParts(const float *a, const float *b, int n,
				  float *dot, float *na, float *nb)
{
	__m512		sd0 = _mm512_setzero_ps(),
				sd1 = _mm512_setzero_ps();
	__m512		sa0 = _mm512_setzero_ps(),
				sa1 = _mm512_setzero_ps();
	__m512		sb0 = _mm512_setzero_ps(),
				sb1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		va0 = _mm512_loadu_ps(a + i);
		__m512		vb0 = _mm512_loadu_ps(b + i);
		__m512		va1 = _mm512_loadu_ps(a + i + 16);
		__m512		vb1 = _mm512_loadu_ps(b + i + 16);

		sd0 = _mm512_fmadd_ps(va0, vb0, sd0);
		sa0 = _mm512_fmadd_ps(va0, va0, sa0);
		sb0 = _mm512_fmadd_ps(vb0, vb0, sb0);
		sd1 = _mm512_fmadd_ps(va1, vb1, sd1);
		sa1 = _mm512_fmadd_ps(va1, va1, sa1);
		sb1 = _mm512_fmadd_ps(vb1, vb1, sb1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = (n - i >= 16) ? (__mmask16) 0xFFFF : Avx512TailMask(n - i);
		__m512		va = _mm512_maskz_loadu_ps(m, a + i);
		__m512		vb = _mm512_maskz_loadu_ps(m, b + i);

		sd0 = _mm512_fmadd_ps(va, vb, sd0);
		sa0 = _mm512_fmadd_ps(va, va, sa0);
		sb0 = _mm512_fmadd_ps(vb, vb, sb0);
	}
	*dot = _mm512_reduce_add_ps(_mm512_add_ps(sd0, sd1));
	*na = _mm512_reduce_add_ps(_mm512_add_ps(sa0, sa1));
	*nb = _mm512_reduce_add_ps(_mm512_add_ps(sb0, sb1));
}

const CodevecKernels codevec_kernels_avx512 = {
	"avx512", Avx512L2Squared, Avx512InnerProduct, Avx512L1, Avx512CosineParts
};

#endif							/* __x86_64__ */

/* ---------------------------------------------------------------------
 * Dispatch
 * --------------------------------------------------------------------- */

/* Say whether this CPU can run the named x86 variant */
static int
CpuSupports(const char *name)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (strcmp(name, "avx512") == 0)
		return __builtin_cpu_supports("avx512f");
	if (strcmp(name, "avx2") == 0)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
	return strcmp(name, "scalar") == 0;
}

const CodevecKernels *
CodevecKernelsByName(const char *name)
{
	if (name == NULL || !CpuSupports(name))
		return NULL;
	if (strcmp(name, "scalar") == 0)
		return &codevec_kernels_scalar;
#if defined(__x86_64__)
	if (strcmp(name, "avx2") == 0)
		return &codevec_kernels_avx2;
	if (strcmp(name, "avx512") == 0)
		return &codevec_kernels_avx512;
#endif
	return NULL;
}

const CodevecKernels *
CodevecKernelsBest(void)
{
	static const char *const order[] = {"avx512", "avx2", "scalar"};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
	{
		const CodevecKernels *k = CodevecKernelsByName(order[i]);

		if (k != NULL)
			return k;
	}
	return &codevec_kernels_scalar;
}
