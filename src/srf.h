/*
 * srf.h — the start of every materialized set-returning C function of
 * codevec (codevec_bm25_impacts, codevec_bm25_unpack, codevec_bm25_topk,
 * codevec_bm25_blocks_topk, codevec_knn): a tuplestore and its tuple
 * descriptor in rsinfo, without a catalog lookup per call.
 *
 * InitMaterializedSRF(fcinfo, 0) builds the descriptor with
 * get_call_result_type(), which on PostgreSQL 15 to 18 looks the function's
 * OUT arguments up in the catalog and leaves its working copies (the
 * argument name and type arrays, the names as C strings) in the per-query
 * memory context, which lives until the end of the statement: about 820
 * bytes a call.  A function called once per row of a statement (LATERAL,
 * or code.bm25_refresh() calling codevec_bm25_impacts once per snippet:
 * 602 MB of backend memory on the Linux kernel's 785k snippets, 219 MB
 * with this) grows with the rows.  The copy of rsinfo->expectedDesc
 * (MAT_SRF_USE_EXPECTED_DESC) allocates only the descriptor, which the
 * executor frees after each call.  Without an expected descriptor (no
 * caller in PostgreSQL 15 to 18 for a function returning TABLE) it falls
 * back to the lookup.  test/search/bm25.sh and test/gpuivf/run.sh check
 * that 20,000 calls in one statement hold no more memory than 200.
 */
#ifndef CODEVEC_SRF_H
#define CODEVEC_SRF_H

#include "fmgr.h"
#include "funcapi.h"
#include "nodes/execnodes.h"

/*
 * CodevecInitSRF: InitMaterializedSRF from the descriptor the executor
 * expects (see the top of this file).  Errors: those of
 * InitMaterializedSRF (0A000 when the caller cannot take a set).
 */
static inline void
CodevecInitSRF(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if (rsinfo && IsA(rsinfo, ReturnSetInfo) && rsinfo->expectedDesc != NULL)
		InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	else
		InitMaterializedSRF(fcinfo, 0);
}

#endif							/* CODEVEC_SRF_H */
