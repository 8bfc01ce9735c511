/*
 * distance_kernels.h
 *	  Vector distance kernels for the CPU, with run-time dispatch.
 *
 * Pure C (no PostgreSQL headers) so the kernels can be unit-tested and
 * benchmarked outside the server. Each kernel takes two arrays of n float
 * elements (n >= 0, any value, not only multiples of the vector width) and
 * accumulates in float32 lanes; the lane sums are added in a fixed order, so
 * one variant always returns the same bits for the same inputs. Different
 * variants may differ in the last bits (different summation order).
 *
 * Variants: scalar (any CPU), AVX2+FMA and AVX-512F (x86-64 only, compiled
 * with per-function target attributes so one binary runs on any x86-64 CPU).
 * CodevecKernelsBest() picks the widest one the running CPU supports, through
 * the compiler's __builtin_cpu_supports() (CPUID).
 */
#ifndef CODEVEC_DISTANCE_KERNELS_H
#define CODEVEC_DISTANCE_KERNELS_H

typedef struct CodevecKernels
{
	const char *name;			/* "scalar", "avx2", "avx512" */
	/* sum of (a[i] - b[i])^2 */
	float		(*l2_squared) (const float *a, const float *b, int n);
	/* sum of a[i] * b[i] */
	float		(*inner_product) (const float *a, const float *b, int n);
	/* sum of |a[i] - b[i]| */
	float		(*l1) (const float *a, const float *b, int n);
	/* dot = a.b, na = a.a, nb = b.b in one pass */
	void		(*cosine_parts) (const float *a, const float *b, int n,
								 float *dot, float *na, float *nb);
} CodevecKernels;

extern const CodevecKernels codevec_kernels_scalar;
#if defined(__x86_64__)
extern const CodevecKernels codevec_kernels_avx2;
extern const CodevecKernels codevec_kernels_avx512;
#endif

/*
 * CodevecKernelsBest: return the widest variant this CPU can run.
 */
extern const CodevecKernels *CodevecKernelsBest(void);

/*
 * CodevecKernelsByName: return the variant called name ("scalar", "avx2",
 * "avx512"), or NULL when unknown or not supported by this CPU.
 */
extern const CodevecKernels *CodevecKernelsByName(const char *name);

#endif							/* CODEVEC_DISTANCE_KERNELS_H */
