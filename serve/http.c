/*
 * http.c -- the HTTP server on libmicrohttpd: routes, limits, the bearer
 * token, the access log.
 *
 * Life cycle of a request (libmicrohttpd's doc/examples): the handler is
 * called first with the headers (a RequestData is attached), then with
 * each piece of an upload (POST /mcp: kept up to SERVE_MAX_BODY bytes,
 * the rest drained and answered 413), and last with no data, when the
 * response is queued.  The completion callback writes the access log line
 * and frees the RequestData.
 *
 * Threads: an internal thread pool (--threads) polls with epoll; a handler
 * blocks its thread while the database answers (the pool bounds how many
 * queries run at once).  Limits: --max-connections at once (more are
 * refused by the listener), --idle-timeout seconds for a connection that
 * sends nothing, --connection-time seconds for any connection (a reaper
 * thread shuts the socket of an older one down: a client that trickles a
 * byte now and then is not idle), --request-timeout for one request's
 * database work (pool.c), and the sizes: a URL over SERVE_MAX_URI bytes
 * is answered 414 and headers over SERVE_MAX_HEADERS 431, as JSON, here;
 * only a request past libmicrohttpd's own buffer (SERVE_MHD_MEMORY, four
 * times those) gets libmicrohttpd's 414/431, whose body is its fixed
 * HTML (the library offers no hook for it).
 *
 * Routes: GET /healthz, /api/search, /api/snippet/{id}, /api/similar/{id},
 * /api/repos; POST /mcp (GET and DELETE /mcp: 405, the server offers no
 * SSE stream and keeps no session); the page's files (static.c).  With a
 * token, /api/ and /mcp need "Authorization: Bearer TOKEN".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve.h"

/* an open connection, for the --connection-time reaper */
typedef struct ConnTrack
{
	struct ConnTrack *prev,
			   *next;
	MHD_socket	fd;
	double		t0;
	bool		shut;			/* shutdown() done, closing */
} ConnTrack;

struct ServeHttpData
{
	ServeConfig config;
	ServePool	pool;
	struct MHD_Daemon *daemon;
	atomic_int	inflight;		/* requests between headers and completion */
	pthread_mutex_t conns_lock;
	ConnTrack	conns;			/* list head of the open connections */
	pthread_t	reaper;
	bool		reaper_started;
	atomic_bool stopping;
};

typedef struct RequestData
{
	double		t0;
	bool		started;		/* the handler saw the headers */
	char		method[8];
	char		uri[201];		/* for the access log, truncated */
	size_t		uri_len;		/* the whole URI's length */
	bool		nul_in_path;	/* %00 before the query string */
	bool		mcp;			/* POST /mcp */
	char	   *body;
	size_t		len;
	bool		too_big;
	int			status;
	size_t		bytes;
} RequestData;

/* Queues text (taken, freed by libmicrohttpd) with status and content type. */
static enum MHD_Result
Send(struct MHD_Connection *conn, RequestData *rd, int status, char *text, size_t len,
	 const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp)
	{
		free(text);
		return MHD_NO;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"codevec\"");
	if (status == 405)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rd->mcp ? "POST" : "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	rd->status = status;
	rd->bytes = len;
	return ret;
}

/* Queues a JSON reply (frees its body). */
static enum MHD_Result
SendReply(struct MHD_Connection *conn, RequestData *rd, ServeReplyData *reply)
{
	char	   *text = serve_json_print(reply->body);

	cJSON_Delete(reply->body);
	reply->body = NULL;
	if (!text)
		return MHD_NO;
	return Send(conn, rd, reply->status, text, strlen(text), "application/json; charset=utf-8");
}

static enum MHD_Result
SendError(struct MHD_Connection *conn, RequestData *rd, int status, const char *msg)
{
	ServeReplyData r;

	serve_reply_error(&r, status, NULL, "%s", msg);
	return SendReply(conn, rd, &r);
}

/* Compares the bearer token in constant time (for equal lengths). */
static bool
Authorized(ServeConfig config, struct MHD_Connection *conn)
{
	const char *h;
	size_t		n;
	unsigned char diff = 0;

	if (!config->token)
		return true;
	h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	n = strlen(config->token);
	if (strlen(h) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char) (h[i] ^ config->token[i]);
	return diff == 0;
}

/*
 * An Origin header (a browser) must name this server's host: DNS
 * rebinding protection the MCP Streamable HTTP transport asks for.
 */
static bool
OriginAllowed(struct MHD_Connection *conn)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *o;

	if (!origin)
		return true;
	if (!host)
		return false;
	o = strstr(origin, "://");
	return o && strcmp(o + 3, host) == 0;
}

/*
 * A URL parameter; one holding a NUL (%00) comes back as an invalid
 * UTF-8 sequence, which the operation refuses (a C string would silently
 * end there).
 */
static const char *
Arg(struct MHD_Connection *conn, const char *name)
{
	const char *v = NULL;
	size_t		n = 0;

	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, &n) != MHD_YES)
		return NULL;
	if (v && strlen(v) != n)
		return "\xC0\x80";		/* overlong NUL: not UTF-8 */
	return v;
}

/* Adds one header's name and value length to *cls (a size_t). */
static enum MHD_Result
CountHeader(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void) kind;
	*(size_t *) cls += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static enum MHD_Result
Handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ServeHttp	http = cls;
	RequestData *rd = *req_cls;
	bool		get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	bool		mcp = strcmp(url, "/mcp") == 0;
	ServeParamsData p = {0};
	ServeReplyData reply = {0};

	(void) version;
	if (!rd)
		return MHD_NO;			/* LogUri ran out of memory */
	if (!rd->started)
	{
		/* first call: headers only */
		rd->started = true;
		atomic_fetch_add(&http->inflight, 1);
		snprintf(rd->method, sizeof(rd->method), "%s", method);
		return MHD_YES;
	}
	if (*upload_data_size)
	{
		/* a piece of the body: kept for POST /mcp only, within the limit */
		if (mcp && strcmp(method, MHD_HTTP_METHOD_POST) == 0 && !rd->too_big)
		{
			if (rd->len + *upload_data_size > SERVE_MAX_BODY)
			{
				rd->too_big = true;
				free(rd->body);
				rd->body = NULL;
			}
			else
			{
				char	   *b = realloc(rd->body, rd->len + *upload_data_size + 1);

				if (!b)
					return MHD_NO;
				rd->body = b;
				memcpy(rd->body + rd->len, upload_data, *upload_data_size);
				rd->len += *upload_data_size;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	/* sizes this server answers itself, below libmicrohttpd's buffer */
	if (rd->uri_len > SERVE_MAX_URI)
		return SendError(conn, rd, 414, "the URL is longer than 16384 bytes");
	{
		size_t		hbytes = 0;

		MHD_get_connection_values(conn, MHD_HEADER_KIND, CountHeader, &hbytes);
		if (hbytes > SERVE_MAX_HEADERS)
			return SendError(conn, rd, 431, "the request's headers are longer than 16384 bytes");
	}
	/* the request's deadline, from its first line: pool.c keeps it */
	serve_deadline_set(rd->t0 + http->config->request_timeout);
	/* a %00 in the path would end the C string url early */
	if (rd->nul_in_path)
		return SendError(conn, rd, 400, "the path contains NUL (%00)");
	if (mcp || strncmp(url, "/api/", 5) == 0)
	{
		if (!Authorized(http->config, conn))
			return SendError(conn, rd, 401, "missing or wrong bearer token");
	}
	rd->mcp = mcp;
	if (mcp)
	{
		const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		int			status;
		char	   *out;
		ServeMcpHeadersData hdrs;

		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return SendError(conn, rd, 405, "POST JSON-RPC messages to /mcp (no SSE stream is offered)");
		if (!OriginAllowed(conn))
			return SendError(conn, rd, 403, "Origin does not match the server");
		if (rd->too_big)
			return SendError(conn, rd, 413, "the message is longer than 1 MB");
		if (ct && strncasecmp(ct, "application/json", 16) != 0)
			return SendError(conn, rd, 415, "Content-Type must be application/json");
		hdrs.version = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "MCP-Protocol-Version");
		hdrs.method = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Mcp-Method");
		hdrs.name = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Mcp-Name");
		out = serve_mcp_handle(http->pool, rd->body ? rd->body : "", rd->len, &hdrs, &status);
		if (!out)
			return Send(conn, rd, 202, strdup(""), 0, NULL);
		return Send(conn, rd, status, out, strlen(out), "application/json");
	}
	if (!get)
		return SendError(conn, rd, 405, "only GET and HEAD are served here");

	if (strcmp(url, "/healthz") == 0)
		serve_api_health(http->pool, &reply);
	else if (strcmp(url, "/api/search") == 0)
	{
		p.q = Arg(conn, "q");
		p.k = Arg(conn, "k");
		p.mode = Arg(conn, "mode");
		p.lang = Arg(conn, "lang");
		p.path_like = Arg(conn, "path_like");
		p.exclude_tests = Arg(conn, "exclude_tests");
		serve_api_search(http->pool, &p, &reply);
	}
	else if (strncmp(url, "/api/snippet/", 13) == 0)
	{
		p.id = url + 13;
		p.context = Arg(conn, "context");
		serve_api_snippet(http->pool, &p, &reply);
	}
	else if (strncmp(url, "/api/similar/", 13) == 0)
	{
		p.id = url + 13;
		p.k = Arg(conn, "k");
		serve_api_similar(http->pool, &p, &reply);
	}
	else if (strcmp(url, "/api/repos") == 0)
		serve_api_repos(http->pool, &reply);
	else
	{
		const ServeStaticFileData *f = serve_static_find(url);
		struct MHD_Response *resp;
		enum MHD_Result ret;

		if (!f)
			return SendError(conn, rd, 404, "not found");
		resp = MHD_create_response_from_buffer(f->size, (void *) f->data, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->content_type);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(resp, "Content-Security-Policy",
								"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
		ret = MHD_queue_response(conn, 200, resp);
		MHD_destroy_response(resp);
		rd->status = 200;
		rd->bytes = f->size;
		return ret;
	}
	return SendReply(conn, rd, &reply);
}

/* Writes the access log line and frees the request's data. */
static void
Completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	ServeHttp	http = cls;
	RequestData *rd = *req_cls;

	if (!rd)
		return;
	if (!http->config->quiet)
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char		addr[INET6_ADDRSTRLEN] = "-";
		if (ci && ci->client_addr)
		{
			const struct sockaddr *sa = ci->client_addr;

			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, addr, sizeof(addr));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, addr, sizeof(addr));
		}
		serve_log("%s \"%s %s\" %d %zu %.2fms%s", addr, rd->method, rd->uri, rd->status, rd->bytes, serve_now_ms() - rd->t0,
				  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
				  toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " timeout" : " aborted");
	}
	if (rd->started)
		atomic_fetch_sub(&http->inflight, 1);
	free(rd->body);
	free(rd);
	*req_cls = NULL;
}

/*
 * Called by libmicrohttpd with the URI (path and query) before the
 * handler: creates the request's data, keeping the start time and the
 * URI (truncated) for the access log line.
 */
static void *
LogUri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	RequestData *rd = calloc(1, sizeof(*rd));

	(void) cls;
	(void) conn;
	if (rd)
	{
		const char *nul = strcasestr(uri, "%00");
		const char *query = strchr(uri, '?');

		rd->t0 = serve_now_ms();
		rd->uri_len = strlen(uri);
		rd->nul_in_path = nul && (!query || nul < query);
		snprintf(rd->uri, sizeof(rd->uri), "%s", uri);
		/* the log line is one line: no control characters */
		for (char *c = rd->uri; *c; c++)
			if ((unsigned char) *c < 0x20 || *c == '"')
				*c = '?';
	}
	return rd;
}

/*
 * Keeps the list of open connections (started: added with the time;
 * closed: removed) for the reaper.  libmicrohttpd calls "closed" before
 * it closes the socket, so a listed fd is always the connection's own.
 */
static void
NotifyConnection(void *cls, struct MHD_Connection *conn, void **socket_context,
				 enum MHD_ConnectionNotificationCode toe)
{
	ServeHttp	http = cls;
	ConnTrack  *t = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (!ci || !(t = calloc(1, sizeof(*t))))
			return;
		t->fd = ci->connect_fd;
		t->t0 = serve_now_ms();
		pthread_mutex_lock(&http->conns_lock);
		t->next = http->conns.next;
		t->prev = &http->conns;
		http->conns.next->prev = t;
		http->conns.next = t;
		pthread_mutex_unlock(&http->conns_lock);
		*socket_context = t;
	}
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && t)
	{
		pthread_mutex_lock(&http->conns_lock);
		t->prev->next = t->next;
		t->next->prev = t->prev;
		pthread_mutex_unlock(&http->conns_lock);
		free(t);
		*socket_context = NULL;
	}
}

/*
 * The reaper: twice a second, shuts down the socket of every connection
 * open longer than --connection-time; libmicrohttpd then sees it fail and
 * closes it (a handler that is running finishes first: its database work
 * has the request's deadline).
 */
static void *
Reaper(void *arg)
{
	ServeHttp	http = arg;
	double		limit = http->config->connection_time * 1000.0;

	while (!atomic_load(&http->stopping))
	{
		double		now = serve_now_ms();

		pthread_mutex_lock(&http->conns_lock);
		for (ConnTrack *t = http->conns.next; t != &http->conns; t = t->next)
			if (!t->shut && now - t->t0 > limit)
			{
				shutdown(t->fd, SHUT_RDWR);
				t->shut = true;
				serve_log("connection open longer than %d s closed (--connection-time)",
						  http->config->connection_time);
			}
		pthread_mutex_unlock(&http->conns_lock);
		usleep(500 * 1000);
	}
	return NULL;
}

/*
 * Starts listening on config->listen:port (127.0.0.1 by default; a name
 * or an IPv4/IPv6 address).  Returns NULL (after a message) on failure.
 */
ServeHttp
serve_http_start(ServeConfig config, ServePool pool)
{
	ServeHttp	http = calloc(1, sizeof(*http));
	struct addrinfo hints = {0},
			   *ai = NULL;
	char		port[16];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
		MHD_USE_ITC;			/* for MHD_quiesce_daemon */
	const union MHD_DaemonInfo *info;
	int			err;

	if (!http)
		return NULL;
	http->config = config;
	http->pool = pool;
	pthread_mutex_init(&http->conns_lock, NULL);
	http->conns.next = http->conns.prev = &http->conns;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", config->port);
	if ((err = getaddrinfo(config->listen, port, &hints, &ai)) != 0)
	{
		fprintf(stderr, "codevec-serve: cannot use --listen %s: %s\n", config->listen, gai_strerror(err));
		free(http);
		return NULL;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* --threads 0: a thread per connection (bench/serve compares both) */
	if (config->threads == 0)
		flags |= MHD_USE_THREAD_PER_CONNECTION;
	http->daemon = MHD_start_daemon(flags, (uint16_t) config->port, NULL, NULL, Handle, http,
									MHD_OPTION_SOCK_ADDR, ai->ai_addr,
									MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) (config->threads ? config->threads : 1),
									MHD_OPTION_CONNECTION_LIMIT, (unsigned int) config->max_connections,
									MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) config->idle_timeout,
									MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) SERVE_MHD_MEMORY,
									MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
									MHD_OPTION_NOTIFY_COMPLETED, Completed, http,
									MHD_OPTION_URI_LOG_CALLBACK, LogUri, http,
									MHD_OPTION_NOTIFY_CONNECTION, NotifyConnection, http,
									MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!http->daemon)
	{
		fprintf(stderr, "codevec-serve: cannot listen on %s port %d (in use, or not an address of this machine)\n",
				config->listen, config->port);
		free(http);
		return NULL;
	}
	http->reaper_started = pthread_create(&http->reaper, NULL, Reaper, http) == 0;
	info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
	fprintf(stderr, "codevec-serve: listening on http://%s%s%s:%u/\n",
			strchr(config->listen, ':') ? "[" : "", config->listen,
			strchr(config->listen, ':') ? "]" : "", info ? info->port : (unsigned) config->port);
	return http;
}

/*
 * Stops accepting, lets running requests finish (waiting at most
 * SERVE_SHUTDOWN_GRACE ms), closes every connection and frees the server.
 */
void
serve_http_stop(ServeHttp http)
{
	MHD_socket	fd;
	double		t0 = serve_now_ms();

	if (!http)
		return;
	fd = MHD_quiesce_daemon(http->daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	while (atomic_load(&http->inflight) > 0 && serve_now_ms() - t0 < SERVE_SHUTDOWN_GRACE)
		usleep(20 * 1000);
	atomic_store(&http->stopping, true);
	if (http->reaper_started)
		pthread_join(http->reaper, NULL);
	MHD_stop_daemon(http->daemon);
	pthread_mutex_destroy(&http->conns_lock);
	free(http);
}
