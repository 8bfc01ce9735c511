/*
 * numcheck.h
 *	  NaN-safe numeric comparisons for the C tests (test/c, test/embed,
 *	  test/cuda). A plain `e > tol` or `e > worst` is false when e is NaN,
 *	  so an encoder or kernel that returns NaN would pass; every helper here
 *	  treats NaN and +/-infinity as a failure instead:
 *	    - a check passes only when the comparison is true of finite numbers
 *	      (written `x <= limit`, never `!(x > limit)`);
 *	    - a running worst value, once NaN or infinite (of either sign),
 *	      stays so, and the final check on it fails.
 *	  Tested by numcheck_test.c, which feeds NaN and +/-infinity to each.
 *	  Header-only (static inline) so each test program includes it alone.
 */
#ifndef CODEVEC_NUMCHECK_H
#define CODEVEC_NUMCHECK_H

#include <math.h>
#include <stddef.h>

/* True iff x and limit are finite and x <= limit. */
static inline int
num_at_most(double x, double limit)
{
	return isfinite(x) && isfinite(limit) && x <= limit;
}

/* True iff x and limit are finite and x >= limit. */
static inline int
num_at_least(double x, double limit)
{
	return isfinite(x) && isfinite(limit) && x >= limit;
}

/* True iff got and want are finite and |got - want| <= tol (tol finite). */
static inline int
num_close(double got, double want, double tol)
{
	return isfinite(got) && isfinite(want) && isfinite(tol) && fabs(got - want) <= tol;
}

/* True iff every one of n floats is finite (n = 0: true). */
static inline int
num_all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

/*
 * Fold one error e into a running maximum *worst (start it at 0): a NaN or
 * infinite e (either sign) replaces *worst for good, a larger e replaces it.
 */
static inline void
num_worst_max(double *worst, double e)
{
	if (!isfinite(*worst))
		return;
	if (!isfinite(e) || !(e <= *worst))
		*worst = e;
}

/*
 * Fold one score c into a running minimum *worst (start it at a finite
 * value above every valid score, e.g. cosine 2): a NaN or infinite c
 * replaces *worst for good, a smaller c replaces it.
 */
static inline void
num_worst_min(double *worst, double c)
{
	if (!isfinite(*worst))
		return;
	if (!isfinite(c) || !(c >= *worst))
		*worst = c;
}

/*
 * Give ||a - b|| / ||b|| over n floats (||a - b|| when b is all zero),
 * computed in double; NaN or infinity when a or b holds one, so a check
 * with num_at_most fails.
 */
static inline double
num_rel_err(const float *a, const float *b, size_t n)
{
	double		d = 0,
				r = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (!isfinite(a[i]) || !isfinite(b[i]))
			return NAN;
		d += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
		r += (double) b[i] * b[i];
	}
	return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* Give the cosine of a and b over n floats in double; NaN for a zero or non-finite vector. */
static inline double
num_cosine(const float *a, const float *b, size_t n)
{
	double		ab = 0,
				aa = 0,
				bb = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (!isfinite(a[i]) || !isfinite(b[i]))
			return NAN;
		ab += (double) a[i] * b[i];
		aa += (double) a[i] * a[i];
		bb += (double) b[i] * b[i];
	}
	if (aa == 0 || bb == 0)
		return NAN;
	return ab / sqrt(aa * bb);
}

#endif							/* CODEVEC_NUMCHECK_H */
