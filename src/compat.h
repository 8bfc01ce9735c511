/*
 * compat.h
 *	  Every difference between the PostgreSQL versions codevec builds
 *	  against (15 and 18, both tested), behind PG_VERSION_NUM, in one place.
 *
 * The rest of src/ is written against one spelling of each interface and
 * uses the names below where the server's spelling changed:
 *
 *	  VARSIZE(), VARDATA() ...		16 moved the varlena macros from
 *									postgres.h to varatt.h
 *	  pg_noreturn					18 spells the noreturn marker as a
 *									prefix; 15 has pg_attribute_noreturn()
 *	  CodevecRelFileNumber(rel)		16 renamed RelFileNode rd_node.relNode to
 *									RelFileLocator rd_locator.relNumber
 *									(the relation's file number: it changes
 *									on REINDEX, TRUNCATE, VACUUM FULL)
 *	  CodevecMyProcNumber			17 dropped PGPROC.pgprocno for the global
 *									MyProcNumber (index into allProcs)
 *	  CodevecMyLocalXid				17 moved PGPROC.lxid into PGPROC.vxid
 *	  CodevecVacuumDelayPoint()		18 added vacuum_delay_point(bool
 *									is_analyze)
 *	  CodevecDisableIndexPath(path)	keeps the planner off an index path
 *									the AM cannot run (no ORDER BY): 18
 *									compares a path's disabled_nodes before
 *									its cost, so an infinite cost no longer
 *									loses to a scan turned off with
 *									enable_seqscan = off
 *	  CodevecCountIndexSearch(scan)	one index search in the statistics
 *									(pg_stat_*_indexes.idx_scan) and, on
 *									18, EXPLAIN ANALYZE's "Index Searches"
 *	  CodevecStandardExplainOneQuery()
 *									what EXPLAIN does without a hook: 17 has
 *									standard_ExplainOneQuery(); 15 plans and
 *									calls ExplainOnePlan as explain.c does
 *									(whose signature changed in 17 and 18)
 *
 * EXPLAIN's part is only compiled where commands/explain.h was included
 * before this header (18 moved ExplainState into commands/explain_state.h
 * and the ExplainProperty*() / group functions into explain_format.h), so
 * the files that print EXPLAIN output include this header after it, and
 * other files do not pay for the planner's headers.
 *
 * Sources: the server headers of each version (src/include of 15.x as
 * Debian ships it and of 18.6 from tools/install-pg18.sh) and their
 * release notes (16: RelFileNode -> RelFileLocator; 17: ProcNumber; 18:
 * the explain.h split).
 */
#ifndef CODEVEC_COMPAT_H
#define CODEVEC_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#error "codevec needs PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* a function that never returns: pg_noreturn static void f(...) */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* the relation's current file number (RelFileNumber / Oid), a cache key */
#if PG_VERSION_NUM >= 160000
#define CodevecRelFileNumber(rel)	((rel)->rd_locator.relNumber)
#else
#define CodevecRelFileNumber(rel)	((rel)->rd_node.relNode)
#endif

/* this backend's index into ProcGlobal->allProcs (for SetLatch) */
#if PG_VERSION_NUM >= 170000
#define CodevecMyProcNumber		MyProcNumber
#else
#define CodevecMyProcNumber		(MyProc->pgprocno)
#endif

/* this backend's local transaction id (17 moved it into PGPROC.vxid) */
#if PG_VERSION_NUM >= 170000
#define CodevecMyLocalXid		(MyProc->vxid.lxid)
#else
#define CodevecMyLocalXid		(MyProc->lxid)
#endif

/* cost-based vacuum delay inside an index AM's bulkdelete loop */
#if PG_VERSION_NUM >= 180000
#define CodevecVacuumDelayPoint()	vacuum_delay_point(false)
#else
#define CodevecVacuumDelayPoint()	vacuum_delay_point()
#endif

/*
 * amgettuple: count one index search (a scan or rescan that reads the
 * index). 18's EXPLAIN ANALYZE prints scan->instrument->nsearches as
 * "Index Searches", which every AM bumps beside pgstat_count_index_scan().
 */
#if PG_VERSION_NUM >= 180000
#define CodevecCountIndexSearch(scan) \
	do { \
		pgstat_count_index_scan((scan)->indexRelation); \
		if ((scan)->instrument != NULL) \
			(scan)->instrument->nsearches++; \
	} while (0)
#else
#define CodevecCountIndexSearch(scan)	pgstat_count_index_scan((scan)->indexRelation)
#endif

/*
 * amcostestimate: never choose this path. 15 weighs disabled paths by
 * disable_cost (1e10) only, so the caller's infinite cost is enough; 18
 * counts disabled nodes first: two is more than a seq scan turned off
 * with enable_seqscan = off (one), which then still wins, as on 15. Seen
 * in pgvector's hnswcostestimate and the pgsql-hackers thread "On
 * disable_cost".
 */
#if PG_VERSION_NUM >= 180000
#define CodevecDisableIndexPath(ipath)	((ipath)->path.disabled_nodes = 2)
#else
#define CodevecDisableIndexPath(ipath)	((void) (ipath))
#endif

#endif							/* CODEVEC_COMPAT_H */

/*
 * EXPLAIN (outside the include guard: compiled the first time this header
 * is included after commands/explain.h, whose guard is EXPLAIN_H).
 */
#if defined(EXPLAIN_H) && !defined(CODEVEC_COMPAT_EXPLAIN_H)
#define CODEVEC_COMPAT_EXPLAIN_H

#if PG_VERSION_NUM >= 180000
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#endif
#if PG_VERSION_NUM < 170000
#include "executor/instrument.h"
#include "portability/instr_time.h"
#include "tcop/tcopprot.h"
#endif

/*
 * CodevecStandardExplainOneQuery: plan query and explain the plan, as
 * EXPLAIN does when no ExplainOneQuery_hook is set (the arguments are the
 * hook's). Errors: whatever planning and EXPLAIN raise.
 */
static inline void
CodevecStandardExplainOneQuery(Query *query, int cursorOptions, IntoClause *into,
							   ExplainState *es, const char *queryString,
							   ParamListInfo params, QueryEnvironment *queryEnv)
{
#if PG_VERSION_NUM >= 170000
	standard_ExplainOneQuery(query, cursorOptions, into, es, queryString, params, queryEnv);
#else
	/* explain.c's ExplainOneQuery of PostgreSQL 15 without the hook call */
	PlannedStmt *plan;
	instr_time	planstart,
				planduration;
	BufferUsage bufusage_start,
				bufusage;

	if (es->buffers)
		bufusage_start = pgBufferUsage;
	INSTR_TIME_SET_CURRENT(planstart);
	plan = pg_plan_query(query, queryString, cursorOptions, params);
	INSTR_TIME_SET_CURRENT(planduration);
	INSTR_TIME_SUBTRACT(planduration, planstart);
	if (es->buffers)
	{
		memset(&bufusage, 0, sizeof(BufferUsage));
		BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
	}
	ExplainOnePlan(plan, into, es, queryString, params, queryEnv,
				   &planduration, (es->buffers ? &bufusage : NULL));
#endif
}

#endif							/* EXPLAIN_H && !CODEVEC_COMPAT_EXPLAIN_H */
