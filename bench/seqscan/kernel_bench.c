/*
 * kernel_bench.c
 *	  Throughput of each CPU distance kernel (src/distance_kernels.c) over
 *	  N x D float vectors against one query, beside the machine's measured
 *	  memory read bandwidth over the same buffer.
 *
 *	  kernel_bench [N] [D] [REPEATS]      (default 1000000 384 5)
 *
 * Bandwidth baseline: one pass summing the buffer with 8 independent
 * AVX-512 (or AVX2) accumulators, i.e. what a single core can read.
 * Kernel GB/s counts the bytes of the N vectors read once per pass.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distance_kernels.h"

/* Seconds on the monotonic clock */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sum n floats with 8 AVX-512 accumulators: the read-bandwidth probe */
__attribute__((target("avx512f"))) static float
read_sum512(const float *x, size_t n)
{
	__m512		s[8];
	size_t		i = 0;
	float		t;

	for (int k = 0; k < 8; k++)
		s[k] = _mm512_setzero_ps();
	for (; i + 128 <= n; i += 128)
		for (int k = 0; k < 8; k++)
			s[k] = _mm512_add_ps(s[k], _mm512_load_ps(x + i + 16 * k));
	for (int k = 1; k < 8; k++)
		s[0] = _mm512_add_ps(s[0], s[k]);
	t = _mm512_reduce_add_ps(s[0]);
	for (; i < n; i++)
		t += x[i];
	return t;
}

/* Sum n floats with 8 AVX2 accumulators (CPUs without AVX-512) */
__attribute__((target("avx2"))) static float
read_sum256(const float *x, size_t n)
{
	__m256		s[8];
	size_t		i = 0;
	float		out[8],
				t = 0;

	for (int k = 0; k < 8; k++)
		s[k] = _mm256_setzero_ps();
	for (; i + 64 <= n; i += 64)
		for (int k = 0; k < 8; k++)
			s[k] = _mm256_add_ps(s[k], _mm256_load_ps(x + i + 8 * k));
	for (int k = 1; k < 8; k++)
		s[0] = _mm256_add_ps(s[0], s[k]);
	_mm256_storeu_ps(out, s[0]);
	for (int k = 0; k < 8; k++)
		t += out[k];
	for (; i < n; i++)
		t += x[i];
	return t;
}

/* The widest read probe this CPU runs */
static float
read_sum(const float *x, size_t n)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") ? read_sum512(x, n) : read_sum256(x, n);
}

int
main(int argc, char **argv)
{
	size_t		n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	int			d = argc > 2 ? atoi(argv[2]) : 384;
	int			reps = argc > 3 ? atoi(argv[3]) : 5;
	float	   *x = aligned_alloc(64, ((n * d * sizeof(float)) + 63) / 64 * 64);
	float	   *q = aligned_alloc(64, 64 * ((d * sizeof(float) + 63) / 64));
	double		bytes = (double) n * d * sizeof(float);
	double		best = 1e30;
	volatile float sink = 0;
	const char *names[] = {"scalar", "avx2", "avx512"};

	srand(1);
	for (size_t i = 0; i < n * d; i++)
		x[i] = (float) rand() / RAND_MAX - 0.5f;
	for (int j = 0; j < d; j++)
		q[j] = (float) rand() / RAND_MAX - 0.5f;

	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		sink += read_sum(x, n * d);
		if (now() - t0 < best)
			best = now() - t0;
	}
	printf("memory read bandwidth (1 core, SIMD sum): %.2f GB/s (%.1f ms per %.2f GB pass)\n",
		   bytes / best / 1e9, best * 1e3, bytes / 1e9);
	printf("| kernel | metric | ms per pass | GB/s | %% of read bandwidth | Mvectors/s |\n");
	printf("|---|---|---|---|---|---|\n");
	{
		double		bw = bytes / best;

		for (int v = 0; v < 3; v++)
		{
			const CodevecKernels *k = CodevecKernelsByName(names[v]);

			if (k == NULL)
				continue;
			for (int m = 0; m < 3; m++)
			{
				double		kb = 1e30;

				for (int r = 0; r < reps; r++)
				{
					double		t0 = now();
					float		acc = 0,
								dot,
								na,
								nb;

					for (size_t i = 0; i < n; i++)
					{
						const float *row = x + i * d;

						if (m == 0)
							acc += k->l2_squared(q, row, d);
						else if (m == 1)
							acc += k->inner_product(q, row, d);
						else
						{
							k->cosine_parts(q, row, d, &dot, &na, &nb);
							acc += dot / (na * nb);
						}
					}
					sink += acc;
					if (now() - t0 < kb)
						kb = now() - t0;
				}
				printf("| %s | %s | %.1f | %.2f | %.0f%% | %.1f |\n", k->name,
					   m == 0 ? "l2" : m == 1 ? "inner product" : "cosine",
					   kb * 1e3, bytes / kb / 1e9, 100.0 * (bytes / kb) / bw, n / kb / 1e6);
			}
		}
	}
	return sink == 12345.0f;
}
