/*
 * test_bm25.cu — cuda/bm25_device.cu against a CPU reference, and its speed.
 *
 * The reference scores a query as src/bm25bmp.c does (a document's sum
 * starts at 0 and adds idf * (double) impact term by term in the query's
 * order; this file is built with -ffp-contract=off, so nothing is fused),
 * keeps every document some term names, sorts by (score descending,
 * document) and keeps k. The device's documents and scores must be the
 * same, bit for bit, for:
 *   - random corpora (Zipf-like document frequencies) loaded in pieces that
 *     split terms, queries of 1..16 terms, k 1, 10, 100, 1000 and 4096;
 *   - ties: terms whose impacts are all equal (many equal sums: the k
 *     lowest documents of the tied score), a term that names every document;
 *   - fewer scored documents than k, terms without postings, no terms;
 *   - a term of zero idf (every sum +0);
 * and bad input must be refused (ERR_ARG): postings out of order, a
 * document out of range, a NaN impact, a piece out of order, a query
 * before the store is whole, a term given twice, k out of range.
 * Outputs are poisoned before each call, so an unwritten slot fails.
 *
 * codevec_cuda_bm25_topk_batch (one cooperative launch for several
 * queries) must give each query the same answer: batches of 1, 7 and 31
 * random queries, the first a tied term at k 1000 (its ties pass a batch
 * query's room, so it is answered again alone).
 * Then the speed at the Linux tree's size (785,000 documents, about 40 M
 * postings; --quick skips it): the mean and median wall time of a top-k
 * (k 10 and 100) over 200 queries of 3-10 terms, what the GPU service
 * would wait for.
 *
 * usage: test_bm25 [--quick | --speed] [--seed N]   (exit status 0 = all passed)
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <algorithm>
#include <vector>

#include "../../cuda/bm25_device.h"

static int	failures = 0,
			passes = 0;

#define CHECK(cond, ...) do { \
	if (cond) passes++; \
	else { failures++; printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
Rand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double
Unit(void)
{
	return (Rand() >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct Corpus
{
	uint32_t	ndocs,
				nterms;
	std::vector<uint64_t> start;	/* nterms + 1 */
	std::vector<uint32_t> docs;
	std::vector<float> imp;
} Corpus;

/*
 * A corpus of ndocs documents and nterms terms: term t has about
 * ndocs * maxfrac / (t + 1)^zipf postings (at least 1, except every
 * seventh term from 5 on, which has none), impacts in (0, 4); every
 * eleventh term's impacts are all 1.5 (ties), term 1 names every document.
 */
static void
MakeCorpus(Corpus *c, uint32_t ndocs, uint32_t nterms, double maxfrac, double zipf)
{
	std::vector<uint32_t> pick;

	c->ndocs = ndocs;
	c->nterms = nterms;
	c->start.assign(1, 0);
	c->docs.clear();
	c->imp.clear();
	for (uint32_t t = 0; t < nterms; t++)
	{
		uint64_t	df = (uint64_t) (ndocs * maxfrac / pow(t + 1.0, zipf));

		if (df < 1)
			df = 1;
		if (t == 1)
			df = ndocs;
		if (t >= 5 && t % 7 == 5)
			df = 0;
		if (df > ndocs)
			df = ndocs;
		pick.clear();
		if (df == ndocs)
			for (uint32_t d = 0; d < ndocs; d++)
				pick.push_back(d);
		else if (df > ndocs / 4)
		{
			/* each document with probability df / ndocs */
			for (uint32_t d = 0; d < ndocs; d++)
				if (Unit() * ndocs < df)
					pick.push_back(d);
		}
		else
			while (pick.size() < df)
			{
				for (uint64_t i = pick.size(); i < df; i++)
					pick.push_back((uint32_t) (Rand() % ndocs));
				std::sort(pick.begin(), pick.end());
				pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
			}
		for (uint32_t d : pick)
		{
			c->docs.push_back(d);
			c->imp.push_back(t % 11 == 0 ? 1.5f : (float) (Unit() * 4.0));
		}
		c->start.push_back(c->docs.size());
	}
}

/* the reference top-k (docs, scores) of a query */
static int
RefTopk(const Corpus *c, int nt, const uint32_t *terms, const double *idf, int k,
		std::vector<uint32_t> &docs, std::vector<double> &scores)
{
	std::vector<double> acc(c->ndocs, 0.0);
	std::vector<bool> seen(c->ndocs, false);
	std::vector<uint32_t> hit;

	for (int i = 0; i < nt; i++)
		for (uint64_t p = c->start[terms[i]]; p < c->start[terms[i] + 1]; p++)
		{
			uint32_t	d = c->docs[p];
			double		x = idf[i] * (double) c->imp[p];

			if (!seen[d])
			{
				seen[d] = true;
				acc[d] = 0;
				hit.push_back(d);
			}
			acc[d] += x;
		}
	std::sort(hit.begin(), hit.end(), [&](uint32_t a, uint32_t b) {
		return acc[a] > acc[b] || (acc[a] == acc[b] && a < b);
	});
	if ((int) hit.size() > k)
		hit.resize(k);
	docs = hit;
	scores.clear();
	for (uint32_t d : hit)
		scores.push_back(acc[d]);
	return (int) hit.size();
}

/* load c into a new store in pieces of about piece postings */
static CodevecCudaBm25
Load(const Corpus *c, uint64_t piece)
{
	CodevecCudaBm25 s = NULL;
	char		err[256];
	int			rc = codevec_cuda_bm25_create(c->ndocs, c->nterms, c->start.data(), &s, err, sizeof(err));

	CHECK(rc == CODEVEC_CUDA_OK, "create: %d %s", rc, err);
	if (rc != CODEVEC_CUDA_OK)
		return NULL;
	for (uint64_t p = 0; p < c->docs.size(); p += piece)
	{
		uint64_t	n = std::min<uint64_t>(piece, c->docs.size() - p);

		rc = codevec_cuda_bm25_load(s, p, n, c->docs.data() + p, c->imp.data() + p, err, sizeof(err));
		if (rc != CODEVEC_CUDA_OK)
		{
			CHECK(0, "load [%llu, +%llu): %d %s", (unsigned long long) p, (unsigned long long) n, rc, err);
			codevec_cuda_bm25_free(s);
			return NULL;
		}
	}
	return s;
}

/* one query on the device and on the CPU; true when they agree */
static bool
Compare(CodevecCudaBm25 s, const Corpus *c, int nt, const uint32_t *terms, const double *idf, int k,
		const char *what)
{
	std::vector<uint32_t> rdocs,
				gdocs(k, 0xdeadbeef);
	std::vector<double> rscores,
				gscores(k, nan(""));
	int			gn = -7,
				rn = RefTopk(c, nt, terms, idf, k, rdocs, rscores);
	char		err[256];
	int			rc = codevec_cuda_bm25_topk(s, nt, terms, idf, k, gdocs.data(), gscores.data(), &gn,
											err, sizeof(err));

	if (rc != CODEVEC_CUDA_OK)
	{
		CHECK(0, "%s: topk %d %s", what, rc, err);
		return false;
	}
	if (gn != rn)
	{
		CHECK(0, "%s (k %d, %d terms): %d results, want %d", what, k, nt, gn, rn);
		return false;
	}
	for (int i = 0; i < rn; i++)
		if (gdocs[i] != rdocs[i] || memcmp(&gscores[i], &rscores[i], sizeof(double)) != 0)
		{
			CHECK(0, "%s (k %d, %d terms): place %d is document %u score %.17g, want %u %.17g",
				  what, k, nt, i, gdocs[i], gscores[i], rdocs[i], rscores[i]);
			return false;
		}
	passes++;
	return true;
}

/*
 * nq random queries (and, first, a tied term at k 1000, whose ties pass a
 * batch query's room) in one codevec_cuda_bm25_topk_batch, each against
 * the reference; the number that differ
 */
static int RandomQuery(const Corpus *c, int nt, uint32_t *terms, double *idf);

static int
CompareBatch(CodevecCudaBm25 s, const Corpus *c, int nq)
{
	const int	ks[] = {1, 10, 100, 1000, 4096};
	std::vector<CodevecCudaBm25Query> qs(nq);
	std::vector<std::vector<uint32_t>> terms(nq, std::vector<uint32_t>(16)),
				docs(nq);
	std::vector<std::vector<double>> idf(nq, std::vector<double>(16)),
				scores(nq);
	std::vector<int> nout(nq, -7);
	char		err[256];
	int			bad = 0,
				rc;

	for (int q = 0; q < nq; q++)
	{
		int			k = q == 0 ? 1000 : ks[Rand() % 5];
		int			nt = q == 0 ? 1 : RandomQuery(c, 1 + (int) (Rand() % 16), terms[q].data(), idf[q].data());

		if (q == 0)
		{
			terms[q][0] = 11;	/* impacts all equal: df ties */
			idf[q][0] = 1.25;
		}
		docs[q].assign(k, 0xdeadbeef);
		scores[q].assign(k, nan(""));
		qs[q] = {nt, terms[q].data(), idf[q].data(), k, docs[q].data(), scores[q].data(), &nout[q]};
	}
	rc = codevec_cuda_bm25_topk_batch(s, qs.data(), nq, err, sizeof(err));
	if (rc != CODEVEC_CUDA_OK)
	{
		CHECK(0, "batch of %d: %d %s", nq, rc, err);
		return nq;
	}
	for (int q = 0; q < nq; q++)
	{
		std::vector<uint32_t> rdocs;
		std::vector<double> rscores;
		int			rn = RefTopk(c, qs[q].nt, qs[q].terms, qs[q].idf, qs[q].k, rdocs, rscores);
		bool		same = nout[q] == rn;

		for (int i = 0; same && i < rn; i++)
			same = docs[q][i] == rdocs[i] && memcmp(&scores[q][i], &rscores[i], sizeof(double)) == 0;
		if (!same)
		{
			bad++;
			if (bad == 1)
				printf("FAIL: batch of %d, query %d (k %d, %d terms): %d results, want %d\n",
					   nq, q, qs[q].k, qs[q].nt, nout[q], rn);
		}
	}
	return bad;
}

/* random distinct terms, biased to the frequent ones; idf in (0.1, 8) */
static int
RandomQuery(const Corpus *c, int nt, uint32_t *terms, double *idf)
{
	int			n = 0;

	while (n < nt)
	{
		uint32_t	t = (uint32_t) (pow(Unit(), 2.0) * c->nterms);
		bool		dup = false;

		if (t >= c->nterms)
			t = c->nterms - 1;
		for (int i = 0; i < n; i++)
			dup |= terms[i] == t;
		if (dup)
			continue;
		terms[n] = t;
		idf[n] = 0.1 + Unit() * 7.9;
		n++;
	}
	return n;
}

static void
Correctness(uint32_t ndocs, uint32_t nterms, double maxfrac, int nqueries)
{
	Corpus		c;
	CodevecCudaBm25 s;
	const int	ks[] = {1, 10, 100, 1000, 4096};
	uint32_t	terms[16];
	double		idf[16];
	char		what[64];
	int			bad = 0;

	MakeCorpus(&c, ndocs, nterms, maxfrac, 0.9);
	s = Load(&c, 1 + c.docs.size() / 7);
	if (s == NULL)
		return;
	printf("corpus: %u documents, %u terms, %zu postings\n", ndocs, nterms, c.docs.size());
	for (int q = 0; q < nqueries; q++)
		for (int ki = 0; ki < 5; ki++)
		{
			int			nt = 1 + (int) (Rand() % 16);

			nt = RandomQuery(&c, nt, terms, idf);
			snprintf(what, sizeof(what), "random query %d", q);
			bad += !Compare(s, &c, nt, terms, idf, ks[ki], what);
		}
	/* ties: term 0 and every eleventh have equal impacts */
	terms[0] = 11;
	idf[0] = 2.0;
	for (int ki = 0; ki < 5; ki++)
		Compare(s, &c, 1, terms, idf, ks[ki], "one term of equal impacts (ties by document)");
	terms[0] = 1;
	idf[0] = 0.75;
	for (int ki = 0; ki < 5; ki++)
		Compare(s, &c, 1, terms, idf, ks[ki], "a term in every document");
	terms[1] = 22;
	idf[1] = 3.0;
	Compare(s, &c, 2, terms, idf, 100, "every document and a tied term");
	/* terms without postings, and a rare term: fewer documents than k */
	terms[0] = 12;
	idf[0] = 1.0;
	Compare(s, &c, 1, terms, idf, 10, "a term without postings");
	terms[0] = nterms - 1;
	terms[1] = 12;
	idf[1] = 5.0;
	Compare(s, &c, 2, terms, idf, 4096, "a rare term and one without postings (fewer than k)");
	Compare(s, &c, 0, terms, idf, 10, "no terms");
	/* zero idf: every sum +0, ties by document */
	terms[0] = 3;
	idf[0] = 0.0;
	terms[1] = 4;
	idf[1] = -0.0;
	Compare(s, &c, 2, terms, idf, 100, "zero idf (+0 and -0)");
	CHECK(bad == 0, "%d random queries differ", bad);
	bad = 0;
	for (int nq = 1; nq <= 64; nq = nq * 4 + 3)
		bad += CompareBatch(s, &c, nq);
	CHECK(bad == 0, "batches of 1, 7 and 31 queries: %d differ from the reference", bad);
	codevec_cuda_bm25_free(s);
}

static void
BadInput(void)
{
	const uint64_t start[4] = {0, 3, 3, 5};
	uint32_t	docs[5] = {1, 4, 9, 2, 3};
	float		imp[5] = {1, 2, 3, 4, 5};
	uint32_t	out[8],
				terms[2] = {0, 0};
	double		scores[8],
				idf[2] = {1, 1};
	char		err[256];
	int			n,
				rc;
	CodevecCudaBm25 s = NULL;

	rc = codevec_cuda_bm25_create(10, 3, start, &s, err, sizeof(err));
	CHECK(rc == CODEVEC_CUDA_OK, "create a small store: %d %s", rc, err);
	if (rc != CODEVEC_CUDA_OK)
		return;
	CHECK(codevec_cuda_bm25_topk(s, 1, terms, idf, 5, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a query before the store is whole is refused");
	CHECK(codevec_cuda_bm25_load(s, 1, 2, docs + 1, imp + 1, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a piece out of order is refused");
	docs[1] = 1;
	CHECK(codevec_cuda_bm25_load(s, 0, 3, docs, imp, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a term's documents not increasing are refused");
	docs[1] = 4;
	docs[2] = 10;
	CHECK(codevec_cuda_bm25_load(s, 0, 3, docs, imp, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a document out of range is refused");
	docs[2] = 9;
	imp[2] = nanf("");
	CHECK(codevec_cuda_bm25_load(s, 0, 3, docs, imp, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a NaN impact is refused");
	imp[2] = 3;
	CHECK(codevec_cuda_bm25_load(s, 0, 2, docs, imp, err, sizeof(err)) == CODEVEC_CUDA_OK &&
		  codevec_cuda_bm25_load(s, 2, 1, docs + 2, imp + 2, err, sizeof(err)) == CODEVEC_CUDA_OK,
		  "two pieces that split a term load: %s", err);
	docs[3] = 9;
	docs[4] = 9;
	CHECK(codevec_cuda_bm25_load(s, 3, 2, docs + 3, imp + 3, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a document twice in a term is refused");
	docs[3] = 2;
	docs[4] = 3;
	CHECK(codevec_cuda_bm25_load(s, 3, 2, docs + 3, imp + 3, err, sizeof(err)) == CODEVEC_CUDA_OK,
		  "the last piece loads: %s", err);
	CHECK(codevec_cuda_bm25_topk(s, 2, terms, idf, 5, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a term given twice is refused");
	terms[1] = 3;
	CHECK(codevec_cuda_bm25_topk(s, 2, terms, idf, 5, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a term out of range is refused");
	terms[1] = 2;
	CHECK(codevec_cuda_bm25_topk(s, 2, terms, idf, 0, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG &&
		  codevec_cuda_bm25_topk(s, 2, terms, idf, CODEVEC_CUDA_BM25_MAX_K + 1, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "k 0 and k past the most are refused");
	idf[1] = nan("");
	CHECK(codevec_cuda_bm25_topk(s, 2, terms, idf, 5, out, scores, &n, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
		  "a NaN idf is refused");
	idf[1] = 2;
	rc = codevec_cuda_bm25_topk(s, 2, terms, idf, 8, out, scores, &n, err, sizeof(err));
	/* term 0: 1 4 9 (1 2 3); term 2: 2 3 (4 5) x2 -> 3:10 2:8 9:3 4:2 1:1 */
	CHECK(rc == CODEVEC_CUDA_OK && n == 5 && out[0] == 3 && scores[0] == 10 && out[1] == 2 &&
		  out[2] == 9 && out[3] == 4 && out[4] == 1 && scores[4] == 1,
		  "the small store's answer (rc %d, n %d)", rc, n);
	{
		CodevecCudaBm25Query q[2] = {{2, terms, idf, 8, out, scores, &n}, {2, terms, idf, 0, out, scores, &n}};

		CHECK(codevec_cuda_bm25_topk_batch(s, q, 2, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG &&
			  codevec_cuda_bm25_topk_batch(s, q, 0, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG,
			  "a batch with a bad query, and an empty batch, are refused");
		n = -1;
		CHECK(codevec_cuda_bm25_topk_batch(s, q, 1, err, sizeof(err)) == CODEVEC_CUDA_OK && n == 5 &&
			  out[0] == 3 && out[4] == 1, "a batch of one: the small store's answer (n %d)", n);
	}
	codevec_cuda_bm25_free(s);
	CHECK(codevec_cuda_bm25_create(0, 3, start, &s, err, sizeof(err)) == CODEVEC_CUDA_ERR_ARG && s == NULL,
		  "a store of no documents is refused");
}

static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the mean and median wall time of a top-k at the Linux tree's size */
static void
Speed(void)
{
	Corpus		c;
	CodevecCudaBm25 s;
	uint32_t	terms[16],
				out[128];
	double		idf[16],
				scores[128];
	char		err[256];
	int			n;
	size_t		bytes;

	MakeCorpus(&c, 785000, 300000, 0.35, 0.7);
	s = Load(&c, 1 << 24);
	if (s == NULL)
		return;
	codevec_cuda_bm25_info(s, NULL, NULL, NULL, &bytes);
	printf("speed corpus: 785,000 documents, 300,000 terms, %zu postings, %.0f MB on the device\n",
		   c.docs.size(), bytes / 1e6);
	for (int k = 10; k <= 100; k *= 10)
	{
		std::vector<double> t;
		uint64_t	post = 0;

		for (int q = 0; q < 220; q++)
		{
			int			nt = 3 + (int) (Rand() % 8);
			double		t0;

			/* ranks log-uniform in [1, 3000]: document frequencies ~1,000 to all */
			for (int i = 0; i < nt; i++)
			{
				bool		dup;

				do
				{
					terms[i] = (uint32_t) exp(Unit() * log(3000.0));
					dup = false;
					for (int j = 0; j < i; j++)
						dup |= terms[j] == terms[i];
				} while (dup);
				idf[i] = 0.1 + Unit() * 7.9;
			}
			t0 = Now();

			if (codevec_cuda_bm25_topk(s, nt, terms, idf, k, out, scores, &n, err, sizeof(err)) != CODEVEC_CUDA_OK)
			{
				CHECK(0, "speed query: %s", err);
				break;
			}
			if (q >= 20)		/* the first 20 warm up */
			{
				t.push_back((Now() - t0) * 1e6);
				for (int i = 0; i < nt; i++)
					post += c.start[terms[i] + 1] - c.start[terms[i]];
			}
		}
		if (t.empty())
			break;
		double		sum = 0;

		for (double x : t)
			sum += x;
		std::sort(t.begin(), t.end());
		printf("SPEED k %d: mean %.1f us, p50 %.1f us, p95 %.1f us, %.0f postings a query\n",
			   k, sum / t.size(), t[t.size() / 2], t[t.size() * 95 / 100], (double) post / t.size());
	}
	/* batches of 1, 4 and 16 queries (k 100): the wall time per query */
	for (int nq = 1; nq <= 16; nq *= 4)
	{
		std::vector<CodevecCudaBm25Query> qs(nq);
		std::vector<uint32_t> bt(nq * 16),
					bo(nq * 100);
		std::vector<double> bi(nq * 16),
					bs(nq * 100);
		std::vector<int> bn(nq);
		double		t0 = 0,
					total = 0;
		int			batches = 0;

		for (int rep = 0; rep < 20 + 200 / nq; rep++)
		{
			for (int q = 0; q < nq; q++)
			{
				int			nt = 3 + (int) (Rand() % 8);

				for (int i = 0; i < nt; i++)
				{
					bool		dup;

					do
					{
						bt[q * 16 + i] = (uint32_t) exp(Unit() * log(3000.0));
						dup = false;
						for (int j = 0; j < i; j++)
							dup |= bt[q * 16 + j] == bt[q * 16 + i];
					} while (dup);
					bi[q * 16 + i] = 0.1 + Unit() * 7.9;
				}
				qs[q] = {nt, &bt[q * 16], &bi[q * 16], 100, &bo[q * 100], &bs[q * 100], &bn[q]};
			}
			t0 = Now();
			if (codevec_cuda_bm25_topk_batch(s, qs.data(), nq, err, sizeof(err)) != CODEVEC_CUDA_OK)
			{
				CHECK(0, "speed batch: %s", err);
				break;
			}
			if (rep >= 20)
			{
				total += (Now() - t0) * 1e6;
				batches++;
			}
		}
		if (batches > 0)
			printf("SPEED batch of %d, k 100: %.1f us a batch, %.1f us a query\n", nq,
				   total / batches, total / batches / nq);
	}
	codevec_cuda_bm25_free(s);
}

int
main(int argc, char **argv)
{
	bool		quick = false,
				speed_only = false;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--speed") == 0)
			speed_only = true;
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			rng_state = strtoull(argv[++i], NULL, 10) | 1;
	}
	if (speed_only)
	{
		Speed();
		printf("%d passed, %d failed\n", passes, failures);
		return failures == 0 ? 0 : 1;
	}
	BadInput();
	Correctness(1000, 300, 0.5, quick ? 20 : 100);
	if (!quick)
	{
		Correctness(20000, 3000, 0.3, 60);
		Correctness(300000, 20000, 0.4, 20);
		Speed();
	}
	printf("%d passed, %d failed\n", passes, failures);
	return failures == 0 ? 0 : 1;
}
