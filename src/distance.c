/*
 * distance.c
 *	  SQL-callable distance functions over codevec, spelled as pgvector does:
 *	  <-> l2_distance, <#> negative inner product, <=> cosine_distance, plus
 *	  l1_distance, inner_product and l2_squared_distance.
 *
 * The arithmetic is in distance_kernels.c; this file checks dimensions and
 * turns the float32 sums into float8 results. The kernel variant is chosen
 * once per backend (the widest the CPU supports) and can be pinned with the
 * GUC codevec.cpu_kernels, which the tests use to compare every variant.
 */
#include "postgres.h"

#include <math.h>

#include "vector.h"
#include "distance.h"
#include "distance_kernels.h"
#include "fmgr.h"
#include "utils/float.h"
#include "utils/guc.h"

const CodevecKernels *codevec_kernels = &codevec_kernels_scalar;

static int	codevec_cpu_kernels_guc = 0;

static const struct config_enum_entry cpu_kernels_options[] = {
	{"auto", 0, false},
	{"scalar", 1, false},
	{"avx2", 2, false},
	{"avx512", 3, false},
	{NULL, 0, false}
};

/* Map a codevec.cpu_kernels value to its kernels, NULL if unsupported */
static const CodevecKernels *
KernelsForSetting(int value)
{
	if (value == 0)
		return CodevecKernelsBest();
	return CodevecKernelsByName(cpu_kernels_options[value].name);
}

/* Refuse a kernel variant this CPU cannot run */
static bool
CheckCpuKernels(int *newval, void **extra, GucSource source)
{
	if (KernelsForSetting(*newval) == NULL)
	{
		GUC_check_errdetail("This CPU does not support the \"%s\" kernels.",
							cpu_kernels_options[*newval].name);
		return false;
	}
	return true;
}

/* Switch the kernels used by every distance function */
static void
AssignCpuKernels(int newval, void *extra)
{
	codevec_kernels = KernelsForSetting(newval);
}

void
CodevecDistanceInit(void)
{
	codevec_kernels = CodevecKernelsBest();
	DefineCustomEnumVariable("codevec.cpu_kernels",
							 "Selects the CPU distance kernels.",
							 "auto picks the widest the CPU supports (avx512, avx2, scalar).",
							 &codevec_cpu_kernels_guc,
							 0,
							 cpu_kernels_options,
							 PGC_USERSET,
							 0,
							 CheckCpuKernels, AssignCpuKernels, NULL);
}

/* Cosine distance 1 - a.b / (|a| |b|), clamped to [0, 2]; NaN for a zero vector */
double
CodevecCosineDistance(const float *a, const float *b, int n)
{
	float		dot,
				na,
				nb;
	double		sim;

	codevec_kernels->cosine_parts(a, b, n, &dot, &na, &nb);
	if (na == 0.0f || nb == 0.0f)
		return get_float8_nan();
	sim = (double) dot / sqrt((double) na * (double) nb);
	if (sim > 1.0)
		sim = 1.0;
	else if (sim < -1.0)
		sim = -1.0;
	return 1.0 - sim;
}

#define CODEVEC_DISTANCE_FUNCTION(name, expr) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Codevec    *a = PG_GETARG_CODEVEC_P(0); \
	Codevec    *b = PG_GETARG_CODEVEC_P(1); \
	double		r; \
	CodevecCheckSameDims(a, b, #name); \
	r = (expr); \
	PG_FREE_IF_COPY(a, 0); \
	PG_FREE_IF_COPY(b, 1); \
	PG_RETURN_FLOAT8(r); \
}

/* l2_distance: sqrt(sum (a-b)^2), the <-> operator */
CODEVEC_DISTANCE_FUNCTION(l2_distance,
						  sqrt((double) codevec_kernels->l2_squared(a->x, b->x, a->dim)))
/* l2_squared_distance: sum (a-b)^2, same order as l2_distance, cheaper */
CODEVEC_DISTANCE_FUNCTION(l2_squared_distance,
						  (double) codevec_kernels->l2_squared(a->x, b->x, a->dim))
/* inner_product: sum a*b */
CODEVEC_DISTANCE_FUNCTION(inner_product,
						  (double) codevec_kernels->inner_product(a->x, b->x, a->dim))
/* negative_inner_product: -(sum a*b), the <#> operator (smaller = closer) */
CODEVEC_DISTANCE_FUNCTION(negative_inner_product,
						  -(double) codevec_kernels->inner_product(a->x, b->x, a->dim))
/* cosine_distance: 1 - cos(a, b), the <=> operator */
CODEVEC_DISTANCE_FUNCTION(cosine_distance, CodevecCosineDistance(a->x, b->x, a->dim))
/* l1_distance: sum |a-b| */
CODEVEC_DISTANCE_FUNCTION(l1_distance,
						  (double) codevec_kernels->l1(a->x, b->x, a->dim))
