/*
 * gpuivfexplain.c
 *	  EXPLAIN says where each gpuivf index scan runs (GPU or CPU) and why,
 *	  and under ANALYZE what the scan did.
 *
 * PostgreSQL 15 has no per-node EXPLAIN hook for index access methods, so
 * the lines come at the end of the query's output, one per gpuivf index
 * scan of the plan, in plan order:
 *
 *	  gpuivf: t_l2 on GPU (NVIDIA H200, 1000000 rows)
 *	  gpuivf: t_l2 on CPU (reltuples 5000 < gpuivf.gpu_min_rows 10000)
 *
 * and in the JSON, YAML and XML formats a "gpuivf" list of groups with the
 * same facts as properties. How: ExplainOneQuery_hook notes the EXPLAIN in
 * progress (its ExplainState and query text) and plans and runs it as
 * explain.c does; ExplainOnePlan calls ExecutorEnd after printing the plan
 * and before the "Execution Time" line, still inside the query's output
 * group, and the ExecutorEnd_hook, seeing the EXPLAIN's own QueryDesc (its
 * source text is the EXPLAIN's), walks the plan state tree
 * (planstate_tree_walker: init plans, subplans, Append children ...) for
 * IndexScan nodes on gpuivf indexes while the scans still exist.
 *
 * Without ANALYZE a line gives GpuivfRouteDecide's answer: the decision the
 * scan and the cost estimate make. With ANALYZE it gives what the scan
 * did, from its GpuivfScanStats (gpuivfgpu.c counts them): scans, GPU
 * requests, candidates returned by the service, rows returned from them,
 * fallbacks to the CPU and why.
 *
 * EXPLAIN must not fail because of this: the lines are written in an
 * internal subtransaction, and an error there (other than a cancel) leaves
 * one "gpuivf: unavailable (...)" line instead. EXPLAIN EXECUTE of a
 * prepared statement does not pass through ExplainOneQuery_hook and has no
 * lines.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/relscan.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "compat.h"				/* after commands/explain.h */
#include "executor/executor.h"
#include "executor/instrument.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "nodes/nodeFuncs.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

/* An EXPLAIN in progress (nested ones stack up: a function may EXPLAIN) */
typedef struct ExplainFrame
{
	ExplainState *es;
	const char *queryString;
	bool		done;			/* its lines are written */
	struct ExplainFrame *outer;
} ExplainFrame;

static ExplainFrame *explain_top = NULL;
static ExplainOneQuery_hook_type prev_ExplainOneQuery_hook = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd_hook = NULL;

/* Whether indexid is a gpuivf index (false for one that does not exist) */
static bool
IsGpuivfIndex(Oid indexid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(indexid));
	Oid			am;

	if (!HeapTupleIsValid(tup))
		return false;
	am = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	return OidIsValid(am) && am == get_am_oid("gpuivf", true);
}

/* planstate_tree_walker callback: collect IndexScan nodes on gpuivf indexes */
static bool
CollectScans(PlanState *ps, void *context)
{
	List	  **scans = (List **) context;

	if (ps == NULL)
		return false;
	if (IsA(ps, IndexScanState) && IsGpuivfIndex(((IndexScan *) ps->plan)->indexid))
		*scans = lappend(*scans, ps);
	return planstate_tree_walker(ps, CollectScans, context);
}

/* The scan's statistics, when the node ran a gpuivf scan; else NULL */
static GpuivfScanStats *
ScanStats(IndexScanState *node)
{
	IndexScanDesc scan = node->iss_ScanDesc;

	if (scan == NULL || scan->opaque == NULL || scan->indexRelation == NULL ||
		scan->indexRelation->rd_indam == NULL ||
		scan->indexRelation->rd_indam->amgettuple != gpuivfgettuple)
		return NULL;
	return &((GpuivfScanOpaque) scan->opaque)->stats;
}

/* One scan's line or group: the decision (plan only) */
static void
DescribeDecision(ExplainState *es, const char *name, Oid indexid, bool neverExecuted)
{
	Relation	index = index_open(indexid, AccessShareLock);
	GpuivfMetaPageData meta;
	GpuivfRouteData route;
	const char *where;
	char	   *detail;

	GpuivfReadMeta(index, &meta);
	GpuivfRouteDecide(index, &meta, &route);
	index_close(index, AccessShareLock);

	if (route.gpu)
	{
		where = "GPU";
		detail = psprintf("%s, %.0f rows", route.detail, route.reltuples);
	}
	else if (route.error)
	{
		where = "none";
		detail = psprintf("codevec.device is cuda but the GPU service cannot serve: %s", route.why);
	}
	else
	{
		where = "CPU";
		detail = pstrdup(route.detail);
	}

	if (es->format == EXPLAIN_FORMAT_TEXT)
	{
		ExplainPropertyText("gpuivf",
							psprintf("%s %s%s (%s%s)", name, route.error ? "fails" : "on ",
									 route.error ? "" : where, detail,
									 neverExecuted ? "; never executed" : ""),
							es);
		return;
	}
	ExplainOpenGroup("Scan", NULL, true, es);
	ExplainPropertyText("Index Name", name, es);
	ExplainPropertyText("Device", where, es);
	ExplainPropertyText("Detail", detail, es);
	ExplainPropertyFloat("Index Rows", NULL, route.reltuples, 0, es);
	if (route.minRows >= 0)
		ExplainPropertyFloat("GPU Min Rows", NULL, route.minRows, 0, es);
	ExplainPropertyBool("Measured Threshold", route.measured, es);
	if (neverExecuted)
		ExplainPropertyBool("Executed", false, es);
	ExplainCloseGroup("Scan", NULL, true, es);
}

/* One scan's line or group: what it did (ANALYZE) */
static void
DescribeStats(ExplainState *es, const char *name, IndexScanState *node, const GpuivfScanStats *st)
{
	const char *where;
	StringInfoData detail;
	double		rows = -1;

	if (node->ss.ps.instrument != NULL)
		rows = node->ss.ps.instrument->ntuples + node->ss.ps.instrument->nfiltered1;
	where = st->gpuScans == 0 ? "CPU" :
		(st->cpuScans > 0 || st->fallbacks > 0) ? "GPU and CPU" : "GPU";

	initStringInfo(&detail);
	if (st->gpuScans > 0)
		appendStringInfo(&detail, "%s, " INT64_FORMAT " rows", st->device, st->copyRows);
	if (st->cpuScans > 0)
		appendStringInfo(&detail, "%s%s", detail.len > 0 ? "; " : "", st->cpuWhy);
	if (st->fallbacks > 0)
		appendStringInfo(&detail, "%sfell back to the CPU: %s", detail.len > 0 ? "; " : "",
						 st->fallbackWhy);

	if (es->format == EXPLAIN_FORMAT_TEXT)
	{
		StringInfoData line;

		initStringInfo(&line);
		appendStringInfo(&line, "%s on %s (%s; scans " INT64_FORMAT, name, where, detail.data, st->scans);
		if (st->requests > 0)
			appendStringInfo(&line, ", GPU requests " INT64_FORMAT ", candidates " INT64_FORMAT
							 ", rows from the GPU " INT64_FORMAT,
							 st->requests, st->candidates, st->gpuRows);
		if (st->prefetched > 0)
			appendStringInfo(&line, ", prefetched " INT64_FORMAT, st->prefetched);
		if (rows >= 0)
			appendStringInfo(&line, ", rows %.0f", rows);
		if (st->fallbacks > 0)
			appendStringInfo(&line, ", CPU fallbacks " INT64_FORMAT, st->fallbacks);
		if (st->uploads > 0)
			appendStringInfo(&line, ", uploads " INT64_FORMAT, st->uploads);
		if (st->appends > 0)
			appendStringInfo(&line, ", delta appends " INT64_FORMAT, st->appends);
		appendStringInfoChar(&line, ')');
		ExplainPropertyText("gpuivf", line.data, es);
		return;
	}
	ExplainOpenGroup("Scan", NULL, true, es);
	ExplainPropertyText("Index Name", name, es);
	ExplainPropertyText("Device", where, es);
	ExplainPropertyText("Detail", detail.data, es);
	ExplainPropertyInteger("Scans", NULL, st->scans, es);
	ExplainPropertyInteger("GPU Scans", NULL, st->gpuScans, es);
	ExplainPropertyInteger("CPU Scans", NULL, st->cpuScans, es);
	ExplainPropertyInteger("GPU Requests", NULL, st->requests, es);
	ExplainPropertyInteger("Prefetched Requests", NULL, st->prefetched, es);
	ExplainPropertyInteger("GPU Candidates", NULL, st->candidates, es);
	ExplainPropertyInteger("GPU Rows", NULL, st->gpuRows, es);
	if (rows >= 0)
		ExplainPropertyFloat("Rows", NULL, rows, 0, es);
	ExplainPropertyInteger("CPU Fallbacks", NULL, st->fallbacks, es);
	ExplainPropertyInteger("Uploads", NULL, st->uploads, es);
	ExplainPropertyInteger("Delta Appends", NULL, st->appends, es);
	if (st->gpuScans > 0)
		ExplainPropertyInteger("Copy Rows", NULL, st->copyRows, es);
	ExplainCloseGroup("Scan", NULL, true, es);
}

/* Write the line or group of every gpuivf scan in scans */
static void
DescribeScans(ExplainState *es, List *scans)
{
	ListCell   *lc;

	if (es->format != EXPLAIN_FORMAT_TEXT)
		ExplainOpenGroup("gpuivf", "gpuivf", false, es);
	foreach(lc, scans)
	{
		IndexScanState *node = (IndexScanState *) lfirst(lc);
		Oid			indexid = ((IndexScan *) node->ss.ps.plan)->indexid;
		char	   *name = get_rel_name(indexid);
		GpuivfScanStats *st = es->analyze ? ScanStats(node) : NULL;

		if (name == NULL)
			continue;			/* dropped meanwhile */
		if (st != NULL && st->scans > 0)
			DescribeStats(es, name, node, st);
		else
			DescribeDecision(es, name, indexid, es->analyze);
	}
	if (es->format != EXPLAIN_FORMAT_TEXT)
		ExplainCloseGroup("gpuivf", "gpuivf", false, es);
}

/*
 * Write the gpuivf lines of the plan under root into es, in a
 * subtransaction: an error leaves one line saying so instead.
 */
static void
ExplainGpuivf(ExplainState *es, PlanState *root)
{
	List	   *scans = NIL;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	int			len = es->str->len;
	int			indent = es->indent;
	List	   *stack;

	(void) CollectScans(root, &scans);
	if (scans == NIL)
		return;
	stack = list_copy(es->grouping_stack);
	if (IsInParallelMode())
	{
		DescribeScans(es, scans);
		return;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		DescribeScans(es, scans);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		/* a cancel stays a cancel */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		es->str->len = len;
		es->str->data[len] = '\0';
		es->indent = indent;
		es->grouping_stack = stack;
		ExplainPropertyText("gpuivf", psprintf("unavailable (%s)", edata->message), es);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * ExplainOneQuery_hook: note the EXPLAIN in progress, then plan and run it
 * as explain.c does (or as the previous hook does).
 */
static void
GpuivfExplainOneQuery(Query *query, int cursorOptions, IntoClause *into, ExplainState *es,
					  const char *queryString, ParamListInfo params, QueryEnvironment *queryEnv)
{
	ExplainFrame frame;

	frame.es = es;
	frame.queryString = queryString;
	frame.done = false;
	frame.outer = explain_top;
	explain_top = &frame;
	PG_TRY();
	{
		if (prev_ExplainOneQuery_hook)
			prev_ExplainOneQuery_hook(query, cursorOptions, into, es, queryString, params, queryEnv);
		else
			CodevecStandardExplainOneQuery(query, cursorOptions, into, es, queryString, params, queryEnv);
	}
	PG_FINALLY();
	{
		explain_top = frame.outer;
	}
	PG_END_TRY();
}

/*
 * ExecutorEnd_hook: for the QueryDesc of the EXPLAIN in progress, write
 * the gpuivf lines while the plan state and the scans still exist.
 */
static void
GpuivfExecutorEnd(QueryDesc *queryDesc)
{
	ExplainFrame *frame = explain_top;

	if (frame != NULL && !frame->done && queryDesc->sourceText == frame->queryString &&
		queryDesc->planstate != NULL)
	{
		frame->done = true;
		ExplainGpuivf(frame->es, queryDesc->planstate);
	}
	if (prev_ExecutorEnd_hook)
		prev_ExecutorEnd_hook(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

void
GpuivfExplainInit(void)
{
	prev_ExplainOneQuery_hook = ExplainOneQuery_hook;
	ExplainOneQuery_hook = GpuivfExplainOneQuery;
	prev_ExecutorEnd_hook = ExecutorEnd_hook;
	ExecutorEnd_hook = GpuivfExecutorEnd;
}
