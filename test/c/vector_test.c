/*
 * vector_test.c
 *	  Unit tests of the codevec type's I/O (src/vector.c, run through
 *	  pgstub.c) and of every CPU distance kernel (src/distance_kernels.c)
 *	  against float64 references. Prints TAP.
 *
 *	  build and run: make -C test/c check
 */
#include "pgstub.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vector.h"
#include "distance_kernels.h"
#include "numcheck.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

extern Datum codevec_in(PG_FUNCTION_ARGS);
extern Datum codevec_out(PG_FUNCTION_ARGS);
extern Datum codevec_recv(PG_FUNCTION_ARGS);
extern Datum codevec_send(PG_FUNCTION_ARGS);

static int	n_tests = 0;
static int	n_failed = 0;

/* Record one TAP result */
static void
check(int ok, const char *fmt,...)
{
	va_list		ap;
	char		desc[1024];

	n_tests++;
	if (!ok)
		n_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_tests);
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	/* one result is one line: control characters of inputs are escaped */
	for (const char *c = desc; *c; c++)
		if (*c == '\n')
			fputs("\\n", stdout);
		else if (*c == '\t')
			fputs("\\t", stdout);
		else
			putchar(*c);
	printf("\n");
}

/* xorshift64*: a small seeded generator, so failures are reproducible */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* A random finite float from a uniformly random bit pattern */
static float
random_finite_float(void)
{
	for (;;)
	{
		uint32_t	bits = (uint32_t) (rng_next() >> 32);
		float		f;

		memcpy(&f, &bits, sizeof(f));
		if (isfinite(f))
			return f;
	}
}

/* Parse text with codevec_in; NULL when it raised an error */
static Codevec *
parse(const char *text, int32 typmod)
{
	Datum		d;

	if (pgstub_call(codevec_in, &d, 3, CStringGetDatum(text), ObjectIdGetDatum(0), Int32GetDatum(typmod)))
		return NULL;
	return (Codevec *) DatumGetPointer(d);
}

/* Print v with codevec_out */
static char *
print(Codevec *v)
{
	Datum		d;

	if (pgstub_call(codevec_out, &d, 1, PointerGetDatum(v), 0, 0))
		return NULL;
	return DatumGetCString(d);
}

/* Build a codevec from n floats */
static Codevec *
make_vec(const float *x, int n)
{
	Codevec    *v = InitCodevec(n);

	memcpy(v->x, x, sizeof(float) * n);
	return v;
}

/* Text round trip of random bit patterns and special values */
static void
test_text_round_trip(void)
{
	static const uint32_t specials[] = {
		0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
		0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0x3F800001, 0x3F7FFFFF, 0x4B800001,
		0x3DCCCCCD, 0x33D6BF95
	};
	const int	dim = 1000;
	const int	rounds = 6000;	/* 6M random patterns */
	float	   *x = malloc(sizeof(float) * dim);
	long		bad = 0;

	for (int r = 0; r < rounds; r++)
	{
		Codevec    *v,
				   *w;
		char	   *text;

		for (int i = 0; i < dim; i++)
			x[i] = random_finite_float();
		if (r == 0)
			for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
				memcpy(&x[i], &specials[i], sizeof(float));
		v = make_vec(x, dim);
		text = print(v);
		w = text ? parse(text, dim) : NULL;
		if (w == NULL || w->dim != dim || memcmp(w->x, x, sizeof(float) * dim) != 0)
			bad++;
		pgstub_reset();
	}
	check(bad == 0, "text round trip is bit-exact for %d random float4 bit patterns (%ld vectors differ)",
		  dim * rounds, bad);
	free(x);
}

/* Each malformed input raises its SQLSTATE */
static void
test_text_errors(void)
{
	static const struct
	{
		const char *text;
		int32		typmod;
		const char *sqlstate;
	}			cases[] = {
		{"", -1, "22P02"}, {"[", -1, "22P02"}, {"]", -1, "22P02"}, {"[1", -1, "22P02"},
		{"[1,]", -1, "22P02"}, {"[,]", -1, "22P02"}, {"[1 2]", -1, "22P02"}, {"[1]]", -1, "22P02"},
		{"[0x]", -1, "22P02"}, {"[1e5000]", -1, "22003"}, {"[1e-5000]", -1, "22003"},
		{"[nan]", -1, "22000"}, {"[-Infinity]", -1, "22000"}, {"[]", -1, "22000"},
		{"[1,2]", 3, "22000"}, {"[1,2,3]", 2, "22000"}, {"\t[ 1 ]\n", -1, NULL}, {"[+1.5e+1]", 1, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		Codevec    *v = parse(cases[i].text, cases[i].typmod);

		if (cases[i].sqlstate == NULL)
			check(v != NULL, "codevec_in accepts \"%s\"", cases[i].text);
		else
			check(v == NULL && strcmp(pgstub_sqlstate(pgstub_last_error.sqlerrcode), cases[i].sqlstate) == 0,
				  "codevec_in rejects \"%s\" with %s (got %s: %s)", cases[i].text, cases[i].sqlstate,
				  v ? "no error" : pgstub_sqlstate(pgstub_last_error.sqlerrcode), pgstub_last_error.message);
		pgstub_reset();
	}

	/* 16000 elements parse, 16001 are 54000 */
	{
		size_t		len = 16001 * 2 + 3;
		char	   *big = malloc(len);
		char	   *p = big;

		*p++ = '[';
		for (int i = 0; i < 16001; i++)
		{
			*p++ = '1';
			*p++ = ',';
		}
		p[-1] = ']';
		*p = '\0';
		check(parse(big, -1) == NULL && strcmp(pgstub_sqlstate(pgstub_last_error.sqlerrcode), "54000") == 0,
			  "16001 elements raise 54000");
		p[-3] = ']';
		p[-2] = '\0';
		check(parse(big, -1) != NULL, "16000 elements parse");
		free(big);
		pgstub_reset();
	}
}

/* Call codevec_recv on len bytes; NULL on error */
static Codevec *
recv_bytes(const char *bytes, int len, int32 typmod)
{
	StringInfoData buf;
	Datum		d;

	buf.data = palloc(len + 1);
	memcpy(buf.data, bytes, len);
	buf.data[len] = '\0';
	buf.len = len;
	buf.maxlen = len + 1;
	buf.cursor = 0;
	if (pgstub_call(codevec_recv, &d, 3, PointerGetDatum(&buf), ObjectIdGetDatum(0), Int32GetDatum(typmod)))
		return NULL;
	return (Codevec *) DatumGetPointer(d);
}

/* Binary send/recv round trip and malformed messages */
static void
test_binary(void)
{
	float		x[385];
	Codevec    *v,
			   *w;
	bytea	   *b;
	Datum		d;
	long		bad = 0;

	for (int r = 0; r < 2000; r++)
	{
		int			n = 1 + (int) (rng_next() % 385);

		for (int i = 0; i < n; i++)
			x[i] = random_finite_float();
		v = make_vec(x, n);
		if (pgstub_call(codevec_send, &d, 1, PointerGetDatum(v), 0, 0))
		{
			bad++;
			continue;
		}
		b = (bytea *) DatumGetPointer(d);
		w = recv_bytes(VARDATA(b), VARSIZE(b) - VARHDRSZ, n);
		if (w == NULL || w->dim != n || memcmp(w->x, x, sizeof(float) * n) != 0)
			bad++;
		pgstub_reset();
	}
	check(bad == 0, "binary send/recv round trip is bit-exact (2000 random vectors)");

	{
		static const struct
		{
			const char *bytes;
			int			len;
			int32		typmod;
			const char *sqlstate;
		}			cases[] = {
			{"", 0, -1, "08P01"},
			{"\x00", 1, -1, "08P01"},
			{"\x00\x01\x00", 3, -1, "08P01"},
			{"\x00\x00\x00\x00", 4, -1, "22000"},	/* zero dimensions */
			{"\xff\xff\x00\x00", 4, -1, "22000"},	/* negative */
			{"\x3e\x81\x00\x00", 4, -1, "54000"},	/* 16001 */
			{"\x00\x01\x00\x01\x3f\x80\x00\x00", 8, -1, "22P03"},	/* reserved != 0 */
			{"\x00\x02\x00\x00\x3f\x80\x00\x00", 8, -1, "22P03"},	/* short */
			{"\x00\x01\x00\x00\x7f\xc0\x00\x00", 8, -1, "22000"},	/* NaN */
			{"\x00\x01\x00\x00\xff\x80\x00\x00", 8, -1, "22000"},	/* -inf */
			{"\x00\x01\x00\x00\x3f\x80\x00\x00", 8, 2, "22000"},	/* typmod */
			{"\x00\x01\x00\x00\x3f\x80\x00\x00", 8, 1, NULL},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			w = recv_bytes(cases[i].bytes, cases[i].len, cases[i].typmod);
			if (cases[i].sqlstate == NULL)
				check(w != NULL && w->dim == 1 && w->x[0] == 1.0f, "codevec_recv accepts case %zu", i);
			else
				check(w == NULL && strcmp(pgstub_sqlstate(pgstub_last_error.sqlerrcode), cases[i].sqlstate) == 0,
					  "codevec_recv case %zu raises %s (got %s: %s)", i, cases[i].sqlstate,
					  w ? "no error" : pgstub_sqlstate(pgstub_last_error.sqlerrcode), pgstub_last_error.message);
			pgstub_reset();
		}
	}
}

/*
 * Place n floats so that the last one ends exactly at a PROT_NONE page:
 * any read past the end faults.
 */
static float *
guarded_floats(int n, void **base, size_t *maplen)
{
	long		page = sysconf(_SC_PAGESIZE);
	size_t		bytes = ((sizeof(float) * n + page - 1) / page + 1) * page;
	char	   *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		abort();
	mprotect(m + bytes - page, page, PROT_NONE);
	*base = m;
	*maplen = bytes;
	return (float *) (m + bytes - page) - n;
}

/* Every kernel variant against float64 references, every length 0..1100 */
static void
test_kernels(void)
{
	const char *names[] = {"scalar", "avx2", "avx512"};

	for (size_t v = 0; v < 3; v++)
	{
		const CodevecKernels *k = CodevecKernelsByName(names[v]);
		long		bad = 0,
					nondet = 0;

		if (k == NULL)
		{
			check(1, "%s kernels # SKIP not supported by this CPU", names[v]);
			continue;
		}
		for (int n = 0; n <= 1100; n++)
		{
			void	   *ba,
					   *bb;
			size_t		la,
						lb;
			float	   *a = guarded_floats(n, &ba, &la);
			float	   *b = guarded_floats(n, &bb, &lb);
			double		l2 = 0,
						ip = 0,
						aip = 0,
						l1 = 0,
						na = 0,
						nb = 0,
						tol;
			float		dot,
						fa,
						fb,
						dot2,
						fa2,
						fb2;

			for (int i = 0; i < n; i++)
			{
				a[i] = (float) ((double) (rng_next() >> 11) / 9007199254740992.0 * 2 - 1);
				b[i] = (float) ((double) (rng_next() >> 11) / 9007199254740992.0 * 2 - 1);
				l2 += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
				ip += (double) a[i] * b[i];
				aip += fabs((double) a[i] * b[i]);
				l1 += fabs((double) a[i] - b[i]);
				na += (double) a[i] * a[i];
				nb += (double) b[i] * b[i];
			}
			/* float32 summation error bound: (n + 1) ulp-halves of the sum of |terms| */
			tol = (n + 1) * 6e-8;
			/* num_close: a NaN or infinite kernel result is a mismatch */
			if (!num_close(k->l2_squared(a, b, n), l2, tol * l2 + 1e-30) ||
				!num_close(k->inner_product(a, b, n), ip, tol * aip + 1e-30) ||
				!num_close(k->l1(a, b, n), l1, tol * l1 + 1e-30))
				bad++;
			k->cosine_parts(a, b, n, &dot, &fa, &fb);
			if (!num_close(dot, ip, tol * aip + 1e-30) || !num_close(fa, na, tol * na + 1e-30) ||
				!num_close(fb, nb, tol * nb + 1e-30))
				bad++;
			k->cosine_parts(a, b, n, &dot2, &fa2, &fb2);
			if (dot != dot2 || fa != fa2 || fb != fb2 ||
				k->inner_product(a, b, n) != k->inner_product(a, b, n))
				nondet++;
			munmap(ba, la);
			munmap(bb, lb);
		}
		check(bad == 0, "%s kernels match float64 references for every length 0..1100 (%ld off), no read past the end",
			  names[v], bad);
		check(nondet == 0, "%s kernels are deterministic", names[v]);
	}
	check(CodevecKernelsBest() != NULL && CodevecKernelsByName("no-such") == NULL,
		  "dispatch picks %s and refuses unknown names", CodevecKernelsBest()->name);
}

int
main(void)
{
	test_text_round_trip();
	test_text_errors();
	test_binary();
	test_kernels();
	printf("1..%d\n", n_tests);
	return n_failed != 0;
}
