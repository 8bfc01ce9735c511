/*
 * numcheck_test.c
 *	  Tests of the NaN-safe comparison helpers (numcheck.h) that the C tests
 *	  use: each helper is fed NaN, +infinity and -infinity in every argument
 *	  and must report failure, and ordinary finite values on both sides of
 *	  the limit must give the plain answer. Prints TAP with its plan last.
 *
 *	  build and run: make -C test/c check
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "numcheck.h"

static int	n_tests = 0;
static int	n_failed = 0;

/* Record one TAP result */
static void
check(int ok, const char *fmt,...)
{
	va_list		ap;

	n_tests++;
	if (!ok)
		n_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int
main(void)
{
	const double bad[] = {NAN, INFINITY, -INFINITY};
	const char *names[] = {"NaN", "+inf", "-inf"};

	/* finite values: the plain answers */
	check(num_at_most(1, 2) && num_at_most(2, 2) && !num_at_most(3, 2), "num_at_most on finite values");
	check(num_at_least(3, 2) && num_at_least(2, 2) && !num_at_least(1, 2), "num_at_least on finite values");
	check(num_close(1.0, 1.05, 0.1) && !num_close(1.0, 1.2, 0.1) && num_close(-1, -1, 0),
		  "num_close on finite values");

	for (int i = 0; i < 3; i++)
	{
		double		v = bad[i];
		double		w;
		float		x[4] = {1, 2, 3, 4},
					y[4] = {1, 2, 3, 4};

		check(!num_at_most(v, 1) && !num_at_most(0, v), "num_at_most fails for %s (value and limit)", names[i]);
		check(!num_at_least(v, 0) && !num_at_least(1, v), "num_at_least fails for %s (value and limit)", names[i]);
		check(!num_close(v, 0, 1e300) && !num_close(0, v, 1e300) && !num_close(v, v, 1e300) &&
			  !num_close(0, 0, v), "num_close fails for %s in got, want, both and tol", names[i]);

		w = 0;
		num_worst_max(&w, 1e-9);
		num_worst_max(&w, v);
		num_worst_max(&w, 1e-7);
		check(!num_at_most(w, 1e-5), "num_worst_max then num_at_most: a %s error among small ones fails (worst %g)",
			  names[i], w);

		w = 2;
		num_worst_min(&w, 0.99999999);
		num_worst_min(&w, v);
		num_worst_min(&w, 0.9999999);
		check(!num_at_least(w, 0.9999), "num_worst_min then num_at_least: a %s score among good ones fails (worst %g)",
			  names[i], w);

		check(num_all_finite(x, 4), "num_all_finite accepts four finite floats");
		x[2] = (float) v;
		check(!num_all_finite(x, 4), "num_all_finite fails for a %s element", names[i]);
		check(!num_at_most(num_rel_err(x, y, 4), 1e-5) && !num_at_most(num_rel_err(y, x, 4), 1e-5),
			  "num_rel_err of a vector holding %s fails the check (either side)", names[i]);
		check(!num_at_least(num_cosine(x, y, 4), 0.9999) && !num_at_least(num_cosine(y, x, 4), 0.9999),
			  "num_cosine of a vector holding %s fails the check (either side)", names[i]);
	}

	/* all-NaN output, the case the old `if (e > worst)` let through */
	{
		float		out[8],
					ref[8];
		double		w = 0;

		for (int i = 0; i < 8; i++)
		{
			out[i] = NAN;
			ref[i] = (float) i;
		}
		for (int i = 0; i < 8; i++)
			num_worst_max(&w, fabs((double) out[i] - ref[i]));
		check(isnan(w) && !num_at_most(w, 1e-5), "an output of only NaN makes the worst error NaN and fails");
	}
	check(num_rel_err((const float[]){1, 2}, (const float[]){1, 2}, 2) == 0 &&
		  num_at_most(num_rel_err((const float[]){1, 2.00001f}, (const float[]){1, 2}, 2), 1e-5) &&
		  !num_at_most(num_rel_err((const float[]){1, 3}, (const float[]){1, 2}, 2), 1e-5),
		  "num_rel_err on finite vectors: equal 0, close within 1e-5, far not");
	check(fabs(num_cosine((const float[]){1, 0}, (const float[]){0, 1}, 2)) < 1e-15 &&
		  fabs(num_cosine((const float[]){1, 1}, (const float[]){2, 2}, 2) - 1) < 1e-15 &&
		  isnan(num_cosine((const float[]){0, 0}, (const float[]){1, 1}, 2)),
		  "num_cosine: orthogonal 0, parallel 1, zero vector NaN");
	printf("1..%d\n", n_tests);
	return n_failed != 0;
}
