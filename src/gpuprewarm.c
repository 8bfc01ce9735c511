/*
 * gpuprewarm.c
 *	  No cold start: the GPU service remembers which index copies were in
 *	  use and, when it starts (at server start and after a restart of the
 *	  service), loads them again in the background, most recently used
 *	  first, as contrib/pg_prewarm's autoprewarm does for shared buffers.
 *
 * The list is the file pg_codevec_prewarm in the data directory, text:
 *
 *	codevec prewarm 1
 *	<database oid> <index oid>		one line per copy, most recently used first
 *
 * The service writes it (GpuPrewarmSave: a temporary file, fsync'd, then
 * durable_rename, so a crash leaves the old list or the new one, never a
 * torn one) whenever the set of complete copies changed and when it stops:
 * the copies queries ran on, most recently used first, then, during the first
 * GPU_PREWARM_KEEP_MS after its start, the entries of the list it started
 * with that it does not hold (a prewarm cut short by a shutdown loses
 * nothing; later, dropped indexes leave the list), then the other copies
 * it holds, at most GPU_PREWARM_MAX_ENTRIES. (A copy's last use alone
 * would rank copies the prewarm just loaded in reverse: the last loaded
 * would look the most recent.)
 *
 * Loading needs the index's pages, which only a backend connected to its
 * database can read; the service has no database connection. So at start
 * the service registers one dynamic background worker per database of the
 * list ("codevec gpu prewarm"), and that worker does what a query's first
 * request does: it asks the service whether the copy is current (a KNN
 * request of one query, k = 1) and, when it is not loaded, streams the
 * index with GpuivfGpuUploadIndex (gpuivfgpu.c) through the request slots.
 * A query that arrives meanwhile finds its copy loading (GPU_STATUS_BUSY)
 * and waits for that one only; its own copy loads while others queue. An
 * index that no longer exists, is no gpuivf index, or does not fit
 * codevec.gpu_memory_limit is skipped with a LOG line.
 *
 * Reading the file never trusts it: a bad header makes it empty, a bad
 * line is skipped (one LOG line per file), oids must be valid, lines are
 * read into a fixed buffer (a long line is skipped whole), and at most
 * GPU_PREWARM_MAX_ENTRIES are kept. codevec_gpu_prewarm_list() shows what
 * the next start would load.
 */
#include "postgres.h"

#include <stdio.h>
#include <unistd.h>

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "gpuivf.h"
#include "gpuserviceint.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#define GPU_PREWARM_FILE		"pg_codevec_prewarm"
#define GPU_PREWARM_HEADER		"codevec prewarm 1"

bool		codevec_gpu_prewarm = true;

/* The list the service started with (service process only) */
static GpuCopyName start_list[GPU_PREWARM_MAX_ENTRIES];
static int	start_count = 0;
static uint64 saved_generation = 0;	/* GpuCopiesGeneration() last written */
static TimestampTz start_time = 0;	/* when GpuPrewarmStart read the list */

/*
 * How long after the service's start the entries it started with are kept
 * in the list although not loaded (a prewarm still running, or cut short
 * by a shutdown); later, the list is what the service holds, so indexes
 * dropped or no longer used leave it.
 */
#define GPU_PREWARM_KEEP_MS		(10 * 60 * 1000)

static const GpuServiceHooks prewarm_hooks = {GpuPrewarmStart, GpuPrewarmSave};

/* GpuPrewarmRegister: see gpuserviceint.h */
void
GpuPrewarmRegister(void)
{
	GpuServiceRegisterHooks(&prewarm_hooks);
	DefineCustomBoolVariable("codevec.gpu_prewarm",
							 "Whether the GPU service loads the index copies it last used when it starts.",
							 "The list is pg_codevec_prewarm in the data directory; one background "
							 "worker per database loads its copies, most recently used first.",
							 &codevec_gpu_prewarm, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* One decimal oid (1 .. 2^32-1) at *p, which moves past it; false if none */
static bool
ParseOid(const char **p, Oid *out)
{
	uint64		v = 0;
	int			digits = 0;

	while (**p >= '0' && **p <= '9' && digits <= 10)
	{
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0 || digits > 10 || v == 0 || v > PG_UINT32_MAX)
		return false;
	*out = (Oid) v;
	return true;
}

/* A line "<database oid> <index oid>\n" (the newline optional at the end) */
static bool
ParseEntry(const char *line, Oid *db, Oid *ix)
{
	const char *p = line;

	if (!ParseOid(&p, db) || *p++ != ' ' || !ParseOid(&p, ix))
		return false;
	return *p == '\0' || (p[0] == '\n' && p[1] == '\0');
}

/*
 * Read a prewarm list from path into out (at most max entries); the count.
 * A missing file is an empty list; anything malformed is skipped with at
 * most one LOG line (elevel) per file. Never raises an error.
 */
int
GpuPrewarmRead(const char *path, GpuCopyName *out, int max, int elevel)
{
	FILE	   *f = AllocateFile(path, "r");
	char		line[128];
	int			n = 0,
				lineno = 0,
				bad = 0;
	bool		header = false;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		size_t		len = strlen(line);
		Oid			db,
					ix;

		lineno++;
		if (len > 0 && line[len - 1] != '\n' && !feof(f))
		{
			int			c;

			/* longer than the buffer: skip the rest of the line */
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			if (lineno == 1)
				break;			/* no header */
			bad++;
			continue;
		}
		if (lineno == 1)
		{
			header = strcmp(line, GPU_PREWARM_HEADER "\n") == 0 ||
				strcmp(line, GPU_PREWARM_HEADER) == 0;
			if (!header)
				break;
			continue;
		}
		if (!ParseEntry(line, &db, &ix))
		{
			bad++;
			continue;
		}
		if (n >= max)
			break;
		out[n].dbid = db;
		out[n].indexid = ix;
		out[n].queried = false;
		n++;
	}
	FreeFile(f);
	if (lineno > 0 && !header)
		ereport(elevel,
				(errmsg("codevec gpu prewarm: ignoring \"%s\": it does not start with \"%s\"",
						path, GPU_PREWARM_HEADER)));
	else if (bad > 0)
		ereport(elevel,
				(errmsg("codevec gpu prewarm: skipped %d malformed line(s) of \"%s\"", bad, path)));
	return n;
}

/* Whether the list holds (db, ix) among its first n entries */
static bool
ListHas(const GpuCopyName *list, int n, Oid db, Oid ix)
{
	for (int i = 0; i < n; i++)
		if (list[i].dbid == db && list[i].indexid == ix)
			return true;
	return false;
}

/* GpuPrewarmSave: see gpuserviceint.h */
void
GpuPrewarmSave(bool force)
{
	GpuCopyName list[GPU_PREWARM_MAX_ENTRIES],
				held[GPU_PREWARM_MAX_ENTRIES];
	char		path[MAXPGPATH],
				tmp[MAXPGPATH];
	uint64		gen = GpuCopiesGeneration();
	int			n,
				nheld;
	FILE	   *f;

	if (!force && gen == saved_generation)
		return;
	if (gen == 0 && start_count == 0)
		return;					/* nothing was ever loaded or listed */
	/*
	 * The copies queries ran on, most recently used first; then, early
	 * after the start, the list the service started with, in its order
	 * (copies loaded by the prewarm but not queried yet keep their rank;
	 * those not loaded yet are kept); then the other copies held.
	 */
	nheld = GpuCopiesList(held, GPU_PREWARM_MAX_ENTRIES);
	n = 0;
	for (int i = 0; i < nheld && held[i].queried; i++)
		list[n++] = held[i];
	if (!TimestampDifferenceExceeds(start_time, GetCurrentTimestamp(), GPU_PREWARM_KEEP_MS))
		for (int i = 0; i < start_count && n < GPU_PREWARM_MAX_ENTRIES; i++)
			if (!ListHas(list, n, start_list[i].dbid, start_list[i].indexid))
				list[n++] = start_list[i];
	for (int i = 0; i < nheld && n < GPU_PREWARM_MAX_ENTRIES; i++)
		if (!ListHas(list, n, held[i].dbid, held[i].indexid))
			list[n++] = held[i];

	snprintf(path, sizeof(path), "%s/%s", DataDir, GPU_PREWARM_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = AllocateFile(tmp, "w");
	if (f == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("codevec gpu prewarm: could not write \"%s\": %m", tmp)));
		return;
	}
	fprintf(f, "%s\n", GPU_PREWARM_HEADER);
	for (int i = 0; i < n; i++)
		fprintf(f, "%u %u\n", list[i].dbid, list[i].indexid);
	if (fflush(f) != 0 || pg_fsync(fileno(f)) != 0 || FreeFile(f) != 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("codevec gpu prewarm: could not write \"%s\": %m", tmp)));
		unlink(tmp);
		return;
	}
	if (durable_rename(tmp, path, LOG) == 0)
		saved_generation = gen;
}

/* GpuPrewarmStart: see gpuserviceint.h */
void
GpuPrewarmStart(void)
{
	char		path[MAXPGPATH];
	Oid			dbs[GPU_PREWARM_MAX_ENTRIES];
	int			ndbs = 0;

	snprintf(path, sizeof(path), "%s/%s", DataDir, GPU_PREWARM_FILE);
	start_time = GetCurrentTimestamp();
	start_count = GpuPrewarmRead(path, start_list, GPU_PREWARM_MAX_ENTRIES, LOG);
	saved_generation = GpuCopiesGeneration();
	if (!codevec_gpu_prewarm || start_count == 0)
		return;
	/* one worker per database, in the order of each database's first entry */
	for (int i = 0; i < start_count; i++)
	{
		bool		seen = false;

		for (int j = 0; j < ndbs && !seen; j++)
			seen = dbs[j] == start_list[i].dbid;
		if (!seen)
			dbs[ndbs++] = start_list[i].dbid;
	}
	for (int j = 0; j < ndbs; j++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;	/* a hot standby too: it only reads */
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		worker.bgw_main_arg = ObjectIdGetDatum(dbs[j]);
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "codevec");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "CodevecGpuPrewarmMain");
		snprintf(worker.bgw_name, BGW_MAXLEN, "codevec gpu prewarm for database %u", dbs[j]);
		snprintf(worker.bgw_type, BGW_MAXLEN, "codevec gpu prewarm");
		if (!RegisterDynamicBackgroundWorker(&worker, NULL))
			ereport(LOG,
					(errmsg("codevec gpu prewarm: no background worker slot for database %u",
							dbs[j]),
					 errhint("Raise max_worker_processes.")));
	}
	ereport(LOG,
			(errmsg("codevec gpu prewarm: loading %d index copies of %d database(s)",
					start_count, ndbs)));
}

/*
 * Load one index's copy unless the service holds it already (the worker's
 * transaction is open); a LOG line says what happened. True when loaded.
 */
static bool
PrewarmIndex(Oid indexid)
{
	Relation	index = try_relation_open(indexid, AccessShareLock);
	GpuivfMetaPageData meta;
	GpuIndexKey key;
	GpuKnnRequest *r;
	dsm_segment *seg;
	int			status;
	int			nprobe;
	TimestampTz t0 = GetCurrentTimestamp();
	char	   *name;

	if (index == NULL)
	{
		ereport(LOG,
				(errmsg("codevec gpu prewarm: index %u of database %u no longer exists: skipped",
						indexid, MyDatabaseId)));
		return false;
	}
	if (index->rd_rel->relkind != RELKIND_INDEX ||
		index->rd_rel->relam != get_am_oid("gpuivf", true))
	{
		ereport(LOG,
				(errmsg("codevec gpu prewarm: relation \"%s\" is not a gpuivf index: skipped",
						RelationGetRelationName(index))));
		relation_close(index, AccessShareLock);
		return false;
	}
	name = pstrdup(RelationGetRelationName(index));
	GpuivfReadMeta(index, &meta);
	GpuivfGpuKey(index, &meta, &key);
	nprobe = meta.lists > 1 ? 1 : 0;

	/* does the service hold it? one query (a unit vector), k = 1 */
	seg = CodevecGpuSessionSegment(GpuKnnRequestSizeProbes(1, meta.dims, 1, nprobe));
	r = (GpuKnnRequest *) dsm_segment_address(seg);
	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_KNN;
	r->key = key;
	r->metric = 0;				/* L2: defined for any vector */
	r->dims = meta.dims;
	r->nq = 1;
	r->k = 1;
	r->nprobe = nprobe;
	memset(GpuKnnQueries(r), 0, sizeof(float) * meta.dims);
	GpuKnnQueries(r)[0] = 1.0f;
	if (nprobe > 0)
		GpuKnnProbes(r)[0] = 0;
	status = CodevecGpuCall(seg);
	if (status == 0 || status == GPU_STATUS_STALE)
	{
		ereport(LOG,
				(errmsg("codevec gpu prewarm: index \"%s\" is loaded already", name)));
		relation_close(index, AccessShareLock);
		return false;
	}
	if (status == GPU_STATUS_NOT_LOADED)
		status = GpuivfGpuUploadIndex(index, &key, meta.dims);
	relation_close(index, AccessShareLock);
	if (status != 0)
	{
		ereport(LOG,
				(errmsg("codevec gpu prewarm: index \"%s\" not loaded: %s", name,
						status == GPU_STATUS_BUSY ? "another session is loading it" :
						GpuivfGpuUploadError()[0] ? GpuivfGpuUploadError() : r->hdr.errmsg)));
		return false;
	}
	ereport(LOG,
			(errmsg("codevec gpu prewarm: loaded index \"%s\" in %.1f ms", name,
					(double) (GetCurrentTimestamp() - t0) / 1000.0)));
	return true;
}

/*
 * CodevecGpuPrewarmMain: a prewarm worker for the database main_arg: loads
 * the copies of its database that the list names, in its order; each in
 * its own transaction, an error skips that index (logged) and goes on.
 */
void
CodevecGpuPrewarmMain(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	GpuCopyName list[GPU_PREWARM_MAX_ENTRIES];
	char		path[MAXPGPATH];
	int			n,
				loaded = 0,
				tried = 0;
	TimestampTz t0;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	t0 = GetCurrentTimestamp();
	snprintf(path, sizeof(path), "%s/%s", DataDir, GPU_PREWARM_FILE);
	n = GpuPrewarmRead(path, list, GPU_PREWARM_MAX_ENTRIES, DEBUG1);
	for (int i = 0; i < n; i++)
	{
		MemoryContext cxt = CurrentMemoryContext;

		if (list[i].dbid != dbid)
			continue;
		tried++;
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		PG_TRY();
		{
			if (PrewarmIndex(list[i].indexid))
				loaded++;
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			ErrorData  *e;

			MemoryContextSwitchTo(cxt);
			e = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			ereport(LOG,
					(errmsg("codevec gpu prewarm: index %u skipped: %s", list[i].indexid,
							e->message)));
			FreeErrorData(e);
		}
		PG_END_TRY();
		CHECK_FOR_INTERRUPTS();
	}
	ereport(LOG,
			(errmsg("codevec gpu prewarm: database %u: loaded %d of %d index copies in %.1f s",
					dbid, loaded, tried, (double) (GetCurrentTimestamp() - t0) / 1e6)));
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(codevec_gpu_prewarm_list);
/*
 * codevec_gpu_prewarm_list: the index copies the GPU service would load at
 * its next start (the data directory's pg_codevec_prewarm), in order:
 * ordinal (1 first), database oid, index oid. A malformed file gives a
 * WARNING and the entries that could be read. (EXECUTE is revoked from
 * PUBLIC: it reads a server file.)
 */
Datum
codevec_gpu_prewarm_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	GpuCopyName *list = palloc(sizeof(GpuCopyName) * GPU_PREWARM_MAX_ENTRIES);
	char		path[MAXPGPATH];
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	snprintf(path, sizeof(path), "%s/%s", DataDir, GPU_PREWARM_FILE);
	n = GpuPrewarmRead(path, list, GPU_PREWARM_MAX_ENTRIES, WARNING);
	for (int i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = Int32GetDatum(i + 1);
		values[1] = ObjectIdGetDatum(list[i].dbid);
		values[2] = ObjectIdGetDatum(list[i].indexid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(list);
	return (Datum) 0;
}
