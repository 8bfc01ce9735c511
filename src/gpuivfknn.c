/*
 * gpuivfknn.c
 *	  codevec_knn(index, queries, k): batch k-NN search of many queries at
 *	  once over a gpuivf index, on the CPU in one pass over the index or on
 *	  the GPU service in one request.
 *
 * What it returns. For each query (its 1-based position in the array) the
 * k rows of the index's table nearest to it under the opclass's metric, as
 * (query, rank, heap_tid, distance). For a flat index (lists = 1) that is
 * exactly what
 *
 *	  SELECT ctid, emb <op> q FROM t WHERE emb IS NOT NULL
 *	  ORDER BY emb <op> q, ctid LIMIT k
 *
 * returns: the same rows in the same order, distances bit-identical (they
 * are computed by the same CPU kernels, in the same argument order, as the
 * opclass's distance function). NULL vectors are not indexed, so never
 * returned. For an IVF index (lists > 1) it is what an index scan with the
 * current gpuivf.probes returns under LIMIT k: the nearest visible rows of
 * the query's first gpuivf.probes lists, then, when those hold fewer than
 * k, of the next gpuivf.probes lists, and so on (gpuivfscan.c).
 *
 * Visibility. The index holds the TIDs of dead and not yet committed rows
 * too. A row counts only when the heap fetch an index scan would do
 * (table_index_fetch_tuple with the active snapshot, following HOT chains)
 * finds a visible version; its heap_tid is that version's TID, the ctid a
 * sequential scan sees. Since a query's result holds only visible rows,
 * each query gets k rows whenever k visible rows exist. The check is made
 * only when a row would enter a query's result (its distance is not above
 * the query's current k-th), and remembered per index TID, so a pass over N
 * rows for nq queries costs about nq k log(N / k) heap fetches, not N.
 *
 * The CPU pass (the batched kernel). The index's data pages are read once
 * for a whole group of queries: rows are copied, a page at a time under its
 * share lock, into a chunk of about 256 kB; with no buffer lock held, every
 * query of the group is compared with every row of the chunk (the chunk
 * stays in cache while the queries stream through it) and each query keeps
 * a bounded max-heap of its k best (distance, heap TID) pairs. For IVF the
 * pass reads the union of the lists the queries probe in this round; each
 * list's rows are compared with the queries probing it.
 *
 * Memory. Queries are taken in batches whose results, heaps and list orders
 * fit in max(work_mem, 64 MB) - all of them unless nq x k is large (1,000
 * queries x k = 1024 take 48 MB) - each batch one pass over the index (and
 * one GPU request, or a few), its rows written to the result tuplestore,
 * which spills to disk, before the next batch starts.
 *
 * The GPU path (flat indexes, routed like an index scan: codevec.device
 * cuda, or auto with reltuples >= gpuivf.gpu_min_rows and the service
 * ready). The queries go to the GPU service in KNN requests of nq queries
 * (one request unless it would exceed 256 MB), asking for a few more
 * candidates than k; the index copy is uploaded first when the service has
 * none current. As in gpuivfgpu.c, each candidate's distance is recomputed
 * exactly on the CPU, and a candidate is proven only when its exact
 * distance is strictly below the lower bound of the last candidate's GPU
 * distance (GpuivfLowerBound: no row outside the candidates can precede
 * it; GpuivfGpuProve, shared with index scans).
 * A query whose proven, visible candidates number at least k (or whose
 * candidates were every row of the index) is answered; the others - bound
 * not met, or too many invisible rows - go through the CPU pass. When the
 * service cannot answer at all, every query does.
 *
 * Joining back: the result is meant to be joined with
 * "JOIN t ON t.ctid = r.heap_tid", which PostgreSQL 15 plans as a nested
 * loop over the function's rows with a TID Scan on t (one heap fetch per
 * row). The TIDs are valid under the caller's snapshot only: use them in
 * the same statement.
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "distance.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "nodes/supportnodes.h"
#include "storage/predicate.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "srf.h"
#include "utils/tuplestore.h"
#include "vecelem.h"

/* k: 1 .. the GPU's largest batch, so both paths take the same range */
#define KNN_MAX_K				GPUIVF_GPU_MAX_K

/* Rows compared per chunk of the CPU pass: about this many bytes of vectors */
#define KNN_CHUNK_BYTES			(256 * 1024)

/* Memory for a group's heaps (and IVF list orders): max(work_mem, this) */
#define KNN_MIN_GROUP_BYTES		((Size) 64 * 1024 * 1024)

/* Largest KNN request sent to the GPU service */
#define KNN_GPU_REQUEST_BYTES	((Size) 256 * 1024 * 1024)

/* Remembered visibility checks before the cache starts over */
#define KNN_VIS_CACHE_MAX		(1L << 20)

/* One result row of a query: exact distance and the visible row's TID */
typedef struct KnnItem
{
	double		distance;
	ItemPointerData tid;		/* heap TID of the visible version */
} KnnItem;

/* A query's state */
typedef struct KnnQuery
{
	const float *x;				/* dims floats */
	KnnItem    *done;			/* rows decided so far, in order */
	int			ndone;
	KnnItem    *heap;			/* max-heap of this round's best, worst on top */
	int			nheap;
	int			cap;			/* the most rows this round may add */
	int		   *listOrder;		/* IVF: list numbers, nearest centroid first */
	int			nextList;		/* IVF: lists probed so far */
	bool		finished;
} KnnQuery;

/* Visibility of one index TID under the snapshot, remembered */
typedef struct KnnVisEntry
{
	ItemPointerData itid;		/* hash key: the index tuple's heap TID */
	bool		visible;
	ItemPointerData htid;		/* the visible version's TID */
} KnnVisEntry;

/* The state of one codevec_knn call */
typedef struct KnnState
{
	Relation	heapRel;
	Relation	index;
	GpuivfMetric metric;		/* the opclass's distance function */
	GpuivfMetaPageData meta;
	int			dims;
	int			k;
	int			nq;				/* queries in the array */
	float	   *queries;		/* nq x dims */
	KnnQuery   *q;				/* the current batch of queries */
	int			nb;				/* queries in the batch */
	int			refreshes;		/* uploads and appends this call made */
	BlockNumber *listStarts;	/* first data page of each list */
	float	   *centroids;		/* lists x dims (IVF) */
	int			probes;			/* lists per round (IVF); 1 for flat */
	Snapshot	snapshot;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	HTAB	   *vis;
	MemoryContext visCtx;
} KnnState;

/*
 * The opclass's distance of an index row to a query: the expressions of
 * l2_distance, negative_inner_product and cosine_distance (src/distance.c)
 * with the row as first argument, as the index scan and "emb <op> q" call
 * them, so the values are bit-identical to the operator's.
 */
static inline double
KnnDistance(GpuivfMetric metric, const float *row, const float *q, int dims)
{
	switch (metric)
	{
		case GPUIVF_METRIC_L2:
			return sqrt((double) codevec_kernels->l2_squared(row, q, dims));
		case GPUIVF_METRIC_IP:
			return -(double) codevec_kernels->inner_product(row, q, dims);
		case GPUIVF_METRIC_COSINE:
			return CodevecCosineDistance(row, q, dims);
	}
	pg_unreachable();
}

/* Order of result rows: distance as float8 sorts it (NaN last), then TID */
static inline bool
ItemLess(const KnnItem *a, const KnnItem *b)
{
	int			c = float8_cmp_internal(a->distance, b->distance);

	if (c != 0)
		return c < 0;
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) < 0;
}

/* qsort comparator of KnnItem */
static int
ItemCompare(const void *a, const void *b)
{
	const KnnItem *x = (const KnnItem *) a;
	const KnnItem *y = (const KnnItem *) b;

	return ItemLess(x, y) ? -1 : ItemLess(y, x) ? 1 : 0;
}

/* Add an item to a query's max-heap of at most cap (cap > 0) */
static void
HeapOffer(KnnQuery *q, const KnnItem *item)
{
	KnnItem    *h = q->heap;
	int			i;

	if (q->nheap < q->cap)
	{
		/* sift up: the worst item stays on top */
		i = q->nheap++;
		while (i > 0)
		{
			int			p = (i - 1) / 2;

			if (!ItemLess(&h[p], item))
				break;
			h[i] = h[p];
			i = p;
		}
		h[i] = *item;
		return;
	}
	if (!ItemLess(item, &h[0]))
		return;
	/* replace the worst and sift down */
	i = 0;
	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && ItemLess(&h[c], &h[c + 1]))
			c++;
		if (!ItemLess(item, &h[c]))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = *item;
}

/* Start a fresh visibility cache (in its own context, so it can be reset) */
static void
VisCacheReset(KnnState *st)
{
	HASHCTL		ctl;

	MemoryContextReset(st->visCtx);
	ctl.keysize = sizeof(ItemPointerData);
	ctl.entrysize = sizeof(KnnVisEntry);
	ctl.hcxt = st->visCtx;
	st->vis = hash_create("codevec_knn visibility", 4096, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Whether the row an index TID points to has a version visible to the
 * snapshot (the heap fetch of an index scan: HOT chains followed); *htid
 * gets that version's TID. Called with no buffer lock held.
 */
static bool
RowVisible(KnnState *st, ItemPointer itid, ItemPointer htid)
{
	KnnVisEntry *e;
	bool		found;

	if (hash_get_num_entries(st->vis) >= KNN_VIS_CACHE_MAX)
		VisCacheReset(st);
	e = (KnnVisEntry *) hash_search(st->vis, itid, HASH_ENTER, &found);
	if (!found)
	{
		ItemPointerData tid = *itid;
		bool		call_again = false;
		bool		all_dead = false;

		e->visible = table_index_fetch_tuple(st->fetch, &tid, st->snapshot, st->slot,
											 &call_again, &all_dead);
		if (e->visible)
			e->htid = st->slot->tts_tid;
		ExecClearTuple(st->slot);
	}
	if (e->visible)
		*htid = e->htid;
	return e->visible;
}

/*
 * Compare n rows (vectors rows, index TIDs itids) with the queries qids[0..nqs)
 * and offer each query the visible rows that can enter its heap.
 */
static void
CompareChunk(KnnState *st, const float *rows, const ItemPointerData *itids, int n,
			 const int *qids, int nqs)
{
	int			dims = st->dims;

	for (int j = 0; j < nqs; j++)
	{
		KnnQuery   *q = &st->q[qids[j]];

		CHECK_FOR_INTERRUPTS();	/* no buffer lock held here */
		for (int i = 0; i < n; i++)
		{
			KnnItem		item;

			item.distance = KnnDistance(st->metric, rows + (Size) i * dims, q->x, dims);
			/* cheap test first: a row beyond the current k-th is out */
			if (q->nheap == q->cap &&
				float8_cmp_internal(item.distance, q->heap[0].distance) > 0)
				continue;
			if (!RowVisible(st, (ItemPointer) &itids[i], &item.tid))
				continue;
			HeapOffer(q, &item);
		}
	}
}

/*
 * Read the chain of data pages starting at blkno and compare its rows with
 * the queries qids[0..nqs), a chunk at a time. rows and itids have room for
 * chunkRows + MaxIndexTuplesPerPage entries.
 */
static void
ScanList(KnnState *st, BlockNumber blkno, const int *qids, int nqs,
		 float *rows, ItemPointerData *itids, int chunkRows, BufferAccessStrategy bas)
{
	TupleDesc	tupdesc = RelationGetDescr(st->index);
	int			dims = st->dims;
	int			n = 0;

	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf = ReadBufferExtended(st->index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
		Page		page;
		OffsetNumber maxoff;

		/* copy the page's rows under its share lock */
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			IndexTuple	itup = GpuivfPageTuple(page, off);
			bool		isnull;
			Datum		value;
			Codevec    *v;

			if (itup == NULL)
				continue;
			value = index_getattr(itup, 1, tupdesc, &isnull);
			if (isnull)
				continue;		/* gpuivf does not index NULLs; as ProbeList */
			/* small vectors have a 1-byte header: detoast copies those */
			v = VARATT_IS_4B_U(DatumGetPointer(value)) ?
				(Codevec *) DatumGetPointer(value) : DatumGetCodevec(value);
			if (v->dim != dims)
			{
				UnlockReleaseBuffer(buf);
				elog(ERROR, "codevec of %d dimensions in block %u of gpuivf index \"%s\" of %d",
					 v->dim, blkno, RelationGetRelationName(st->index), dims);
			}
			VecElemToFloats(v, rows + (Size) n * dims);	/* halfvec: exact */
			if ((Pointer) v != DatumGetPointer(value))
				pfree(v);
			itids[n++] = itup->t_tid;
		}
		blkno = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);

		/* compare with no buffer lock held: heap fetches, cancellation */
		if (n >= chunkRows || (!BlockNumberIsValid(blkno) && n > 0))
		{
			CompareChunk(st, rows, itids, n, qids, nqs);
			n = 0;
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* Move a query's heap, sorted, behind its decided rows */
static void
FinishRound(KnnQuery *q)
{
	qsort(q->heap, q->nheap, sizeof(KnnItem), ItemCompare);
	memcpy(q->done + q->ndone, q->heap, sizeof(KnnItem) * q->nheap);
	q->ndone += q->nheap;
	q->nheap = 0;
}

/*
 * The CPU pass for the queries qids[0..nqs) (none finished): one pass over
 * the index for all of them (flat), or one pass per round of gpuivf.probes
 * lists (IVF), until each has k rows or no list is left.
 */
static void
CpuSearch(KnnState *st, const int *qids, int nqs)
{
	int			lists = st->meta.lists;
	int			chunkRows = Max(1, KNN_CHUNK_BYTES / (int) (sizeof(float) * st->dims));
	float	   *rows = palloc_extended(sizeof(float) * (Size) (chunkRows + MaxIndexTuplesPerPage) * st->dims,
									   MCXT_ALLOC_HUGE);
	ItemPointerData *itids = palloc(sizeof(ItemPointerData) * (chunkRows + MaxIndexTuplesPerPage));
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);
	int		   *active = palloc(sizeof(int) * nqs);
	int			nactive = nqs;
	int		   *count = NULL,
			   *offset = NULL,
			   *members = NULL;

	memcpy(active, qids, sizeof(int) * nqs);
	if (lists > 1)
	{
		count = palloc(sizeof(int) * lists);
		offset = palloc(sizeof(int) * (lists + 1));
		members = palloc(sizeof(int) * (Size) nqs * st->probes);
	}

	while (nactive > 0)
	{
		int			still = 0;

		for (int j = 0; j < nactive; j++)
		{
			KnnQuery   *q = &st->q[active[j]];

			q->cap = st->k - q->ndone;
			q->nheap = 0;
		}

		if (lists == 1)
			ScanList(st, st->listStarts[0], active, nactive, rows, itids, chunkRows, bas);
		else
		{
			/* which active queries probe each list in this round */
			memset(count, 0, sizeof(int) * lists);
			for (int j = 0; j < nactive; j++)
			{
				KnnQuery   *q = &st->q[active[j]];
				int			end = Min(lists, q->nextList + st->probes);

				for (int p = q->nextList; p < end; p++)
					count[q->listOrder[p]]++;
			}
			offset[0] = 0;
			for (int l = 0; l < lists; l++)
				offset[l + 1] = offset[l] + count[l];
			memset(count, 0, sizeof(int) * lists);
			for (int j = 0; j < nactive; j++)
			{
				KnnQuery   *q = &st->q[active[j]];
				int			end = Min(lists, q->nextList + st->probes);

				for (int p = q->nextList; p < end; p++)
				{
					int			l = q->listOrder[p];

					members[offset[l] + count[l]++] = active[j];
				}
				q->nextList = end;
			}
			for (int l = 0; l < lists; l++)
				if (count[l] > 0)
					ScanList(st, st->listStarts[l], members + offset[l], count[l],
							 rows, itids, chunkRows, bas);
		}

		/* a query with fewer than k rows goes on to its next lists (IVF) */
		for (int j = 0; j < nactive; j++)
		{
			KnnQuery   *q = &st->q[active[j]];

			FinishRound(q);
			if (q->ndone < st->k && lists > 1 && q->nextList < lists)
				active[still++] = active[j];
			else
				q->finished = true;
		}
		nactive = still;
	}

	FreeAccessStrategy(bas);
	pfree(rows);
	pfree(itids);
	pfree(active);
	if (count)
	{
		pfree(count);
		pfree(offset);
		pfree(members);
	}
}

/*
 * The CPU pass for every query of the batch the GPU did not answer: one
 * pass over the index (per round of lists, IVF) for all of them.
 */
static void
CpuSearchBatch(KnnState *st)
{
	int		   *group = palloc(sizeof(int) * st->nb);
	int			ng = 0;

	for (int i = 0; i < st->nb; i++)
	{
		KnnQuery   *q = &st->q[i];

		if (q->finished)
			continue;
		if (st->meta.lists > 1)
		{
			/* the order the index scan probes them in */
			q->listOrder = palloc(sizeof(int) * st->meta.lists);
			GpuivfOrderLists((GpuivfMetric) st->meta.metric, st->centroids, st->meta.lists,
							 st->dims, q->x, q->listOrder);
			q->nextList = 0;
		}
		group[ng++] = i;
	}
	if (ng > 0)
		CpuSearch(st, group, ng);
	pfree(group);
}

/* Whether the batch goes to the GPU service: GpuivfGpuRoute's rules */
static bool
KnnGpuRoute(KnnState *st)
{
	GpuivfRouteData route;

	if (st->meta.lists != 1)
		return false;
	/* the index scans' decision (threshold, service, memory cap), and its
	 * WARNING (auto) or ERROR (cuda) when it says so */
	GpuivfRouteDecide(st->index, &st->meta, &route);
	if (!route.gpu && route.sqlstate != 0)
		CodevecGpuFallback(route.why, route.sqlstate);
	return route.gpu;
}

/* What a query's exact distance and visibility check need */
typedef struct KnnProveArg
{
	KnnState   *st;
	const float *x;				/* the query */
} KnnProveArg;

/* The exact distance of a candidate row: the CPU pass's own */
static double
KnnExact(void *arg, const float *row)
{
	KnnProveArg *a = (KnnProveArg *) arg;

	return KnnDistance(a->st->metric, row, a->x, a->st->dims);
}

/* A candidate counts when its row is visible; out gets the visible TID */
static bool
KnnKeep(void *arg, ItemPointer tid, ItemPointer out)
{
	return RowVisible(((KnnProveArg *) arg)->st, tid, out);
}

/*
 * Decide query qi (the j-th of answer r) from its GPU candidates when they
 * prove its k rows (GpuivfGpuProve: exact distance strictly below the
 * bound, visible). Returns whether the query was answered; otherwise the
 * CPU pass takes it.
 */
static bool
GpuDecide(KnnState *st, int qi, const GpuKnnRequest *r, int j, GpuivfCandidate *cand)
{
	KnnQuery   *q = &st->q[qi];
	KnnProveArg arg = {st, q->x};
	bool		all;
	int			nvalid;
	int			ncand;

	ncand = GpuivfGpuProve(r, j, st->metric, q->x, KnnExact, KnnKeep, &arg, cand, &all, &nvalid);
	if (ncand < st->k && !all)
		return false;
	q->ndone = Min(ncand, st->k);
	for (int i = 0; i < q->ndone; i++)
	{
		q->done[i].distance = cand[i].distance;
		q->done[i].tid = cand[i].tid;
	}
	q->finished = true;
	return true;
}

/*
 * The GPU path: the queries in KNN requests of up to 256 MB
 * (GpuivfGpuAskKnn: the index copy loaded or appended when the service has
 * none current, its one failure policy); queries proven by their
 * candidates are finished, the rest are left to the CPU pass, and all of
 * them when the service cannot serve.
 */
static void
GpuSearch(KnnState *st)
{
	int			dims = st->dims;
	int			kg = Min(GPUIVF_GPU_MAX_K, st->k + Max(16, st->k / 2));
	Size		perQuery = GpuKnnRequestSize(2, dims, kg) - GpuKnnRequestSize(1, dims, kg);
	int			chunk = (int) Min((Size) st->nb,
								  Max((Size) 1, (KNN_GPU_REQUEST_BYTES - GpuKnnRequestSize(0, dims, kg)) / perQuery));
	GpuIndexKey key;
	dsm_segment *seg;
	GpuivfCandidate *cand = palloc(sizeof(GpuivfCandidate) * kg);
	const float **queries = palloc(sizeof(float *) * chunk);
	int			answered = 0;

	GpuivfGpuKey(st->index, &st->meta, &key);
	seg = dsm_create(GpuKnnRequestSize(chunk, dims, kg), 0);
	for (int first = 0; first < st->nb; first += chunk)
	{
		GpuivfGpuAskData ask;
		const GpuKnnRequest *r = (const GpuKnnRequest *) dsm_segment_address(seg);
		bool		ok;

		memset(&ask, 0, sizeof(ask));
		ask.index = st->index;
		ask.metric = st->metric;
		ask.dims = dims;
		ask.nq = Min(chunk, st->nb - first);
		for (int j = 0; j < ask.nq; j++)
			queries[j] = st->q[first + j].x;
		ask.queries = queries;
		ask.k = kg;
		ask.key = &key;			/* a refresh moves it on for the next chunks */
		ok = GpuivfGpuAskKnn(&ask, seg);
		st->refreshes += (int) (ask.uploads + ask.appends);
		if (!ok)
			break;				/* auto: counted, warned; the CPU pass */

		for (int j = 0; j < ask.nq; j++)
			if (GpuDecide(st, first + j, r, j, cand))
				answered++;
		CHECK_FOR_INTERRUPTS();
	}
	dsm_detach(seg);
	pfree(queries);
	pfree(cand);
	ereport(DEBUG1,
			(errmsg("codevec_knn: %d of %d queries answered by the GPU service, %d left to the CPU",
					answered, st->nb, st->nb - answered)));
}

/*
 * Open the index and its table after checking that the caller may read the
 * table; ERROR unless it is a valid gpuivf index.
 */
static void
OpenIndex(Oid indexOid, Relation *heapRel, Relation *index)
{
	Oid			heapOid = IndexGetRelation(indexOid, true);
	AclResult	aclresult;

	if (!OidIsValid(heapOid))
	{
		char	   *name = get_rel_name(indexOid);

		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("relation with OID %u does not exist", indexOid)));
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a gpuivf index", name),
				 errhint("Pass the index: CREATE INDEX ... ON t USING gpuivf (emb).")));
	}
	/* the caller reads the table's rows (their TIDs and distances) */
	aclresult = pg_class_aclcheck(heapOid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(heapOid)),
					   get_rel_name(heapOid));

	/* the table first, then the index, as the executor locks them */
	*heapRel = table_open(heapOid, AccessShareLock);
	*index = index_open(indexOid, AccessShareLock);
	if (IndexGetRelation(indexOid, false) != heapOid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("could not open parent table of index \"%s\"",
						RelationGetRelationName(*index))));
	if ((*index)->rd_indam->amgettuple != gpuivfgettuple)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a gpuivf index", RelationGetRelationName(*index)),
				 errhint("Pass the index: CREATE INDEX ... ON t USING gpuivf (emb).")));
	if (!(*index)->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is not valid", RelationGetRelationName(*index)),
				 errhint("REINDEX it.")));
	/* row-level security would filter rows that this function would not */
	if (check_enable_rls(heapOid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("codevec_knn cannot search table \"%s\": row-level security applies to it",
						RelationGetRelationName(*heapRel)),
				 errhint("Use ORDER BY emb <op> q LIMIT k, which applies the policies.")));
}

/* Error context: which query of the array was being read */
static void
QueryErrorCallback(void *arg)
{
	errcontext("query %d of codevec_knn", *(int *) arg);
}

PG_FUNCTION_INFO_V1(codevec_knn);

/*
 * codevec_knn(index regclass, queries codevec[], k integer) RETURNS TABLE
 * (query integer, rank integer, heap_tid tid, distance float8): the k
 * nearest visible rows of each query (file comment). Errors: 42809 not a
 * gpuivf index, 42501 no SELECT on its table (or row-level security),
 * 22023 k outside 1..1024, 22000 a NULL query or one of other dimensions.
 */
Datum
codevec_knn(PG_FUNCTION_ARGS)
{
	Oid			indexOid = PG_GETARG_OID(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	int32		k = PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KnnState	st;
	MemoryContext ctx,
				old;
	Datum	   *elems;
	bool	   *nulls;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			pos = 0;
	ErrorContextCallback errcb;

	/* no catalog lookup per call: one per row of a LATERAL join adds up */
	CodevecInitSRF(fcinfo);
	memset(&st, 0, sizeof(st));
	OpenIndex(indexOid, &st.heapRel, &st.index);
	if (k < 1 || k > KNN_MAX_K)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 1 and %d, not %d", KNN_MAX_K, k)));
	st.k = k;
	st.metric = GpuivfGetMetric(st.index);
	GpuivfReadMeta(st.index, &st.meta);
	st.dims = st.meta.dims;

	ctx = AllocSetContextCreate(CurrentMemoryContext, "codevec_knn", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);

	/* the queries: none NULL, every one of the index's dimensions */
	get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
	deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
					  &elems, &nulls, &st.nq);
	errcb.callback = QueryErrorCallback;
	errcb.arg = &pos;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	st.queries = palloc_extended(sizeof(float) * (Size) Max(st.nq, 1) * st.dims, MCXT_ALLOC_HUGE);
	for (pos = 1; pos <= st.nq; pos++)
	{
		Codevec    *v;

		if (nulls[pos - 1])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("codevec_knn query %d is NULL", pos),
					 errhint("Remove NULL elements, e.g. array_remove(queries, NULL).")));
		v = DatumGetCodevec(elems[pos - 1]);
		GpuivfCheckQueryDims(st.metric, st.dims, v);
		memcpy(st.queries + (Size) (pos - 1) * st.dims, v->x, sizeof(float) * st.dims);
		if ((Pointer) v != DatumGetPointer(elems[pos - 1]))
			pfree(v);
	}
	error_context_stack = errcb.previous;
	pfree(elems);
	pfree(nulls);

	if (st.nq > 0)
	{
		Tuplestorestate *ts = rsinfo->setResult;
		TupleDesc	tupdesc = rsinfo->setDesc;
		bool		gpu;
		Size		budget = Max((Size) work_mem * 1024, KNN_MIN_GROUP_BYTES);
		Size		perQuery;
		int			batchMax;
		MemoryContext batchCtx = AllocSetContextCreate(ctx, "codevec_knn batch",
													   ALLOCSET_DEFAULT_SIZES);

		st.listStarts = palloc(sizeof(BlockNumber) * st.meta.lists);
		st.centroids = GpuivfLoadCentroids(st.index, &st.meta, st.listStarts, NULL);
		st.probes = st.meta.lists > 1 ? Max(1, Min(gpuivf_probes, st.meta.lists)) : 1;

		/* the heap fetches of an index scan, under the caller's snapshot */
		st.snapshot = GetActiveSnapshot();
		PredicateLockRelation(st.heapRel, st.snapshot);	/* serializable: a whole-table read */
		st.fetch = table_index_fetch_begin(st.heapRel);
		st.slot = table_slot_create(st.heapRel, NULL);
		st.visCtx = AllocSetContextCreate(ctx, "codevec_knn visibility", ALLOCSET_DEFAULT_SIZES);
		VisCacheReset(&st);
		gpu = KnnGpuRoute(&st);

		/*
		 * Batches of queries whose results, heaps and list orders fit in
		 * max(work_mem, 64 MB): all of them unless nq x k is large. Each
		 * batch is one GPU request (or a few) and one CPU pass, and its
		 * rows go to the tuplestore (which spills to disk) before the next.
		 */
		perQuery = sizeof(KnnQuery) + sizeof(KnnItem) * 2 * (Size) k +
			(st.meta.lists > 1 ? (sizeof(int) + sizeof(double)) * (Size) st.meta.lists : 0);
		batchMax = (int) Min((Size) st.nq, Max((Size) 1, budget / perQuery));
		for (int base = 0; base < st.nq; base += batchMax)
		{
			MemoryContext bold = MemoryContextSwitchTo(batchCtx);

			st.nb = Min(batchMax, st.nq - base);
			st.q = palloc0(sizeof(KnnQuery) * st.nb);
			for (int i = 0; i < st.nb; i++)
			{
				st.q[i].x = st.queries + (Size) (base + i) * st.dims;
				st.q[i].done = palloc(sizeof(KnnItem) * k);
				st.q[i].heap = palloc(sizeof(KnnItem) * k);
			}
			if (gpu)
				GpuSearch(&st);
			CpuSearchBatch(&st);

			for (int i = 0; i < st.nb; i++)
				for (int r = 0; r < st.q[i].ndone; r++)
				{
					Datum		values[4];
					bool		isnull[4] = {false, false, false, false};

					values[0] = Int32GetDatum(base + i + 1);
					values[1] = Int32GetDatum(r + 1);
					values[2] = PointerGetDatum(&st.q[i].done[r].tid);
					values[3] = Float8GetDatum(st.q[i].done[r].distance);
					tuplestore_putvalues(ts, tupdesc, values, isnull);
				}
			MemoryContextSwitchTo(bold);
			MemoryContextReset(batchCtx);
		}

		table_index_fetch_end(st.fetch);
		ExecDropSingleTupleTableSlot(st.slot);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	index_close(st.index, AccessShareLock);
	table_close(st.heapRel, AccessShareLock);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(codevec_knn_support);

/*
 * codevec_knn_support: planner support of codevec_knn: its row estimate,
 * nq x k when k is a constant and the array a constant or an ARRAY[...]
 * of nq elements (nq assumed 100 otherwise), so a join back to the table through heap_tid is costed on the
 * rows it really gets.
 */
Datum
codevec_knn_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	Node	   *ret = NULL;

	if (IsA(rawreq, SupportRequestRows))
	{
		SupportRequestRows *req = (SupportRequestRows *) rawreq;

		if (is_funcclause(req->node))
		{
			List	   *args = ((FuncExpr *) req->node)->args;
			Node	   *qarg = list_length(args) == 3 ? lsecond(args) : NULL;
			Node	   *karg = list_length(args) == 3 ? lthird(args) : NULL;

			if (karg != NULL && IsA(karg, Const) && !((Const *) karg)->constisnull)
			{
				int32		k = DatumGetInt32(((Const *) karg)->constvalue);
				double		nq = 100;

				if (IsA(qarg, ArrayExpr) && !((ArrayExpr *) qarg)->multidims)
					nq = list_length(((ArrayExpr *) qarg)->elements);
				else if (IsA(qarg, Const))
				{
					Const	   *c = (Const *) qarg;

					if (c->constisnull)
						nq = 0;
					else
					{
						ArrayType  *a = DatumGetArrayTypeP(c->constvalue);

						nq = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
					}
				}
				req->rows = Max(1.0, nq * Min(Max(k, 1), KNN_MAX_K));
				ret = (Node *) req;
			}
		}
	}
	PG_RETURN_POINTER(ret);
}
