/*
 * main.c -- codevec-serve: command line, signals, and the two run modes:
 * the HTTP server (JSON API, the search page, MCP over Streamable HTTP at
 * /mcp) and MCP over stdio (--mcp-stdio).  See --help for the surface.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

#ifndef SERVE_STATIC_DIR
#define SERVE_STATIC_DIR "serve/static"	/* set by the Makefile */
#endif
#define SERVE_HLJS_DIR "/usr/share/javascript/highlight.js"

static void
Usage(FILE *f)
{
	fprintf(f,
			"codevec-serve " SERVE_VERSION " -- code search over HTTP (JSON API, a search page) and MCP\n"
			"\n"
			"Usage: codevec-serve [OPTION]...\n"
			"       codevec-serve --mcp-stdio [OPTION]...\n"
			"\n"
			"Serves code.search() and code.more_like_this() of a database loaded by codevec-load.\n"
			"\n"
			"Database (libpq: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ~/.pgpass apply):\n"
			"  -d, --dbname=CONNINFO     database name or conninfo string / URI\n"
			"      --pool=N              database connections (default %d)\n"
			"      --query-timeout=MS    statement_timeout of each query (default %d)\n"
			"      --wait-timeout=MS     longest wait for a free connection, then 503 (default %d)\n"
			"      --request-timeout=MS  a request's whole deadline: the wait for a connection and\n"
			"                            its statements, counted from its first line; then 504\n"
			"                            (default %d)\n"
			"      --no-warm-up          open connections at the first requests that need them\n"
			"                            (default: all at start, each running every mode's\n"
			"                            search once, so no request pays a session's first call)\n"
			"\n"
			"HTTP:\n"
			"  -l, --listen=ADDR         address to bind (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
			"  -p, --port=PORT           TCP port (default %d; 0: any free port, printed at start)\n"
			"      --token=TOKEN         require \"Authorization: Bearer TOKEN\" on /api/ and /mcp\n"
			"                            (or set CODEVEC_SERVE_TOKEN)\n"
			"      --threads=N           request threads (default %d; 0: one per connection)\n"
			"      --max-connections=N   open connections at most (default %d)\n"
			"      --idle-timeout=S      close a connection idle this long (default %d)\n"
			"      --connection-time=S   close a connection open this long, busy or not\n"
			"                            (a client trickling bytes; default %d)\n"
			"      --static-dir=DIR      the page's files (default: static/ next to the program\n"
			"                            when there, else " SERVE_STATIC_DIR ")\n"
			"  -q, --quiet               no access log\n"
			"\n"
			"MCP:\n"
			"      --mcp-stdio           speak MCP on stdin/stdout instead of HTTP\n"
			"                            (HTTP serves MCP at POST /mcp too)\n"
			"\n"
			"  -h, --help                this help\n"
			"  -V, --version             the version\n"
			"\n"
			"Routes: GET / (the page), /api/search?q=&k=&mode=&lang=&path_like=&exclude_tests=,\n"
			"/api/snippet/ID?context=N, /api/similar/ID?k=, /api/repos, /healthz; POST /mcp.\n"
			"SIGTERM or SIGINT: stop accepting, finish running requests, exit 0.\n"
			"Exit status: 0 done, 1 could not start, 2 bad usage.\n",
			SERVE_DEFAULT_POOL, SERVE_DEFAULT_QUERY_TIMEOUT, SERVE_DEFAULT_WAIT_TIMEOUT,
			SERVE_DEFAULT_REQUEST_TIMEOUT,
			SERVE_DEFAULT_PORT, SERVE_DEFAULT_THREADS, SERVE_DEFAULT_MAX_CONNECTIONS,
			SERVE_DEFAULT_IDLE_TIMEOUT, SERVE_DEFAULT_CONNECTION_TIME);
}

/* Parses an integer option in [lo, hi] or exits 2. */
static int
IntOption(const char *name, const char *s, int lo, int hi)
{
	char	   *end;
	long		v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < lo || v > hi)
	{
		fprintf(stderr, "codevec-serve: --%s must be an integer between %d and %d, not \"%s\"\n",
				name, lo, hi, s);
		exit(2);
	}
	return (int) v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"port", required_argument, NULL, 'p'},
		{"token", required_argument, NULL, 't'},
		{"pool", required_argument, NULL, 'P'},
		{"threads", required_argument, NULL, 'T'},
		{"max-connections", required_argument, NULL, 'C'},
		{"idle-timeout", required_argument, NULL, 'I'},
		{"query-timeout", required_argument, NULL, 'Q'},
		{"wait-timeout", required_argument, NULL, 'W'},
		{"request-timeout", required_argument, NULL, 'R'},
		{"connection-time", required_argument, NULL, 'L'},
		{"static-dir", required_argument, NULL, 's'},
		{"mcp-stdio", no_argument, NULL, 'm'},
		{"no-warm-up", no_argument, NULL, 'N'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	ServeConfigData c = {
		.listen = "127.0.0.1",
		.port = SERVE_DEFAULT_PORT,
		.static_dir = SERVE_STATIC_DIR,
		.hljs_dir = SERVE_HLJS_DIR,
		.pool_size = SERVE_DEFAULT_POOL,
		.threads = SERVE_DEFAULT_THREADS,
		.max_connections = SERVE_DEFAULT_MAX_CONNECTIONS,
		.idle_timeout = SERVE_DEFAULT_IDLE_TIMEOUT,
		.query_timeout = SERVE_DEFAULT_QUERY_TIMEOUT,
		.wait_timeout = SERVE_DEFAULT_WAIT_TIMEOUT,
		.request_timeout = SERVE_DEFAULT_REQUEST_TIMEOUT,
		.connection_time = SERVE_DEFAULT_CONNECTION_TIME,
	};
	ServePool	pool;
	int			opt,
				rc = 0;
	bool		static_dir_given = false;

	c.token = getenv("CODEVEC_SERVE_TOKEN");
	while ((opt = getopt_long(argc, argv, "d:l:p:qhV", longopts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'd':
				c.conninfo = optarg;
				break;
			case 'l':
				c.listen = optarg;
				break;
			case 'p':
				c.port = IntOption("port", optarg, 0, 65535);
				break;
			case 't':
				c.token = optarg;
				break;
			case 'P':
				c.pool_size = IntOption("pool", optarg, 1, 256);
				break;
			case 'T':
				c.threads = IntOption("threads", optarg, 0, 256);
				break;
			case 'C':
				c.max_connections = IntOption("max-connections", optarg, 1, 100000);
				break;
			case 'I':
				c.idle_timeout = IntOption("idle-timeout", optarg, 1, 86400);
				break;
			case 'Q':
				c.query_timeout = IntOption("query-timeout", optarg, 1, 3600000);
				break;
			case 'W':
				c.wait_timeout = IntOption("wait-timeout", optarg, 1, 3600000);
				break;
			case 'R':
				c.request_timeout = IntOption("request-timeout", optarg, 1, 3600000);
				break;
			case 'L':
				c.connection_time = IntOption("connection-time", optarg, 1, 86400);
				break;
			case 's':
				c.static_dir = optarg;
				static_dir_given = true;
				break;
			case 'N':
				c.no_warm_up = true;
				break;
			case 'm':
				c.mcp_stdio = true;
				break;
			case 'q':
				c.quiet = true;
				break;
			case 'h':
				Usage(stdout);
				return 0;
			case 'V':
				printf("codevec-serve " SERVE_VERSION "\n");
				return 0;
			default:
				fprintf(stderr, "Try \"codevec-serve --help\" for more information.\n");
				return 2;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "codevec-serve: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (c.token && !*c.token)
		c.token = NULL;
	signal(SIGPIPE, SIG_IGN);

	pool = serve_pool_new(&c);
	if (!pool)
	{
		fprintf(stderr, "codevec-serve: out of memory\n");
		return 1;
	}
	if (c.mcp_stdio)
	{
		if (!c.no_warm_up)
			serve_pool_warm_up(pool);
		rc = serve_mcp_stdio(pool);
	}
	else
	{
		sigset_t	stop;
		ServeHttp	http;
		int			sig;

		char		here[PATH_MAX];
		char		probe[PATH_MAX + 32];
		ssize_t		n;

		/*
		 * A program in its build tree serves the page next to it
		 * (serve/static), not an installed copy that may be older;
		 * an installed one has none there and uses STATICDIR.
		 */
		if (!static_dir_given && (n = readlink("/proc/self/exe", here, sizeof(here) - 8)) > 0)
		{
			here[n] = '\0';
			strcpy(strrchr(here, '/') ? strrchr(here, '/') : here, "/static");
			snprintf(probe, sizeof(probe), "%s/index.html", here);
			if (access(probe, R_OK) == 0)
				c.static_dir = strdup(here);
		}
		if (serve_static_load(&c) != 0)
			return 1;
		/* every thread blocks the stop signals; this one waits for them */
		sigemptyset(&stop);
		sigaddset(&stop, SIGTERM);
		sigaddset(&stop, SIGINT);
		pthread_sigmask(SIG_BLOCK, &stop, NULL);
		if (!c.no_warm_up)
			serve_pool_warm_up(pool);
		http = serve_http_start(&c, pool);
		if (!http)
			return 1;
		sigwait(&stop, &sig);
		serve_log("codevec-serve: %s: finishing running requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		serve_http_stop(http);
		serve_static_free();
		serve_log("codevec-serve: stopped");
	}
	serve_pool_delete(pool);
	return rc;
}
