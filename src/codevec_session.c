/*
 * codevec_session.c
 *	  codevec_session: a library for session_preload_libraries that runs
 *	  code.search once in each of its modes while a session logs in, so
 *	  that the session's first search costs what its later ones cost.
 *
 * Why.  A new backend starts with empty per-backend caches: the catalog
 * caches, the relation cache entries of code.snippets, code.files, the
 * postings and their indexes, the type and operator caches, the text
 * search configuration, the inlining of code.search's SQL text.  Filling
 * them costs a session's first code.search about 4-5 ms of CPU more than
 * its later calls (bench/keyword/README.md, "Where a session's first call
 * goes, part by part"; no part above 0.7 ms, all of it PostgreSQL's own
 * per-process state).  No change to code.search can remove that; it can
 * only be paid somewhere else.  This library pays it while the session
 * logs in, before the client's first statement: a pool (codevec-serve,
 * PgBouncer, an application's) then hands out connections whose first
 * search is as fast as any, and a client that opens a connection to run
 * one search pays about the same in all (the work moved, it did not
 * vanish).  bench/keyword/README.md, "A session's first call with
 * codevec_session", gives both figures.
 *
 * How.  PostgreSQL 15 and later call session_preload_libraries' _PG_init
 * inside the transaction that InitPostgres opens (so a library may read
 * the catalogs there), after the database, the role's and database's
 * settings (ALTER ROLE / DATABASE ... SET) and the server's shared
 * libraries are in place.  _PG_init runs each mode named by
 * codevec_session.warmup as
 *
 *     SELECT count(*) FROM code.search('<WARMUP_QUESTION>', mode => '<mode>')
 *
 * through SPI, each in its own internal subtransaction: an error (no
 * model, no privilege on schema code, a lock it may not wait for) is
 * caught, rolled back and reported by SHOW codevec_session.warmup_result
 * and in the server log (LOG), and the login goes on: a warm-up never
 * keeps anyone from logging in.  It writes nothing.  Where the database
 * has no schema "code", nothing runs.  Background workers (parallel
 * workers load the leader's libraries again), WAL senders and servers
 * before PostgreSQL 15 (no transaction at this point) are skipped.
 *
 * What it does not warm: a filtered search (lang, path_like,
 * exclude_tests: the filtered keyword list is a PL/pgSQL function compiled
 * on first use) and statements other than code.search.  Messages the
 * warm-up's searches raise (such as codevec.device = auto's once-a-session
 * "using the CPU" warning) reach the server log, not the client.
 *
 * GUCs:
 *   codevec_session.warmup (string, PGC_USERSET, default 'keyword, hybrid'):
 *     the modes to run at login, comma-separated, in order; '' turns the
 *     warm-up off (ALTER ROLE ... SET, ALTER DATABASE ... SET,
 *     PGOPTIONS='-c codevec_session.warmup=').  Hybrid plans and runs both
 *     lists, so it warms vector mode too (measured: a later vector call's
 *     first-call cost is within noise of 0); vector is not in the default
 *     because each mode embeds the question once, about 10 ms of CPU
 *     where the encoder runs on the CPU (0.3 ms on the GPU service).
 *   codevec_session.warmup_lock_timeout (integer, ms, PGC_USERSET, default
 *     100): lock_timeout during the warm-up, so that a login never waits
 *     behind a DDL's lock on code.*; 0 waits as long as lock_timeout says.
 *   codevec_session.warmup_result (string, read-only): what this session's
 *     warm-up did: "MODE MS ms" per mode run (wall time, one decimal),
 *     "skipped: REASON", or "MODE failed: MESSAGE (SQLSTATE)".
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "replication/walsender.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

/* the question every warm-up search asks: short (9 tokens), with words the
 * keyword list looks up; embedding it costs ~10 ms on a 2-core machine's
 * fp32 encoder, ~0.3 ms on the GPU service */
#define WARMUP_QUESTION "open a file and read its lines"

static char *warmup_modes = NULL;
static int	warmup_lock_timeout = 100;
static char *warmup_result_guc = NULL;
static StringInfoData warmup_result;

/* SHOW codevec_session.warmup_result: this session's warm-up */
static const char *
ShowWarmupResult(void)
{
	return warmup_result.data ? warmup_result.data : "";
}

/*
 * Run one warm-up search in its own internal subtransaction and append
 * its wall time to warmup_result; on an error, append the error instead,
 * log it and roll the subtransaction back.  The caller's memory
 * context and resource owner are restored either way (the pattern of
 * PL/pgSQL's exception blocks, pl_exec.c).
 */
static void
WarmupOne(const char *mode)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	StringInfoData sql;
	instr_time	start,
				elapsed;
	bool		ok = true;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT count(*) FROM code.search(%s, mode => %s)",
					 quote_literal_cstr(WARMUP_QUESTION), quote_literal_cstr(mode));
	INSTR_TIME_SET_CURRENT(start);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		int			rc;

		if (warmup_lock_timeout > 0)
			(void) set_config_option("lock_timeout", psprintf("%d", warmup_lock_timeout),
									 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
									 true, 0, false);
		/* SPI needs an active snapshot: the login transaction sets none */
		PushActiveSnapshot(GetTransactionSnapshot());
		if ((rc = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
		if ((rc = SPI_execute(sql.data, false, 0)) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
		SPI_finish();
		PopActiveSnapshot();
		/* nothing was written; lock_timeout's local value lasts until the
		 * login transaction ends, right after the warm-up */
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		appendStringInfo(&warmup_result, "%s%s failed: %s (%s)",
						 warmup_result.len ? ", " : "", mode, edata->message,
						 unpack_sql_state(edata->sqlerrcode));
		ereport(LOG,
				(errmsg("codevec_session: the warm-up search in mode %s failed: %s",
						mode, edata->message),
				 errdetail("The session logged in without it; its first search fills the caches itself.")));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	if (ok)
	{
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		appendStringInfo(&warmup_result, "%s%s %.1f ms", warmup_result.len ? ", " : "",
						 mode, INSTR_TIME_GET_MILLISEC(elapsed));
	}
	pfree(sql.data);
}

/*
 * Why this session runs no warm-up, or NULL when it runs one.  modes gets
 * codevec_session.warmup's list (pointing into *rawstring, both palloc'd).
 */
static const char *
WarmupSkipReason(char **rawstring, List **modes)
{
	/* a client backend only: parallel workers (B_BG_WORKER) load the
	 * leader's libraries again, and a WAL sender is still B_BACKEND here */
	if (!IsUnderPostmaster || MyBackendType != B_BACKEND || am_walsender)
		return "not a client session";
	if (!OidIsValid(MyDatabaseId))
		return "no database";
	/* before PostgreSQL 15, session_preload_libraries ran outside any transaction */
	if (!IsTransactionState())
		return "not called inside the login transaction";
	*rawstring = pstrdup(warmup_modes ? warmup_modes : "");
	/* the check hook refuses a value that is not a list; kept for safety */
	if (!SplitIdentifierString(*rawstring, ',', modes))
		return "codevec_session.warmup is not a list";
	if (*modes == NIL)
		return "codevec_session.warmup is empty";
	if (!OidIsValid(get_namespace_oid("code", true)))
		return "no schema code in this database";
	return NULL;
}

/*
 * Run the warm-up of this session: every mode of codevec_session.warmup in
 * order, or a "skipped: ..." line saying why none ran.
 */
static void
Warmup(void)
{
	char	   *rawstring = NULL;
	List	   *modes = NIL;
	const char *skip = WarmupSkipReason(&rawstring, &modes);
	ListCell   *lc;

	if (skip)
		appendStringInfo(&warmup_result, "skipped: %s", skip);
	else
	{
		foreach(lc, modes)
			WarmupOne((const char *) lfirst(lc));
	}
	list_free(modes);
	if (rawstring)
		pfree(rawstring);
}

/* codevec_session.warmup's check: a comma-separated list of code.search's modes */
static bool
CheckWarmupModes(char **newval, void **extra, GucSource source)
{
	char	   *rawstring = pstrdup(*newval);
	List	   *modes;
	ListCell   *lc;
	bool		ok = true;

	if (!SplitIdentifierString(rawstring, ',', &modes))
	{
		GUC_check_errdetail("List syntax is invalid.");
		ok = false;
	}
	else
	{
		foreach(lc, modes)
		{
			const char *m = (const char *) lfirst(lc);

			if (strcmp(m, "keyword") != 0 && strcmp(m, "vector") != 0 && strcmp(m, "hybrid") != 0)
			{
				GUC_check_errdetail("\"%s\" is not a mode of code.search (keyword, vector, hybrid).", m);
				ok = false;
				break;
			}
		}
		list_free(modes);
	}
	pfree(rawstring);
	return ok;
}

/*
 * _PG_init: define the GUCs, then (in a client backend) run the warm-up.
 */
void
_PG_init(void)
{
	MemoryContext old;

	DefineCustomStringVariable("codevec_session.warmup",
							   "Modes of code.search run once when a session logs in.",
							   "Comma-separated list of keyword, vector, hybrid; empty: no warm-up.",
							   &warmup_modes, "keyword, hybrid",
							   PGC_USERSET, GUC_LIST_INPUT,
							   CheckWarmupModes, NULL, NULL);
	DefineCustomIntVariable("codevec_session.warmup_lock_timeout",
							"lock_timeout of the warm-up's searches.",
							"0: lock_timeout's own value.",
							&warmup_lock_timeout, 100, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("codevec_session.warmup_result",
							   "What this session's warm-up did.",
							   NULL, &warmup_result_guc, "",
							   PGC_INTERNAL, GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, ShowWarmupResult);
	MarkGUCPrefixReserved("codevec_session");

	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&warmup_result);
	MemoryContextSwitchTo(old);
	Warmup();
}
