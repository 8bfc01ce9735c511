/*
 * bm25.c
 *	  BM25 ranking of codevec_code tsvectors: per-document term impacts and
 *	  an exact top-k over impact-ordered posting lists (issue 21).
 *
 * Scoring (Robertson and Zaragoza, "The Probabilistic Relevance Framework:
 * BM25 and Beyond", 2009), with field weights as weighted term frequencies
 * (the BM25F simplification with one length normalisation for all fields):
 *
 *   tf(t, d)     = sum over the positions of t in d of weights[w(pos)],
 *                  w(pos) the tsvector weight of the position (D, C, B, A:
 *                  codevec-load writes body D, doc C, signature B, name A);
 *                  a lexeme stored without positions counts once at weight D
 *   dl(d)        = sum over the lexemes t of d of tf(t, d)
 *   impact(t, d) = float4( tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)) )
 *                  computed in double, rounded once to float4
 *   score(d, q)  = sum over the query terms t_i, in the order given, of
 *                  idf_i * (double) impact(t_i, d)   (absent terms add nothing)
 *
 * weights is a real[4] in ts_rank's order {D, C, B, A}.  idf and avgdl come
 * from the caller (code.bm25_search computes idf = ln(1 + (N - df + 0.5) /
 * (df + 0.5)) from the live corpus statistics; avgdl is the value the stored
 * impacts were computed with), so this file knows nothing of tables beyond
 * the two indexes it is handed.
 *
 * Top-k: Fagin's combined algorithm (Fagin, Lotem and Naor, "Optimal
 * aggregation algorithms for middleware", JCSS 2003: sorted access as in
 * their NRA, random access now and then as in their TA).  Each query term
 * has a posting list in a btree on (term int4, impact float4 DESC, id int8),
 * read by an index-only scan in impact order.  Each step reads the posting
 * whose contribution idf_i * impact is largest among the list heads and
 * records it in the document's candidate entry (a lower bound: the sum of
 * what was seen; an upper bound: that plus the heads of the lists it was not
 * seen in).  Every BM25_CHECK_EVERY postings the k candidates with the best
 * lower bounds are scored exactly from their own tsvector (random access
 * through the documents' btree on id), which makes theta, the k-th best
 * lower bound, rise to the true k-th score quickly.  Once the heads sum
 * below theta no document not met yet can enter the top k and the
 * candidate set is closed; candidates whose upper bound falls below theta
 * are dropped.  Sorted access stops when at most BM25_RANDOM_BUDGET
 * candidates are left unresolved (some term neither seen nor its list read
 * to the end); those are scored by random access, the others from the
 * impacts they saw, and the best k are returned.  Bounds are compared with
 * a relative slack of BM25_SLACK (sums in another order may differ in the
 * last bits), never against the final order, which uses exact scores.
 *
 * The result is exactly the first k rows of a full scoring of every
 * document that contains a query term, ordered by score descending, then
 * id (test/search/bm25.sh checks it against Python).  A score is always the
 * sum over the query terms in the order given, whether it comes from the
 * candidate's impacts or from its tsvector (the same float4 impacts), so
 * it does not depend on the order lists are read in.
 *
 * Cost: postings read until the heads sum below the k-th score (common
 * terms with many high impacts keep it high: on the Linux kernel a
 * 5-term question reads ~30k postings), each an index-only btree step and
 * an open-addressing hash probe (lib/simplehash.h), plus a few hundred
 * random accesses.  code.bm25_search runs the block-max pruning of
 * src/bm25bmp.c over doc-ordered blocks instead, an order of magnitude
 * faster on the Linux kernel's questions (same scores to the bit:
 * test/search/bm25.sh compares the two); this algorithm stays for posting
 * lists kept in impact order.  bench/keyword/README.md has the numbers.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "bm25.h"
#include "relacl.h"
#include "srf.h"

/* candidates left for random access at most when sorted access stops */
#define BM25_RANDOM_BUDGET 256

/* postings read between two checks of the stopping rule (at least) */
#define BM25_CHECK_EVERY 1024

PG_FUNCTION_INFO_V1(codevec_bm25_length);
PG_FUNCTION_INFO_V1(codevec_bm25_impacts);
PG_FUNCTION_INFO_V1(codevec_bm25_topk);

/*
 * Read and check BM25's parameters: weights real[4] {D, C, B, A}, each
 * finite and >= 0; k1 finite >= 0; b in [0, 1]; avgdl finite > 0.  Raises
 * 22023 (or 2202E for a weights array of the wrong shape).
 */
void
Bm25ParamsInit(Bm25Params *p, ArrayType *weights, float4 k1, float4 b, double avgdl)
{
	if (ARR_NDIM(weights) != 1 || ArrayGetNItems(ARR_NDIM(weights), ARR_DIMS(weights)) != 4 ||
		ARR_HASNULL(weights) || ARR_ELEMTYPE(weights) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("bm25 weights must be a real[] of 4 elements without NULLs"),
				 errhint("The order is ts_rank's: {D, C, B, A} (body, doc, signature, name).")));
	for (int i = 0; i < 4; i++)
	{
		float4		w = ((float4 *) ARR_DATA_PTR(weights))[i];

		if (!(w >= 0 && isfinite(w)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bm25 weights must be finite and 0 or more, not %g", w)));
		p->weights[i] = w;
	}
	if (!(k1 >= 0 && isfinite(k1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 k1 must be finite and 0 or more, not %g", k1)));
	if (!(b >= 0 && b <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 b must be between 0 and 1, not %g", b)));
	if (!(avgdl > 0 && isfinite(avgdl)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 avgdl must be finite and above 0, not %g", avgdl)));
	p->k1 = k1;
	p->b = b;
	p->avgdl = avgdl;
}

/* Return the weighted term frequency of tsvector entry e. */
double
Bm25EntryTf(TSVector tsv, WordEntry *e, const float4 *weights)
{
	double		tf = 0;
	WordEntryPos *pos;
	int			npos;

	if (!e->haspos)
		return weights[0];
	pos = POSDATAPTR(tsv, e);
	npos = POSDATALEN(tsv, e);
	for (int j = 0; j < npos; j++)
		tf += weights[WEP_GETWEIGHT(pos[j])];
	return tf;
}

/* Return dl(d): the sum of the weighted term frequencies of every lexeme. */
double
Bm25DocLength(TSVector tsv, const float4 *weights)
{
	WordEntry  *e = ARRPTR(tsv);
	double		dl = 0;

	for (int i = 0; i < tsv->size; i++)
		dl += Bm25EntryTf(tsv, &e[i], weights);
	return dl;
}

/* Return impact(t, d) of weighted frequency tf in a document of length dl. */
float4
Bm25Impact(double tf, double dl, const Bm25Params *p)
{
	double		k1 = p->k1;
	double		norm = k1 * (1.0 - (double) p->b + (double) p->b * dl / p->avgdl);

	if (tf <= 0)
		return 0;
	return (float4) (tf * (k1 + 1.0) / (tf + norm));
}

/* Compare two lexemes as tsvector orders them (bytes, then length). */
static inline int
CompareLexeme(const char *a, int la, const char *b, int lb)
{
	int			c = memcmp(a, b, Min(la, lb));

	if (c != 0)
		return c;
	return (la > lb) - (la < lb);
}

/* Find lexeme (len bytes) in tsv by binary search; NULL when absent. */
static WordEntry *
FindLexeme(TSVector tsv, const char *lexeme, int len)
{
	WordEntry  *e = ARRPTR(tsv);
	char	   *str = STRPTR(tsv);
	int			lo = 0,
				hi = tsv->size - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = CompareLexeme(str + e[mid].pos, e[mid].len, lexeme, len);

		if (c == 0)
			return &e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/*
 * codevec_bm25_length(tsv tsvector, weights real[]) -> float8: dl(d), the
 * weighted length of a document (see the top of this file).
 */
Datum
codevec_bm25_length(PG_FUNCTION_ARGS)
{
	TSVector	tsv = PG_GETARG_TSVECTOR(0);
	Bm25Params	p;

	Bm25ParamsInit(&p, PG_GETARG_ARRAYTYPE_P(1), 1.2f, 0.75f, 1.0);
	PG_RETURN_FLOAT8(Bm25DocLength(tsv, p.weights));
}

/*
 * codevec_bm25_impacts(tsv tsvector, weights real[], k1 real, b real,
 * avgdl float8) -> TABLE(lexeme text, impact real): one row per lexeme of
 * tsv, in tsvector order, with impact(t, d) as defined at the top of this
 * file.  What code.bm25_postings stores.
 */
Datum
codevec_bm25_impacts(PG_FUNCTION_ARGS)
{
	TSVector	tsv = PG_GETARG_TSVECTOR(0);
	Bm25Params	p;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WordEntry  *e = ARRPTR(tsv);
	char	   *str = STRPTR(tsv);
	double		dl;

	Bm25ParamsInit(&p, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_FLOAT4(2),
				   PG_GETARG_FLOAT4(3), PG_GETARG_FLOAT8(4));
	CodevecInitSRF(fcinfo);
	dl = Bm25DocLength(tsv, p.weights);
	for (int i = 0; i < tsv->size; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = PointerGetDatum(cstring_to_text_with_len(str + e[i].pos, e[i].len));
		values[1] = Float4GetDatum(Bm25Impact(Bm25EntryTf(tsv, &e[i], p.weights), dl, &p));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------ top-k */

/* one query term's posting list, read in impact order */
typedef struct Bm25List
{
	IndexScanDesc scan;
	double		idf;
	double		head;			/* idf * impact of the next posting; 0 at the end */
	int64		next_id;
	float4		next_impact;
	bool		done;
} Bm25List;

/* a document met in the lists: what sorted access has told about it */
typedef struct Bm25Acc
{
	int64		id;				/* the document's id */
	double		lower;			/* sum of the contributions seen */
	float4	   *impacts;		/* per query term; NaN: not seen yet */
	int			top_pos;		/* place in the top heap; -1: not there */
	bool		dropped;		/* ruled out: cannot reach theta */
} Bm25Acc;

/* candidates by id: an open-addressing hash (lib/simplehash.h) */
typedef struct Bm25AccEntry
{
	int64		id;
	Bm25Acc    *acc;			/* stable: candidates live in blocks */
	char		status;
} Bm25AccEntry;

/* Hash a document id: the 64-bit finaliser of MurmurHash3 (Appleby). */
static inline uint32
HashId(int64 id)
{
	uint64		h = (uint64) id;

	h ^= h >> 33;
	h *= UINT64CONST(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64CONST(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (uint32) h;
}

#define SH_PREFIX bm25map
#define SH_ELEMENT_TYPE Bm25AccEntry
#define SH_KEY_TYPE int64
#define SH_KEY id
#define SH_HASH_KEY(tb, key) HashId(key)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_FILLFACTOR (0.5)		/* most lookups miss: keep probe runs short */
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* candidates per allocation block */
#define BM25_BLOCK 4096

/* the state of one top-k call */
typedef struct Bm25TopK
{
	Relation	post_heap;
	Relation	post_index;
	Relation	doc_heap;
	Relation	doc_index;
	AttrNumber	tsv_attnum;
	Snapshot	snapshot;
	TupleTableSlot *post_slot;	/* heap check of postings not all-visible */
	Buffer		vmbuf;
	IndexScanDesc doc_scan;
	TupleTableSlot *doc_slot;
	MemoryContext doc_cxt;		/* reset after each document */
	Bm25Params	params;
	int			nterms;
	Bm25List   *lists;
	char	  **lexemes;
	int		   *lexlens;
	bm25map_hash *map;			/* id -> candidate */
	Bm25Acc   **blocks;			/* every candidate, in blocks of BM25_BLOCK */
	int			nblocks;
	int			maxblocks;
	int			block_used;		/* candidates in the last block */
	int64		nacc;
	float4	   *chunk;			/* impact arrays not handed out yet */
	int			chunk_left;
	bool		closed;			/* no new documents are admitted */
	Bm25Acc   **live;			/* once closed: the candidates not dropped */
	int64		nlive;
	double		theta;			/* a lower bound of the k-th best score */
	Bm25Acc   **top;			/* min-heap of the k best lower bounds */
	int			ntop;
	Bm25Hit    *heap;			/* min-heap: heap[0] is the worst kept */
	int			nheap;
	int			k;
	int64		nread;			/* postings read */
	int64		nrandom;		/* documents scored from their tsvector */
} Bm25TopK;

/*
 * Move list l to its next visible posting (an index-only scan: the heap is
 * read only for pages the visibility map does not mark all-visible, as
 * nodeIndexonlyscan.c does).
 */
static void
ListAdvance(Bm25TopK *s, Bm25List *l)
{
	ItemPointer tid;

	while ((tid = index_getnext_tid(l->scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;

		if (!VM_ALL_VISIBLE(s->post_heap, ItemPointerGetBlockNumber(tid), &s->vmbuf))
		{
			bool		visible = index_fetch_heap(l->scan, s->post_slot);

			ExecClearTuple(s->post_slot);
			if (!visible)
				continue;
		}
		l->next_impact = DatumGetFloat4(index_getattr(l->scan->xs_itup, 2,
													  l->scan->xs_itupdesc, &isnull));
		if (isnull)
			continue;
		l->next_id = DatumGetInt64(index_getattr(l->scan->xs_itup, 3,
												 l->scan->xs_itupdesc, &isnull));
		if (isnull)
			continue;
		l->head = l->idf * (double) l->next_impact;
		s->nread++;
		return;
	}
	l->done = true;
	l->head = 0;
}

/*
 * Score document id exactly from its tsvector (random access); with
 * impacts, also store there its impact of every query term (0 when
 * absent).  Returns false when the snapshot sees no such row (or its
 * tsvector is NULL).
 */
static bool
ScoreDocument(Bm25TopK *s, int64 id, double *score, float4 *impacts)
{
	ScanKeyData key;
	bool		found = false;

	/*
	 * The scan runs in the caller's context (btree allocates some of its
	 * state lazily, e.g. when it marks dead tuples); only the detoasted
	 * tsvector goes to the per-document context.
	 */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	index_rescan(s->doc_scan, &key, 1, NULL, 0);
	if (index_getnext_slot(s->doc_scan, ForwardScanDirection, s->doc_slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(s->doc_slot, s->tsv_attnum, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(s->doc_cxt);
			TSVector	tsv = DatumGetTSVector(d);
			double		dl = Bm25DocLength(tsv, s->params.weights);
			double		sum = 0;

			for (int i = 0; i < s->nterms; i++)
			{
				WordEntry  *e = FindLexeme(tsv, s->lexemes[i], s->lexlens[i]);
				float4		impact = 0;

				if (e)
				{
					impact = Bm25Impact(Bm25EntryTf(tsv, e, s->params.weights), dl, &s->params);
					sum += s->lists[i].idf * (double) impact;
				}
				if (impacts)
					impacts[i] = impact;
			}
			*score = sum;
			found = true;
			MemoryContextSwitchTo(old);
			MemoryContextReset(s->doc_cxt);
		}
		ExecClearTuple(s->doc_slot);
	}
	return found;
}

/* Return a's impact array, allocated in chunks (nterms floats, all NaN). */
static float4 *
AllocImpacts(Bm25TopK *s)
{
	float4	   *f;

	if (s->chunk_left == 0)
	{
		s->chunk = palloc(sizeof(float4) * s->nterms * 1024);
		s->chunk_left = 1024;
	}
	f = s->chunk;
	s->chunk += s->nterms;
	s->chunk_left--;
	for (int i = 0; i < s->nterms; i++)
		f[i] = get_float4_nan();
	return f;
}

/* Add a candidate for document id (nothing seen of it yet). */
static Bm25Acc *
NewAcc(Bm25TopK *s, int64 id)
{
	Bm25Acc    *a;
	bool		found;
	Bm25AccEntry *e;

	if (s->nblocks == 0 || s->block_used == BM25_BLOCK)
	{
		if (s->nblocks == s->maxblocks)
		{
			s->maxblocks = Max(16, s->maxblocks * 2);
			s->blocks = s->blocks ? repalloc(s->blocks, sizeof(Bm25Acc *) * s->maxblocks)
				: palloc(sizeof(Bm25Acc *) * s->maxblocks);
		}
		s->blocks[s->nblocks++] = palloc(sizeof(Bm25Acc) * BM25_BLOCK);
		s->block_used = 0;
	}
	a = &s->blocks[s->nblocks - 1][s->block_used++];
	a->id = id;
	a->lower = 0;
	a->impacts = AllocImpacts(s);
	a->top_pos = -1;
	a->dropped = false;
	e = bm25map_insert(s->map, id, &found);
	e->acc = a;
	s->nacc++;
	return a;
}

/* Return candidate number i (0 .. blocks' total) */
#define ACC_AT(s, i) (&(s)->blocks[(i) / BM25_BLOCK][(i) % BM25_BLOCK])
#define ACC_COUNT(s) ((s)->nblocks == 0 ? 0 : (int64) ((s)->nblocks - 1) * BM25_BLOCK + (s)->block_used)

/* Return an upper bound of a's score: what was seen plus the heads of the other lists. */
static inline double
AccUpper(Bm25TopK *s, Bm25Acc *a)
{
	double		u = a->lower;

	for (int i = 0; i < s->nterms; i++)
		if (isnan(a->impacts[i]) && !s->lists[i].done)
			u += s->lists[i].head;
	return u;
}

/* Is every term of a known: seen, or its list read to the end (absent)? */
static inline bool
AccResolved(Bm25TopK *s, Bm25Acc *a)
{
	for (int i = 0; i < s->nterms; i++)
		if (isnan(a->impacts[i]) && !s->lists[i].done)
			return false;
	return true;
}

/* Swap two places of the top heap, keeping top_pos in step. */
static inline void
TopSwap(Bm25TopK *s, int i, int j)
{
	Bm25Acc    *t = s->top[i];

	s->top[i] = s->top[j];
	s->top[j] = t;
	s->top[i]->top_pos = i;
	s->top[j]->top_pos = j;
}

/* Restore the top heap (lowest lower bound first) from place i down. */
static void
TopSiftDown(Bm25TopK *s, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;

		if (l < s->ntop && s->top[l]->lower < s->top[m]->lower)
			m = l;
		if (r < s->ntop && s->top[r]->lower < s->top[m]->lower)
			m = r;
		if (m == i)
			return;
		TopSwap(s, i, m);
		i = m;
	}
}

/*
 * Keep the top heap the k candidates with the best lower bounds after a's
 * lower bound grew (lower bounds only grow, so a candidate outside it can
 * only enter by passing its root).
 */
static void
TopUpdate(Bm25TopK *s, Bm25Acc *a)
{
	if (a->top_pos >= 0)
		TopSiftDown(s, a->top_pos);
	else if (s->ntop < s->k)
	{
		int			i = s->ntop++;

		s->top[i] = a;
		a->top_pos = i;
		while (i > 0 && s->top[i]->lower < s->top[(i - 1) / 2]->lower)
		{
			TopSwap(s, i, (i - 1) / 2);
			i = (i - 1) / 2;
		}
	}
	else if (a->lower > s->top[0]->lower)
	{
		s->top[0]->top_pos = -1;
		s->top[0] = a;
		a->top_pos = 0;
		TopSiftDown(s, 0);
	}
}

/* Return the exact score of a resolved candidate (its impacts in term order). */
static double
AccScore(Bm25TopK *s, Bm25Acc *a)
{
	double		score = 0;

	for (int i = 0; i < s->nterms; i++)
		if (!isnan(a->impacts[i]))
			score += s->lists[i].idf * (double) a->impacts[i];
	return score;
}

/*
 * The periodic check of the sorted access.  The k candidates with the best
 * lower bounds (the top heap) are resolved by random access (Fagin's
 * combined algorithm: their exact scores raise theta, the k-th best lower
 * bound, much sooner than sorted access alone would); the candidate set is
 * closed once the lists' heads sum below theta (no document not met yet
 * can reach it); once closed, candidates whose upper bound is below theta
 * are dropped.  Returns true when sorted access can stop: the set is closed
 * and at most BM25_RANDOM_BUDGET candidates still need a random access.
 */
static bool
Bm25Check(Bm25TopK *s)
{
	double		bound = 0;
	double		cut;
	int64		unresolved = 0;
	int64		count = ACC_COUNT(s);
	Bm25Acc    *a;

	for (int i = 0; i < s->nterms; i++)
		if (!s->lists[i].done)
			bound += s->lists[i].head;
	if (s->ntop == s->k)
	{
		bool		changed = false;

		for (int i = 0; i < s->ntop; i++)
		{
			double		score;

			a = s->top[i];
			if (AccResolved(s, a))
				continue;
			s->nrandom++;
			if (ScoreDocument(s, a->id, &score, a->impacts))
				a->lower = AccScore(s, a);
			changed = true;
		}
		if (changed)
			for (int i = s->ntop / 2; i >= 0; i--)
				TopSiftDown(s, i);
		s->theta = Max(s->theta, s->top[0]->lower);
	}
	if (s->theta <= 0)
		return false;
	cut = Bm25Cut(s->theta);
	if (!s->closed && bound < cut)
		s->closed = true;
	if (!s->closed)
		return false;
	/* the first pass after closing reads every candidate, later ones the survivors */
	if (s->live == NULL)
	{
		s->live = palloc(sizeof(Bm25Acc *) * Max(count, 1));
		for (int64 i = 0; i < count; i++)
			if (!ACC_AT(s, i)->dropped)
				s->live[s->nlive++] = ACC_AT(s, i);
	}
	{
		int64		n = 0;

		for (int64 i = 0; i < s->nlive; i++)
		{
			a = s->live[i];
			if (AccUpper(s, a) < cut)
			{
				a->dropped = true;
				s->nacc--;
				continue;
			}
			if (!AccResolved(s, a))
				unresolved++;
			s->live[n++] = a;
		}
		s->nlive = n;
	}
	return unresolved <= BM25_RANDOM_BUDGET;
}

/* Check that index rel's key columns have the types wanted (22023). */
void
Bm25CheckIndexColumns(Relation rel, int n, const Oid *types, const char *what)
{
	if (rel->rd_rel->relam != BTREE_AM_OID ||
		IndexRelationGetNumberOfKeyAttributes(rel) < n)
		goto bad;
	for (int i = 0; i < n; i++)
		if (TupleDescAttr(RelationGetDescr(rel), i)->atttypid != types[i])
			goto bad;
	return;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("\"%s\" is not a btree index on %s", RelationGetRelationName(rel), what)));
}

/* Begin an index scan (the signature changed in PostgreSQL 18). */
IndexScanDesc
Bm25BeginScan(Relation heap, Relation index, Snapshot snapshot, int nkeys)
{
#if PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, 0);
#else
	return index_beginscan(heap, index, snapshot, nkeys, 0);
#endif
}

/*
 * codevec_bm25_topk(terms int4[], lexemes text[], idf float8[], k int4,
 *   weights real[], k1 real, b real, avgdl float8, postings_index regclass,
 *   docs_index regclass, tsv_column name) -> TABLE(id int8, score float8)
 *
 * The k (1..1,000,000) documents with the highest score(d, q) (top of this
 * file), best first, ties by id, by the combined algorithm described at
 * the top of this file.  terms[i] is the term number of lexemes[i]
 * in postings_index, a btree on (term int4, impact float4 DESC, id int8)
 * whose impacts were computed with the same weights, k1, b and avgdl;
 * docs_index is a btree on the documents' id (int8) and tsv_column their
 * tsvector column.  Errors: 22023 for arrays of different lengths, NULL
 * elements, more than 1024 terms, a k out of range, bad parameters or
 * indexes of the wrong shape.
 */
Datum
codevec_bm25_topk(PG_FUNCTION_ARGS)
{
	ArrayType  *terms_a = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *lex_a = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *idf_a = PG_GETARG_ARRAYTYPE_P(2);
	int32		k = PG_GETARG_INT32(3);
	Oid			post_index_oid = PG_GETARG_OID(8);
	Oid			doc_index_oid = PG_GETARG_OID(9);
	char	   *tsv_column = NameStr(*PG_GETARG_NAME(10));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Bm25TopK	st;
	Bm25TopK   *s = &st;
	Datum	   *terms_d,
			   *lex_d,
			   *idf_d;
	bool	   *terms_n,
			   *lex_n,
			   *idf_n;
	int			nt,
				nl,
				ni;
	static const Oid post_types[3] = {INT4OID, FLOAT4OID, INT8OID};
	static const Oid doc_types[1] = {INT8OID};

	memset(s, 0, sizeof(*s));
	Bm25ParamsInit(&s->params, PG_GETARG_ARRAYTYPE_P(4), PG_GETARG_FLOAT4(5),
				   PG_GETARG_FLOAT4(6), PG_GETARG_FLOAT8(7));
	if (k < 1 || k > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 k must be between 1 and 1000000, not %d", k)));
	deconstruct_array(terms_a, INT4OID, 4, true, TYPALIGN_INT, &terms_d, &terms_n, &nt);
	deconstruct_array(lex_a, TEXTOID, -1, false, TYPALIGN_INT, &lex_d, &lex_n, &nl);
	deconstruct_array(idf_a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &idf_d, &idf_n, &ni);
	if (nt != nl || nt != ni)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 terms, lexemes and idf must have the same length, not %d, %d and %d",
						nt, nl, ni)));
	if (nt > BM25_MAX_TERMS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 takes at most %d query terms, not %d", BM25_MAX_TERMS, nt)));
	for (int i = 0; i < nt; i++)
		if (terms_n[i] || lex_n[i] || idf_n[i] ||
			!(DatumGetFloat8(idf_d[i]) >= 0 && isfinite(DatumGetFloat8(idf_d[i]))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bm25 query term %d has a NULL or an idf that is not finite and 0 or more",
							i + 1)));

	CodevecInitSRF(fcinfo);
	if (nt == 0)
		PG_RETURN_VOID();

	/* relations: the postings (index-only) and the documents (by id) */
	RequireIndexTableSelect(post_index_oid);
	RequireIndexTableSelect(doc_index_oid);
	s->post_index = index_open(post_index_oid, AccessShareLock);
	Bm25CheckIndexColumns(s->post_index, 3, post_types, "(term int4, impact real, id int8)");
	s->post_heap = table_open(s->post_index->rd_index->indrelid, AccessShareLock);
	s->doc_index = index_open(doc_index_oid, AccessShareLock);
	Bm25CheckIndexColumns(s->doc_index, 1, doc_types, "(id int8)");
	s->doc_heap = table_open(s->doc_index->rd_index->indrelid, AccessShareLock);
	s->tsv_attnum = get_attnum(RelationGetRelid(s->doc_heap), tsv_column);
	if (s->tsv_attnum <= 0 || get_atttype(RelationGetRelid(s->doc_heap), s->tsv_attnum) != TSVECTOROID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" has no tsvector column \"%s\"",
						RelationGetRelationName(s->doc_heap), tsv_column)));
	s->snapshot = GetActiveSnapshot();
	if (s->snapshot == NULL)
		s->snapshot = GetTransactionSnapshot();
	s->vmbuf = InvalidBuffer;
	s->post_slot = table_slot_create(s->post_heap, NULL);
	s->doc_slot = table_slot_create(s->doc_heap, NULL);
	s->doc_scan = Bm25BeginScan(s->doc_heap, s->doc_index, s->snapshot, 1);
	s->doc_cxt = AllocSetContextCreate(CurrentMemoryContext, "bm25 document",
									   ALLOCSET_DEFAULT_SIZES);

	/* one sorted-access scan per term, positioned on its first posting */
	s->nterms = nt;
	s->lists = palloc0(sizeof(Bm25List) * nt);
	s->lexemes = palloc(sizeof(char *) * nt);
	s->lexlens = palloc(sizeof(int) * nt);
	for (int i = 0; i < nt; i++)
	{
		Bm25List   *l = &s->lists[i];
		ScanKeyData key;

		s->lexemes[i] = VARDATA_ANY(DatumGetTextPP(lex_d[i]));
		s->lexlens[i] = VARSIZE_ANY_EXHDR(DatumGetTextPP(lex_d[i]));
		l->idf = DatumGetFloat8(idf_d[i]);
		l->scan = Bm25BeginScan(s->post_heap, s->post_index, s->snapshot, 1);
		l->scan->xs_want_itup = true;
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, terms_d[i]);
		index_rescan(l->scan, &key, 1, NULL, 0);
		ListAdvance(s, l);
	}

	s->map = bm25map_create(CurrentMemoryContext, 4096, NULL);
	s->k = k;
	s->heap = palloc(sizeof(Bm25Hit) * k);	/* 16 MB at most */
	s->top = palloc(sizeof(Bm25Acc *) * k);

	/* sorted access: the largest next contribution first */
	for (int64 next_check = BM25_CHECK_EVERY;;)
	{
		int			best = -1;
		Bm25List   *l;
		Bm25Acc    *a = NULL;
		int64		id;
		float4		impact;
		double		contribution;
		Bm25AccEntry *e;

		for (int i = 0; i < nt; i++)
			if (!s->lists[i].done && (best < 0 || s->lists[i].head > s->lists[best].head))
				best = i;
		if (best < 0)
			break;				/* every list read: every candidate resolved */
		l = &s->lists[best];
		id = l->next_id;
		impact = l->next_impact;
		contribution = l->head;
		ListAdvance(s, l);
		e = bm25map_lookup(s->map, id);
		if (e)
			a = e->acc->dropped ? NULL : e->acc;
		else if (!s->closed)
			a = NewAcc(s, id);
		/* a candidate scored by random access already knows this term */
		if (a && isnan(a->impacts[best]))
		{
			a->impacts[best] = impact;
			a->lower += contribution;
			TopUpdate(s, a);
		}
		if (s->nread >= next_check)
		{
			CHECK_FOR_INTERRUPTS();
			if (Bm25Check(s))
				break;
			/* before closing a check costs O(k); after, O(candidates) */
			next_check = s->nread + (s->closed ? Max(BM25_CHECK_EVERY, s->nacc / 2) : BM25_CHECK_EVERY);
		}
	}

	/* exact scores of the candidates that may reach theta, best k kept */
	{
		double		cut = s->theta > 0 ? Bm25Cut(s->theta) : -1;
		int64		count = s->live ? s->nlive : ACC_COUNT(s);

		for (int64 i = 0; i < count; i++)
		{
			Bm25Acc    *a = s->live ? s->live[i] : ACC_AT(s, i);
			double		score = 0;

			if (a->dropped || AccUpper(s, a) < cut)
				continue;
			if (AccResolved(s, a))
				score = AccScore(s, a);
			else
			{
				if ((s->nrandom & 255) == 0)
					CHECK_FOR_INTERRUPTS();
				s->nrandom++;
				if (!ScoreDocument(s, a->id, &score, NULL))
					continue;
			}
			Bm25HeapOffer(s->heap, &s->nheap, s->k, score, a->id);
		}
	}

	/* best first: sort the heap by popping its worst to the end */
	Bm25HeapSort(s->heap, s->nheap);
	for (int i = 0; i < s->nheap; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(s->heap[i].id);
		values[1] = Float8GetDatum(s->heap[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	elog(DEBUG1, "bm25 top-%d of %d terms: %lld postings read, %lld candidates left, %lld scored from their tsvector",
		 k, nt, (long long) s->nread, (long long) s->nacc, (long long) s->nrandom);

	for (int i = 0; i < nt; i++)
		index_endscan(s->lists[i].scan);
	index_endscan(s->doc_scan);
	if (BufferIsValid(s->vmbuf))
		ReleaseBuffer(s->vmbuf);
	ExecDropSingleTupleTableSlot(s->post_slot);
	ExecDropSingleTupleTableSlot(s->doc_slot);
	MemoryContextDelete(s->doc_cxt);
	index_close(s->post_index, AccessShareLock);
	table_close(s->post_heap, AccessShareLock);
	index_close(s->doc_index, AccessShareLock);
	table_close(s->doc_heap, AccessShareLock);
	PG_RETURN_VOID();
}
