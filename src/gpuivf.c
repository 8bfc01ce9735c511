/*
 * gpuivf.c
 *	  The gpuivf access method's handler, options, GUCs, cost estimate and
 *	  opclass validation. The phases live in gpuivfbuild.c, gpuivfinsert.c,
 *	  gpuivfscan.c and gpuivfvacuum.c; see gpuivf.h for the design.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/amvalidate.h"
#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"

int			gpuivf_probes = GPUIVF_DEFAULT_PROBES;

static relopt_kind gpuivf_relopt_kind;

/*
 * GpuivfInit: define the lists reloption and the gpuivf.probes GUC. Called
 * from _PG_init.
 */
void
GpuivfInit(void)
{
	gpuivf_relopt_kind = add_reloption_kind();
	add_int_reloption(gpuivf_relopt_kind, "lists",
					  "Number of inverted lists (1 = exact flat index)",
					  GPUIVF_DEFAULT_LISTS, GPUIVF_MIN_LISTS, GPUIVF_MAX_LISTS,
					  AccessExclusiveLock);

	DefineCustomIntVariable("gpuivf.gpu_min_rows",
							"Rows to scan from which a gpuivf scan runs on the GPU.",
							"With codevec.device = auto, scans of fewer rows (pg_class.reltuples; "
							"IVF: times probes / lists) run on the CPU. 0: the break-even this "
							"backend measures (codevec_gpu_routing(index)); -1: never the GPU. "
							"With codevec.device = cuda every scan goes to the GPU.",
							&gpuivf_gpu_min_rows, 0, -1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("gpuivf.probes",
							"Number of lists a gpuivf IVF scan visits.",
							"Only for indexes WITH (lists > 1); more probes: better recall, slower. "
							"Values above the index's lists are capped.",
							&gpuivf_probes,
							GPUIVF_DEFAULT_PROBES, 1, GPUIVF_MAX_LISTS,
							PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("gpuivf");
}

/* Parse and validate WITH (...) */
static bytea *
gpuivfoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"lists", RELOPT_TYPE_INT, offsetof(GpuivfOptions, lists)},
	};

	return (bytea *) build_reloptions(reloptions, validate, gpuivf_relopt_kind,
									  sizeof(GpuivfOptions), tab, lengthof(tab));
}

/*
 * Estimate the cost of an ordered gpuivf scan. The CPU scan reads every
 * page of the probed lists and computes one distance per vector before it
 * returns its first row, so nearly all the cost is startup cost; then only
 * the rows the executor asks for are fetched from the heap. A scan the GPU
 * service will answer (GpuivfRouteDecide: the scan's own decision) costs
 * the routing model's measured GPU time, in the units in which the CPU
 * path's per-row cost prices its measured time per row.
 */
static void
gpuivfcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				   Cost *indexStartupCost, Cost *indexTotalCost,
				   Selectivity *indexSelectivity, double *indexCorrelation,
				   double *indexPages)
{
	GenericCosts costs;
	int			lists;
	double		fraction;
	double		limit;
	Relation	index;
	GpuivfRouteData route;
	const GpuivfRoutingModel *model = NULL;

	/* only ORDER BY scans: without an ordering operator the index is useless */
	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		CodevecDisableIndexPath(path);
		return;
	}

	index = index_open(path->indexinfo->indexoid, NoLock);
	lists = GpuivfGetLists(index);
	route.gpu = false;
	if (codevec_device != CODEVEC_DEVICE_CPU)
	{
		GpuivfMetaPageData meta;

		GpuivfReadMeta(index, &meta);
		GpuivfRouteDecide(index, &meta, &route);
		if (route.gpu)
			model = GpuivfGpuModel(index, &meta);
	}
	index_close(index, NoLock);
	fraction = lists <= 1 ? 1.0 : Min(1.0, (double) Min(gpuivf_probes, lists) / lists);

	MemSet(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);

	/* rows the executor is expected to fetch: the LIMIT, else all */
	limit = root->limit_tuples > 0 ? root->limit_tuples : path->indexinfo->tuples;

	/*
	 * Startup: the probed share of the index pages and one distance per
	 * vector (the distance function's cost, in cpu_operator_cost units),
	 * plus the heapify. The heap rows themselves are fetched as returned.
	 */
	*indexStartupCost = fraction * (costs.numIndexPages * seq_page_cost +
									path->indexinfo->tuples *
									(cpu_index_tuple_cost + cpu_operator_cost));

	/*
	 * A scan the GPU service will answer: the fixed cost of a request
	 * (round trip, launch, recheck) and the device's time per row scanned
	 * (IVF: the probed share), priced
	 * at the CPU path's units per measured nanosecond; the first scan after
	 * a change also uploads the index (not counted: it is paid once).
	 */
	if (route.gpu && model != NULL && model->gpuFixedUs >= 0 && model->cpuNsPerRow > 0)
	{
		double		unitsPerNs = (cpu_index_tuple_cost + cpu_operator_cost) / model->cpuNsPerRow;

		*indexStartupCost = unitsPerNs * (model->gpuFixedUs * 1000.0 +
										  fraction * path->indexinfo->tuples * model->gpuNsPerRow);
	}
	else if (route.gpu)
		*indexStartupCost = 100 * cpu_operator_cost +
			Min(limit, path->indexinfo->tuples) * cpu_operator_cost;
	*indexTotalCost = *indexStartupCost +
		Min(limit, path->indexinfo->tuples) * (random_page_cost + cpu_tuple_cost);
	*indexSelectivity = 1.0;
	*indexCorrelation = 0;
	*indexPages = fraction * costs.numIndexPages;
}

/*
 * Validate an opclass: one ordering operator (strategy 1) returning float8
 * and distance support function 1 (codevec, codevec) -> float8.
 */
static bool
gpuivfvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup;
	Form_pg_opclass classform;
	CatCList   *proclist,
			   *oprlist;
	bool		haveproc = false,
				haveop = false;
	char	   *opclassname;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opclassname = NameStr(classform->opcname);

	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(classform->opcfamily));
	for (int i = 0; i < proclist->n_members; i++)
	{
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(&proclist->members[i]->tuple);

		if (procform->amprocnum != GPUIVF_DISTANCE_PROC ||
			!check_amproc_signature(procform->amproc, FLOAT8OID, true, 2, 2,
									procform->amproclefttype, procform->amprocrighttype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("gpuivf operator class \"%s\" has an invalid support function %d",
							opclassname, procform->amprocnum)));
			result = false;
		}
		else
			haveproc = true;
	}
	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(classform->opcfamily));
	for (int i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);

		if (oprform->amopstrategy != 1 || oprform->amoppurpose != AMOP_ORDER ||
			!check_amop_signature(oprform->amopopr, FLOAT8OID,
								  oprform->amoplefttype, oprform->amoprighttype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("gpuivf operator class \"%s\" has an invalid operator, strategy %d",
							opclassname, oprform->amopstrategy)));
			result = false;
		}
		else
			haveop = true;
	}
	if (!haveproc || !haveop)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("gpuivf operator class \"%s\" needs ordering operator 1 and support function 1",
						opclassname)));
		result = false;
	}
	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(classtup);
	return result;
}

PG_FUNCTION_INFO_V1(gpuivfhandler);
/*
 * gpuivfhandler: the index_am_handler of gpuivf.
 */
Datum
gpuivfhandler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *amroutine = makeNode(IndexAmRoutine);

	amroutine->amstrategies = 0;
	amroutine->amsupport = 1;
	amroutine->amoptsprocnum = 0;
	amroutine->amcanorder = false;
	amroutine->amcanorderbyop = true;
	amroutine->amcanbackward = false;
	amroutine->amcanunique = false;
	amroutine->amcanmulticol = false;
	amroutine->amoptionalkey = true;
	amroutine->amsearcharray = false;
	amroutine->amsearchnulls = false;
	amroutine->amstorage = false;
	amroutine->amclusterable = false;
	amroutine->ampredlocks = false;
	amroutine->amcanparallel = false;
	amroutine->amcaninclude = false;
	amroutine->amusemaintenanceworkmem = false;
	amroutine->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	amroutine->amkeytype = InvalidOid;

	amroutine->ambuild = gpuivfbuild;
	amroutine->ambuildempty = gpuivfbuildempty;
	amroutine->aminsert = gpuivfinsert;
	amroutine->ambulkdelete = gpuivfbulkdelete;
	amroutine->amvacuumcleanup = gpuivfvacuumcleanup;
	amroutine->amcanreturn = NULL;
	amroutine->amcostestimate = gpuivfcostestimate;
	amroutine->amoptions = gpuivfoptions;
	amroutine->amproperty = NULL;
	amroutine->ambuildphasename = gpuivfbuildphasename;
	amroutine->amvalidate = gpuivfvalidate;
	amroutine->amadjustmembers = NULL;
	amroutine->ambeginscan = gpuivfbeginscan;
	amroutine->amrescan = gpuivfrescan;
	amroutine->amgettuple = gpuivfgettuple;
	amroutine->amgetbitmap = NULL;
	amroutine->amendscan = gpuivfendscan;
	amroutine->ammarkpos = NULL;
	amroutine->amrestrpos = NULL;
	amroutine->amestimateparallelscan = NULL;
	amroutine->aminitparallelscan = NULL;
	amroutine->amparallelrescan = NULL;

	PG_RETURN_POINTER(amroutine);
}
