/*
 * codevec.c
 *	  Module entry point: _PG_init and the build/runtime report.
 *
 * _PG_init runs in every backend that loads the library, and in the
 * postmaster when codevec is in shared_preload_libraries. It therefore
 * defines GUCs, picks CPU kernels and (when preloaded) registers the GPU
 * service worker only: nothing here may initialise CUDA (a CUDA context
 * does not survive fork()); the service does that in its own process.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "vector.h"
#include "distance.h"
#include "embed.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#endif

PG_MODULE_MAGIC;

#define CODEVEC_VERSION_STR "0.2.0"

PGDLLEXPORT void _PG_init(void);

/*
 * _PG_init: define every GUC of the extension and reserve its prefixes.
 */
void
_PG_init(void)
{
	CodevecDistanceInit();
	CodevecEmbedInit();
	GpuivfInit();
	GpuivfExplainInit();
	CodevecGpuServiceInit();
	MarkGUCPrefixReserved("codevec");
	/* last: it reads codevec.device, which the GPU service defines */
	CodevecEmbedPreload();
}

PG_FUNCTION_INFO_V1(codevec_build_info);
/*
 * codevec_build_info: one row describing this build and this machine:
 * version, CPU kernels in use, whether CUDA was compiled in, the CUDA runtime
 * version, the number of CUDA devices visible to this backend and the first
 * device's name (NULL when none). Asking for the device count initialises
 * CUDA in the calling backend when a driver is present.
 */
Datum
codevec_build_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, true, false, true};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "codevec_build_info: return type must be a row type");

	values[0] = CStringGetTextDatum(CODEVEC_VERSION_STR);
	values[1] = CStringGetTextDatum(codevec_kernels->name);
#ifdef CODEVEC_USE_CUDA
	{
		int			version = 0;
		int			count = 0;
		char		errbuf[256] = "";

		values[2] = BoolGetDatum(true);
		codevec_cuda_runtime_version(&version);
		values[3] = CStringGetTextDatum(psprintf("%d.%d", version / 1000, (version % 1000) / 10));
		nulls[3] = false;
		if (codevec_cuda_device_count(&count, errbuf, sizeof(errbuf)) != 0)
			ereport(DEBUG1, (errmsg("codevec: no CUDA device: %s", errbuf)));
		values[4] = Int32GetDatum(count);
		if (count > 0)
		{
			char		name[256];

			if (codevec_cuda_device_name(0, name, sizeof(name), errbuf, sizeof(errbuf)) == 0)
			{
				values[5] = CStringGetTextDatum(name);
				nulls[5] = false;
			}
		}
	}
#else
	values[2] = BoolGetDatum(false);
	values[4] = Int32GetDatum(0);
#endif
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
