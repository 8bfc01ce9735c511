/*
 * knnsize_test.c — cuda/knn.h's candidate sizes on the CPU: the fp16
 * path's re-rank count (codevec_knn_f16_kc2) and the largest k that keeps
 * k's buffers (codevec_knn_k_same_buffers), which gpuivf scans use to size
 * their first GPU request (src/gpuivfscan.c, GpuivfCandidatesFor).
 *
 * The reference is written apart from the header: kc2 as KERNELS.md states
 * it (k plus max(16, k/8), at most 2047), the buffers as the kernels size
 * them (the power of two at or above kc2 + 1), and the answer found by
 * trying every k' from k to the cap. Checked for every k of 1..2100 and
 * the caps 1024 (GPUIVF_GPU_MAX_K) and 2047, plus the values the comments
 * quote. Prints the counts; exit 1 on any difference.
 */
#include <stdio.h>

#include "../../cuda/knn.h"

static int	checks,
			failures;

static int
RefKc2(int k)
{
	int			m = k / 8 > 16 ? k / 8 : 16;

	return k + m > 2047 ? 2047 : k + m;
}

static int
RefBuffers(int k)
{
	int			p = 1;

	while (p < RefKc2(k) + 1)
		p <<= 1;
	return p;
}

static int
RefSame(int k, int cap)
{
	int			best = k;

	if (k <= 0 || k >= cap)
		return k;
	for (int kk = k; kk <= cap; kk++)
		if (RefBuffers(kk) == RefBuffers(k))
			best = kk;
	return best;
}

static void
Expect(const char *what, int k, int cap, int got, int want)
{
	checks++;
	if (got != want)
	{
		failures++;
		if (failures <= 20)
			printf("FAIL %s: k %d cap %d: got %d, want %d\n", what, k, cap, got, want);
	}
}

int
main(void)
{
	static const int caps[] = {1024, 2047};
	static const int quoted[][3] = {
		/* k, cap, same buffers: the comments' examples */
		{101, 1024, 111}, {128, 1024, 227}, {64, 1024, 111}, {47, 1024, 47},
		{10, 1024, 15}, {1000, 1024, 1024}, {1024, 1024, 1024}, {0, 1024, 0},
	};

	for (int k = 1; k <= 2100; k++)
	{
		Expect("kc2", k, 0, codevec_knn_f16_kc2(k), RefKc2(k));
		for (int c = 0; c < 2; c++)
		{
			int			got = codevec_knn_k_same_buffers(k, caps[c]);

			Expect("same buffers", k, caps[c], got, RefSame(k, caps[c]));
			if (k < caps[c])
			{
				/* never fewer than asked, never more than the cap */
				Expect("at least k", k, caps[c], got >= k, 1);
				Expect("at most the cap", k, caps[c], got <= caps[c], 1);
			}
		}
	}
	for (int i = 0; i < (int) (sizeof(quoted) / sizeof(quoted[0])); i++)
		Expect("quoted", quoted[i][0], quoted[i][1],
			   codevec_knn_k_same_buffers(quoted[i][0], quoted[i][1]), quoted[i][2]);
	printf("knnsize_test: %d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
