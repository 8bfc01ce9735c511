/*
 * bm25gpu.c
 *	  The backend side of BM25 on the GPU service (issue 21):
 *	  codevec_bm25_gpu_topk, the keyword top-k of code.bm25_topk, answered
 *	  by the service where it can and by codevec_bm25_blocks_topk (the
 *	  CPU's block-max pruning, src/bm25bmp.c) where it cannot, with the
 *	  same rows and the same score bits either way.
 *
 * The service keeps a store of every posting of the postings index on the
 * device (gpubm25.c, cuda/bm25_device.h), keyed by the index, its
 * relfilenode and the postings' generation: code.bm25_params.generation,
 * which every writer of postings raises in the transaction that writes
 * them (code.bm25_maintain, code.bm25_refresh). A query whose snapshot
 * sees generation g is answered by the store of generation g, which holds
 * exactly the postings that snapshot sees. When there is none, this
 * backend sends one (Bm25GpuUpload: two ordered scans of the index under
 * the query's snapshot, the first counting each term's postings, the
 * second sending them in pieces) and asks again; meanwhile the others
 * rank on the CPU (GPU_STATUS_BUSY). The postings of a transaction's own
 * uncommitted writes are never sent, nor searched on the device: their
 * generation may be taken again by another writer after a rollback, so
 * this transaction ranks on the CPU (params_xmin, the xmin of the
 * code.bm25_params row it reads, is its own).
 *
 * Documents are numbered from the first block's first id (base): document
 * = id - base, so the service's ties by document are ties by id. A corpus
 * whose ids span more than 2^31 ids, or more than GPU_BM25_MAX_SPAN times
 * the postings, ranks on the CPU.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "bm25.h"
#include "compat.h"
#include "gpuservice.h"
#include "relacl.h"
#include "srf.h"

/* postings a LOAD request carries (8 bytes each) */
#define GPU_BM25_LOAD_CHUNK		(1 << 20)

/* a store's documents (8 bytes each on the device) at most this many times its postings */
#define GPU_BM25_MAX_SPAN		64

PG_FUNCTION_INFO_V1(codevec_bm25_gpu_topk);

/*
 * A new request of size bytes, kind BM25, op and key set: in the session
 * segment, or beside a request posted ahead (hybrid code.search posts its
 * vector list's k-NN before the keyword list: CodevecGpuCallBeside leaves
 * it in flight)
 */
static GpuBm25Request *
NewRequest(dsm_segment **seg, Size size, int op, const GpuBm25Key *key)
{
	GpuBm25Request *r;

	*seg = CodevecGpuBesideSegment(size);
	r = (GpuBm25Request *) dsm_segment_address(*seg);
	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_BM25;
	r->hdr.payload_size = size - sizeof(GpuRequestHeader);
	r->key = *key;
	r->op = op;
	r->uploader = MyProcPid;
	return r;
}

/* The postings of a row's bytea (len bytes at *data), detoasted into the current context */
static void
RowPostings(TupleTableSlot *slot, AttrNumber att, const char **data, Size *len)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);
	bytea	   *b;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 postings row without postings")));
	b = DatumGetByteaPP(d);
	*data = VARDATA_ANY(b);
	*len = VARSIZE_ANY_EXHDR(b);
}

/* Send postings [first, first + n) of key's store (LOAD); the status */
static int
SendPiece(const GpuBm25Key *key, int64 first, int64 n, const uint32 *docs, const float4 *imps)
{
	dsm_segment *seg;
	GpuBm25Request *r = NewRequest(&seg, GpuBm25LoadSize(n), GPU_BM25_LOAD, key);

	r->first = first;
	r->n = n;
	memcpy(GpuBm25LoadDocs(r), docs, sizeof(uint32) * n);
	memcpy(GpuBm25LoadImpacts(r), imps, sizeof(float4) * n);
	return CodevecGpuCallBeside(seg);
}

/*
 * Send the postings of index (its table heap, block shift) as the store of
 * key; returns the last request's status (0: the store is complete), or
 * GPU_STATUS_NOT_LOADED when this corpus is not one for the device (its
 * ids too sparse).
 */
static int
Bm25GpuUpload(Relation heap, Relation index, int shift, const GpuBm25Key *key)
{
	AttrNumber	att_term = index->rd_index->indkey.values[0],
				att_block = index->rd_index->indkey.values[1],
				att_post = Bm25ColumnOf(heap, "postings", BYTEAOID);
	Snapshot	snapshot = GetActiveSnapshot();
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "bm25 gpu upload",
											  ALLOCSET_DEFAULT_SIZES),
				row_cxt = AllocSetContextCreate(cxt, "bm25 gpu row", ALLOCSET_DEFAULT_SIZES),
				old = MemoryContextSwitchTo(cxt);
	IndexScanDesc scan;
	int64	   *count;
	int64		nterms = 0,
				cap = 1024,
				minblock = PG_INT64_MAX,
				maxblock = -1,
				npostings = 0,
				sent = 0,
				fill = 0,
				base,
				ndocs;
	uint64	   *start;
	uint32	   *docs;
	float4	   *imps;
	uint16	   *offsets = palloc(sizeof(uint16) << shift);
	float4	   *impacts = palloc(sizeof(float4) << shift);
	dsm_segment *seg;
	GpuBm25Request *r;
	int			status = 0;

	if (snapshot == NULL)
		snapshot = GetTransactionSnapshot();

	/* 1. each term's postings, and the span of the blocks */
	count = palloc0(sizeof(int64) * cap);
	scan = Bm25BeginScan(heap, index, snapshot, 0);
	index_rescan(scan, NULL, 0, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		n1,
					n2;
		int32		term = DatumGetInt32(slot_getattr(slot, att_term, &n1)),
					block = DatumGetInt32(slot_getattr(slot, att_block, &n2));
		Datum		d;
		bool		n3;
		Size		raw;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, att_post, &n3);
		if (n1 || n2 || n3 || term < 0 || block < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 postings row with a NULL or negative term or block")));
		raw = toast_raw_datum_size(d) - VARHDRSZ;
		while (term >= cap)
		{
			count = repalloc(count, sizeof(int64) * cap * 2);
			memset(count + cap, 0, sizeof(int64) * cap);
			cap *= 2;
		}
		count[term] += Bm25BlockCount(raw, shift);
		nterms = Max(nterms, (int64) term + 1);
		minblock = Min(minblock, block);
		maxblock = Max(maxblock, block);
	}
	if (maxblock < 0)
		minblock = maxblock = 0;	/* no postings: one empty block */
	base = minblock << shift;
	ndocs = (maxblock - minblock + 1) << shift;
	for (int64 t = 0; t < nterms; t++)
		npostings += count[t];
	if (ndocs > PG_INT32_MAX || nterms >= PG_INT32_MAX ||
		ndocs > GPU_BM25_MAX_SPAN * Max(npostings, (int64) 1 << shift))
	{
		elog(DEBUG1, "bm25 postings not sent to the GPU service: %lld ids for %lld postings",
			 (long long) ndocs, (long long) npostings);
		status = GPU_STATUS_NOT_LOADED;
		goto done;
	}
	nterms = Max(nterms, 1);

	/* 2. a new store of that shape */
	r = NewRequest(&seg, GpuBm25CreateSize(nterms), GPU_BM25_CREATE, key);
	r->base = base;
	r->ndocs = (uint32) ndocs;
	r->nterms = (uint32) nterms;
	start = GpuBm25TermStart(r);
	start[0] = 0;
	for (int64 t = 0; t < nterms; t++)
		start[t + 1] = start[t] + (t < cap ? count[t] : 0);
	status = CodevecGpuCallBeside(seg);
	if (status != 0)
		goto done;

	/* 3. the postings in (term, block) order, a piece at a time */
	docs = palloc(sizeof(uint32) * GPU_BM25_LOAD_CHUNK);
	imps = palloc(sizeof(float4) * GPU_BM25_LOAD_CHUNK);
	index_rescan(scan, NULL, 0, NULL, 0);
	while (status == 0 && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		int32		block = DatumGetInt32(slot_getattr(slot, att_block, &isnull));
		const char *data;
		Size		len;
		int			n;
		MemoryContext o2 = MemoryContextSwitchTo(row_cxt);

		CHECK_FOR_INTERRUPTS();
		RowPostings(slot, att_post, &data, &len);
		n = Bm25BlockDecode(data, len, shift, offsets, impacts);
		MemoryContextSwitchTo(o2);
		MemoryContextReset(row_cxt);
		if (sent + fill + n > npostings)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 postings changed while they were sent to the GPU service")));
		for (int i = 0; i < n && status == 0; i++)
		{
			if (fill == GPU_BM25_LOAD_CHUNK)
			{
				status = SendPiece(key, sent, fill, docs, imps);
				sent += fill;
				fill = 0;
			}
			docs[fill] = (uint32) (((int64) block << shift) + offsets[i] - base);
			imps[fill] = impacts[i];
			fill++;
		}
	}
	if (status == 0 && fill > 0)
	{
		status = SendPiece(key, sent, fill, docs, imps);
		sent += fill;
	}
	if (status == 0 && sent != npostings)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 postings changed while they were sent to the GPU service")));

done:
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return status;
}

/*
 * Ask the service for the top k; on success the rows go into rsinfo's
 * tuplestore. Returns the request's status.
 */
static int
Bm25GpuAsk(FunctionCallInfo fcinfo, const GpuBm25Key *key, int nt, const int32 *terms,
		   const float8 *idf, int k)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	dsm_segment *seg;
	GpuBm25Request *r = NewRequest(&seg, GpuBm25TopkSize(nt, k), GPU_BM25_TOPK, key);
	int			status;

	r->nt = nt;
	r->k = k;
	memcpy(GpuBm25Idf(r), idf, sizeof(float8) * nt);
	for (int i = 0; i < nt; i++)
		GpuBm25Terms(r)[i] = (uint32) terms[i];
	status = CodevecGpuCallBeside(seg);
	if (status != 0)
		return status;
	if (r->nout < 0 || r->nout > k)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("codevec gpu service answered %d BM25 rows for k %d", r->nout, k)));
	CodevecInitSRF(fcinfo);
	for (int i = 0; i < r->nout; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(r->base + (int64) GpuBm25Docs(r)[i]);
		values[1] = Float8GetDatum(GpuBm25Scores(r)[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return 0;
}

/*
 * The query's terms and idf when they are ones the CPU function would take
 * (else it raises the error); false when the GPU service should not be
 * asked (a query the CPU must check, or answer: none of these)
 */
static bool
QueryTerms(FunctionCallInfo fcinfo, int *nt, int32 **terms, float8 **idf)
{
	ArrayType  *terms_a = PG_GETARG_ARRAYTYPE_P(0),
			   *idf_a = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *td,
			   *id;
	bool	   *tn,
			   *in;
	int			n1,
				n2;

	deconstruct_array(terms_a, INT4OID, 4, true, TYPALIGN_INT, &td, &tn, &n1);
	deconstruct_array(idf_a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &id, &in, &n2);
	if (n1 != n2 || n1 < 1 || n1 > GPU_BM25_MAX_TERMS)
		return false;
	*nt = n1;
	*terms = palloc(sizeof(int32) * n1);
	*idf = palloc(sizeof(float8) * n1);
	for (int i = 0; i < n1; i++)
	{
		if (tn[i] || in[i] || DatumGetInt32(td[i]) < 0 ||
			!(DatumGetFloat8(id[i]) >= 0 && isfinite(DatumGetFloat8(id[i]))))
			return false;
		(*terms)[i] = DatumGetInt32(td[i]);
		(*idf)[i] = DatumGetFloat8(id[i]);
		for (int j = 0; j < i; j++)
			if ((*terms)[j] == (*terms)[i])
				return false;
	}
	return true;
}

/*
 * codevec_bm25_gpu_topk(terms int4[], idf float8[], k int4, blocks_index
 *   regclass, block_shift int4, generation int8, params_xmin xid) ->
 *   TABLE(id int8, score float8)
 *
 * codevec_bm25_blocks_topk(terms, idf, k, blocks_index, block_shift) (its
 * rows, scores and errors), computed by the GPU service from its store of
 * the postings at generation (top of this file) when codevec.device
 * allows it, the service is ready, k <= 4096 and params_xmin is not this
 * transaction's; by the CPU otherwise, and whenever the service cannot
 * (a store being loaded by another backend: quietly; out of device memory
 * or a service that stopped: through CodevecGpuFallback, a WARNING with
 * codevec.device = auto, an ERROR with cuda).
 */
Datum
codevec_bm25_gpu_topk(PG_FUNCTION_ARGS)
{
	int32		k = PG_GETARG_INT32(2);
	Oid			index_oid = PG_GETARG_OID(3);
	int32		shift = PG_GETARG_INT32(4);
	TransactionId xmin = DatumGetTransactionId(PG_GETARG_DATUM(6));
	int			nt;
	int32	   *terms;
	float8	   *idf;
	Relation	index,
				heap;
	GpuBm25Key	key;
	int			status;
	static const Oid key_types[2] = {INT4OID, INT4OID};

	/* the cheap checks first: a server without the service reads no arrays here */
	if (codevec_device == CODEVEC_DEVICE_CPU || k < 1 || k > GPU_BM25_MAX_K ||
		shift < 0 || shift > BM25_MAX_SHIFT || TransactionIdIsCurrentTransactionId(xmin) ||
		(codevec_device == CODEVEC_DEVICE_CUDA ? !CodevecGpuServiceUsable() : !CodevecGpuServiceReady()) ||
		!QueryTerms(fcinfo, &nt, &terms, &idf))
		return codevec_bm25_blocks_topk(fcinfo);

	RequireIndexTableSelect(index_oid);
	index = index_open(index_oid, AccessShareLock);
	Bm25CheckIndexColumns(index, 2, key_types, "(term int4, block int4)");
	if (index->rd_index->indkey.values[0] <= 0 || index->rd_index->indkey.values[1] <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a btree index on (term int4, block int4)",
						RelationGetRelationName(index))));
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.indexid = index_oid;
	key.relfilenode = CodevecRelFileNumber(index);
	key.generation = PG_GETARG_INT64(5);

	status = Bm25GpuAsk(fcinfo, &key, nt, terms, idf, k);
	if (status == GPU_STATUS_NOT_LOADED)
	{
		/* the table only to send its postings: a query answered reads none of it */
		heap = table_open(index->rd_index->indrelid, AccessShareLock);
		status = Bm25GpuUpload(heap, index, shift, &key);
		table_close(heap, AccessShareLock);
		if (status == 0)
			status = Bm25GpuAsk(fcinfo, &key, nt, terms, idf, k);
	}
	index_close(index, AccessShareLock);
	if (status == 0)
	{
		elog(DEBUG1, "bm25 top-%d of %d terms on the GPU service (generation " INT64_FORMAT ")",
			 k, nt, key.generation);
		PG_RETURN_VOID();
	}
	if (status == GPU_STATUS_NO_MEMORY || status == GPU_STATUS_NO_DEVICE ||
		status == GPU_STATUS_UNAVAILABLE)
		CodevecGpuFallback("the GPU service cannot rank BM25 postings",
						   status == GPU_STATUS_NO_MEMORY ? ERRCODE_OUT_OF_MEMORY :
						   ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
	/* BUSY, NOT_LOADED (another backend loads them, or ids too sparse): the CPU */
	return codevec_bm25_blocks_topk(fcinfo);
}
