/*
 * gpuivf.c
 *	  The gpuivf access method's handler, options, GUCs and opclass
 *	  validation. The phases live in gpuivfbuild.c, gpuivfinsert.c,
 *	  gpuivfscan.c and gpuivfvacuum.c, the cost estimate beside the routing
 *	  it prices (gpuivfroute.c); see gpuivf.h for the design.
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
int			gpuivf_gpu_min_rows = 0;
bool		gpuivf_prefetch = true;

static relopt_kind gpuivf_relopt_kind;

/*
 * GpuivfInit: define the lists reloption and the gpuivf.* GUCs. Called
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
	DefineCustomBoolVariable("gpuivf.prefetch",
							 "Lets codevec_gpu_prefetch post a gpuivf scan's GPU request ahead of the scan.",
							 "code.search's hybrid mode then computes its keyword list while the GPU "
							 "service finds the nearest rows. Off: codevec_gpu_prefetch posts nothing.",
							 &gpuivf_prefetch, true,
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
