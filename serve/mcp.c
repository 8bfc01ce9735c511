/*
 * mcp.c -- the Model Context Protocol server: JSON-RPC 2.0 messages in,
 * responses out, the same for the stdio transport (one message per line)
 * and Streamable HTTP (POST /mcp, http.c).
 *
 * Protocol: the MCP specification's schema.ts is the reference for every
 * field name and error code.  Two eras are spoken:
 *   - the initialize handshake (revisions 2024-11-05 .. 2025-11-25):
 *     initialize, notifications/initialized, ping;
 *   - the per-request envelope of revision 2026-07-28: server/discover,
 *     and every request carries _meta "io.modelcontextprotocol/
 *     protocolVersion" (unknown versions: error -32022 with the supported
 *     list); results say resultType "complete".
 * The server is stateless: nothing is kept between messages, so no
 * session id is needed over HTTP.
 *
 * Tools (tools/list, tools/call): search_code, get_snippet, similar_code,
 * list_repos.  Each has a JSON Schema for its input and its output,
 * written once below and reused by tools/list; a call answers the JSON
 * API's object (api.c) as structuredContent and as text.  Bad arguments
 * and database errors are tool errors (isError: true, so a model can
 * correct itself); an unknown tool is JSON-RPC error -32602.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* JSON-RPC 2.0 and MCP error codes (schema.ts) */
#define PARSE_ERROR -32700
#define INVALID_REQUEST -32600
#define METHOD_NOT_FOUND -32601
#define INVALID_PARAMS -32602
#define INTERNAL_ERROR -32603
#define HEADER_MISMATCH -32020
#define UNSUPPORTED_PROTOCOL_VERSION -32022

static const char *const HandshakeVersions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};
static const char *const ModernVersions[] = {"2026-07-28"};
#define N_HANDSHAKE (sizeof(HandshakeVersions) / sizeof(HandshakeVersions[0]))
#define N_MODERN (sizeof(ModernVersions) / sizeof(ModernVersions[0]))
#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPABILITIES "io.modelcontextprotocol/clientCapabilities"

static const char Instructions[] =
"codevec searches the functions, methods and classes of the repositories loaded into this "
"database. Start with search_code (mode hybrid: meaning and keywords), read a hit in its file "
"with get_snippet, find clones and related code with similar_code; list_repos says what is loaded.";

/* a search or similar result row, as code.search returns it (+ code) */
#define ROW_SCHEMA \
"{\"type\":\"object\",\"properties\":{" \
"\"id\":{\"type\":\"integer\"},\"repo\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"}," \
"\"language\":{\"type\":[\"string\",\"null\"]},\"kind\":{\"type\":[\"string\",\"null\"]}," \
"\"symbol\":{\"type\":[\"string\",\"null\"]},\"qualified_name\":{\"type\":[\"string\",\"null\"]}," \
"\"start_line\":{\"type\":\"integer\"},\"end_line\":{\"type\":\"integer\"}," \
"\"preview\":{\"type\":[\"string\",\"null\"]},\"score\":{\"type\":[\"number\",\"null\"]}," \
"\"vector_rank\":{\"type\":[\"integer\",\"null\"]},\"keyword_rank\":{\"type\":[\"integer\",\"null\"]}," \
"\"distance\":{\"type\":[\"number\",\"null\"]},\"keyword_score\":{\"type\":[\"number\",\"null\"]}," \
"\"code\":{\"type\":[\"string\",\"null\"],\"description\":\"the first 30 lines\"}," \
"\"code_truncated\":{\"type\":[\"boolean\",\"null\"]}}," \
"\"required\":[\"id\",\"repo\",\"path\",\"start_line\",\"end_line\"]}"

#define TIMINGS_SCHEMA \
"{\"type\":\"object\",\"description\":\"server time in milliseconds\",\"properties\":{" \
"\"wait_ms\":{\"type\":\"number\"},\"db_ms\":{\"type\":\"number\"},\"total_ms\":{\"type\":\"number\"}}}"

typedef enum ToolId
{
	TOOL_SEARCH,
	TOOL_SNIPPET,
	TOOL_SIMILAR,
	TOOL_REPOS,
	TOOL_COUNT
} ToolId;

static const struct
{
	const char *name;
	const char *title;
	const char *description;
	const char *input_schema;
	const char *output_schema;
} Tools[TOOL_COUNT] = {
	[TOOL_SEARCH] = {
		"search_code", "Search code",
		"Search the loaded code for functions, methods and classes matching a natural-language "
		"or keyword query (code.search). Returns the best k snippets with repository, path, line "
		"range, qualified name, the first 30 lines of code and scores.",
		"{\"type\":\"object\",\"properties\":{"
		"\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8192,\"description\":\"what the code does, or identifiers\"},"
		"\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":10,\"description\":\"how many results\"},"
		"\"mode\":{\"type\":\"string\",\"enum\":[\"hybrid\",\"vector\",\"keyword\"],\"default\":\"hybrid\"},"
		"\"lang\":{\"type\":\"string\",\"description\":\"only this language, e.g. python, c, go\"},"
		"\"path_like\":{\"type\":\"string\",\"description\":\"SQL LIKE pattern on the file path, e.g. src/%\"},"
		"\"exclude_tests\":{\"type\":\"boolean\",\"default\":false}},"
		"\"required\":[\"query\"],\"additionalProperties\":false}",
		"{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},\"k\":{\"type\":\"integer\"},"
		"\"mode\":{\"type\":\"string\"},\"results\":{\"type\":\"array\",\"items\":" ROW_SCHEMA "},"
		"\"timings\":" TIMINGS_SCHEMA "},\"required\":[\"results\"]}"},
	[TOOL_SNIPPET] = {
		"get_snippet", "Get a snippet",
		"The full code of one snippet (by the id search_code returned) with its signature, doc "
		"and the surrounding lines of its file.",
		"{\"type\":\"object\",\"properties\":{"
		"\"id\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"a snippet id from search_code\"},"
		"\"context\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":200,\"default\":5,\"description\":\"lines of the file before and after\"}},"
		"\"required\":[\"id\"],\"additionalProperties\":false}",
		"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"repo\":{\"type\":\"string\"},"
		"\"path\":{\"type\":\"string\"},\"language\":{\"type\":[\"string\",\"null\"]},\"kind\":{\"type\":[\"string\",\"null\"]},"
		"\"symbol\":{\"type\":[\"string\",\"null\"]},\"qualified_name\":{\"type\":[\"string\",\"null\"]},"
		"\"signature\":{\"type\":[\"string\",\"null\"]},\"doc\":{\"type\":[\"string\",\"null\"]},"
		"\"start_line\":{\"type\":\"integer\"},\"end_line\":{\"type\":\"integer\"},\"code\":{\"type\":\"string\"},"
		"\"context\":{\"type\":[\"object\",\"null\"],\"properties\":{\"start_line\":{\"type\":\"integer\"},"
		"\"end_line\":{\"type\":\"integer\"},\"text\":{\"type\":\"string\"}}},"
		"\"context_unavailable\":{\"type\":\"string\"},\"timings\":" TIMINGS_SCHEMA "},"
		"\"required\":[\"id\",\"path\",\"start_line\",\"end_line\",\"code\"]}"},
	[TOOL_SIMILAR] = {
		"similar_code", "Find similar code",
		"The k snippets nearest to snippet id by embedding (code.more_like_this): clones, near "
		"duplicates and code doing the same thing elsewhere; the snippet's own file is left out.",
		"{\"type\":\"object\",\"properties\":{"
		"\"id\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"a snippet id from search_code\"},"
		"\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":10}},"
		"\"required\":[\"id\"],\"additionalProperties\":false}",
		"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"k\":{\"type\":\"integer\"},"
		"\"results\":{\"type\":\"array\",\"items\":" ROW_SCHEMA "},\"timings\":" TIMINGS_SCHEMA "},"
		"\"required\":[\"results\"]}"},
	[TOOL_REPOS] = {
		"list_repos", "List repositories",
		"The repositories loaded into the database with their file and snippet counts, and the "
		"languages present.",
		"{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
		"{\"type\":\"object\",\"properties\":{\"repos\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
		"\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"},\"root\":{\"type\":\"string\"},"
		"\"files\":{\"type\":\"integer\"},\"snippets\":{\"type\":\"integer\"}}}},"
		"\"languages\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
		"\"language\":{\"type\":\"string\"},\"files\":{\"type\":\"integer\"}}}},\"timings\":" TIMINGS_SCHEMA "},"
		"\"required\":[\"repos\",\"languages\"]}"},
};

/* ---------------------------------------------------------------- replies */

/* {"jsonrpc":"2.0","id":id,"error":{code,message[,data]}} (takes data) */
static cJSON *
RpcError(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON	   *r = cJSON_CreateObject();
	cJSON	   *e;

	cJSON_AddStringToObject(r, "jsonrpc", "2.0");
	cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	e = cJSON_AddObjectToObject(r, "error");
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	if (data)
		cJSON_AddItemToObject(e, "data", data);
	return r;
}

/* {"jsonrpc":"2.0","id":id,"result":result} with the result's common fields */
static cJSON *
RpcResult(const cJSON *id, cJSON *result)
{
	cJSON	   *r = cJSON_CreateObject();
	cJSON	   *meta = cJSON_AddObjectToObject(result, "_meta");
	cJSON	   *info = cJSON_AddObjectToObject(meta, "io.modelcontextprotocol/serverInfo");

	cJSON_AddStringToObject(info, "name", "codevec-serve");
	cJSON_AddStringToObject(info, "version", SERVE_VERSION);
	/* 2026-07-28 requires it; earlier revisions ignore unknown fields */
	cJSON_AddStringToObject(result, "resultType", "complete");
	cJSON_AddStringToObject(r, "jsonrpc", "2.0");
	cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
	cJSON_AddItemToObject(r, "result", result);
	return r;
}

static bool
InList(const char *v, const char *const *list, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		if (strcmp(v, list[i]) == 0)
			return true;
	return false;
}

static cJSON *
SupportedVersions(void)
{
	cJSON	   *a = cJSON_CreateArray();

	for (size_t i = 0; i < N_HANDSHAKE; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(HandshakeVersions[i]));
	for (size_t i = 0; i < N_MODERN; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(ModernVersions[i]));
	return a;
}

static cJSON *
Capabilities(void)
{
	cJSON	   *c = cJSON_CreateObject();
	cJSON	   *t = cJSON_AddObjectToObject(c, "tools");

	cJSON_AddFalseToObject(t, "listChanged");
	return c;
}

/* ---------------------------------------------------------------- methods */

static cJSON *
Initialize(const cJSON *id, const cJSON *params)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
	const char *want = cJSON_IsString(v) ? v->valuestring : NULL;
	cJSON	   *res = cJSON_CreateObject();
	cJSON	   *info;

	if (!want)
	{
		cJSON_Delete(res);
		return RpcError(id, INVALID_PARAMS, "initialize: params.protocolVersion must be a string", NULL);
	}
	/* the client's revision when we speak it, else our latest handshake one */
	cJSON_AddStringToObject(res, "protocolVersion",
							InList(want, HandshakeVersions, N_HANDSHAKE) ? want
							: HandshakeVersions[N_HANDSHAKE - 1]);
	cJSON_AddItemToObject(res, "capabilities", Capabilities());
	info = cJSON_AddObjectToObject(res, "serverInfo");
	cJSON_AddStringToObject(info, "name", "codevec-serve");
	cJSON_AddStringToObject(info, "title", "codevec code search");
	cJSON_AddStringToObject(info, "version", SERVE_VERSION);
	cJSON_AddStringToObject(res, "instructions", Instructions);
	return RpcResult(id, res);
}

static cJSON *
Discover(const cJSON *id)
{
	cJSON	   *res = cJSON_CreateObject();

	cJSON_AddItemToObject(res, "supportedVersions", SupportedVersions());
	cJSON_AddItemToObject(res, "capabilities", Capabilities());
	cJSON_AddStringToObject(res, "instructions", Instructions);
	cJSON_AddStringToObject(res, "cacheScope", "public");
	cJSON_AddNumberToObject(res, "ttlMs", 0);
	return RpcResult(id, res);
}

static cJSON *
ToolsList(const cJSON *id)
{
	cJSON	   *res = cJSON_CreateObject();
	cJSON	   *arr = cJSON_AddArrayToObject(res, "tools");

	for (int i = 0; i < TOOL_COUNT; i++)
	{
		cJSON	   *t = cJSON_CreateObject();
		cJSON	   *ann;

		cJSON_AddStringToObject(t, "name", Tools[i].name);
		cJSON_AddStringToObject(t, "title", Tools[i].title);
		cJSON_AddStringToObject(t, "description", Tools[i].description);
		cJSON_AddItemToObject(t, "inputSchema", cJSON_Parse(Tools[i].input_schema));
		cJSON_AddItemToObject(t, "outputSchema", cJSON_Parse(Tools[i].output_schema));
		ann = cJSON_AddObjectToObject(t, "annotations");
		cJSON_AddTrueToObject(ann, "readOnlyHint");
		cJSON_AddTrueToObject(ann, "idempotentHint");
		cJSON_AddFalseToObject(ann, "openWorldHint");
		cJSON_AddItemToArray(arr, t);
	}
	cJSON_AddStringToObject(res, "cacheScope", "public");
	cJSON_AddNumberToObject(res, "ttlMs", 0);
	return RpcResult(id, res);
}

/*
 * Converts argument `name` of args to its string form in buf: a string as
 * itself, an integer as digits, a boolean as true/false.  `type` is the
 * schema's: 's', 'i' or 'b'.  Returns NULL for an absent argument, and
 * sets *bad to a message when the argument has the wrong type.
 */
static const char *
Arg(const cJSON *args, const char *name, char type, char *buf, size_t size, char *bad, size_t badsize)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, name);

	if (!a || cJSON_IsNull(a))
		return NULL;
	if (type == 's' && cJSON_IsString(a))
		return a->valuestring;
	if (type == 'i' && cJSON_IsNumber(a) && a->valuedouble == (double) (long long) a->valuedouble &&
		a->valuedouble > -9e15 && a->valuedouble < 9e15)
	{
		snprintf(buf, size, "%lld", (long long) a->valuedouble);
		return buf;
	}
	if (type == 'b' && cJSON_IsBool(a))
		return cJSON_IsTrue(a) ? "true" : "false";
	if (!bad[0])
		snprintf(bad, badsize, "argument %s must be %s", name,
				 type == 's' ? "a string" : type == 'i' ? "an integer" : "a boolean");
	return NULL;
}

/* The CallToolResult of a tool error: isError with a text message. */
static cJSON *
ToolError(const char *message, const char *sqlstate)
{
	cJSON	   *res = cJSON_CreateObject();
	cJSON	   *content = cJSON_AddArrayToObject(res, "content");
	cJSON	   *text = cJSON_CreateObject();
	char		buf[700];

	if (sqlstate && sqlstate[0])
		snprintf(buf, sizeof(buf), "error: %s (SQLSTATE %s)", message, sqlstate);
	else
		snprintf(buf, sizeof(buf), "error: %s", message);
	cJSON_AddStringToObject(text, "type", "text");
	cJSON_AddStringToObject(text, "text", buf);
	cJSON_AddItemToArray(content, text);
	cJSON_AddTrueToObject(res, "isError");
	return res;
}

static cJSON *
ToolsCall(ServePool pool, const cJSON *id, const cJSON *params)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	static const char *const known[TOOL_COUNT][7] = {
		[TOOL_SEARCH] = {"query", "k", "mode", "lang", "path_like", "exclude_tests", NULL},
		[TOOL_SNIPPET] = {"id", "context", NULL},
		[TOOL_SIMILAR] = {"id", "k", NULL},
		[TOOL_REPOS] = {NULL},
	};
	int			tool = -1;
	ServeParamsData p = {0};
	ServeReplyData reply = {0};
	char		bad[200] = "";
	char		kbuf[32],
				idbuf[32],
				cbuf[32];
	cJSON	   *res;

	if (!cJSON_IsString(name))
		return RpcError(id, INVALID_PARAMS, "tools/call: params.name must be a string", NULL);
	for (int i = 0; i < TOOL_COUNT; i++)
		if (strcmp(name->valuestring, Tools[i].name) == 0)
			tool = i;
	if (tool < 0)
	{
		char		msg[160];

		snprintf(msg, sizeof(msg), "unknown tool: %.100s", name->valuestring);
		return RpcError(id, INVALID_PARAMS, msg, NULL);
	}
	if (args && !cJSON_IsNull(args) && !cJSON_IsObject(args))
		return RpcError(id, INVALID_PARAMS, "tools/call: params.arguments must be an object", NULL);

	/* unknown arguments are the caller's mistake (additionalProperties false) */
	for (const cJSON *a = args ? args->child : NULL; a; a = a->next)
	{
		bool		ok = false;

		for (int j = 0; known[tool][j]; j++)
			ok |= strcmp(a->string, known[tool][j]) == 0;
		if (!ok)
		{
			snprintf(bad, sizeof(bad), "unknown argument %.100s", a->string);
			break;
		}
	}
	switch (tool)
	{
		case TOOL_SEARCH:
			p.q = Arg(args, "query", 's', NULL, 0, bad, sizeof(bad));
			p.k = Arg(args, "k", 'i', kbuf, sizeof(kbuf), bad, sizeof(bad));
			p.mode = Arg(args, "mode", 's', NULL, 0, bad, sizeof(bad));
			p.lang = Arg(args, "lang", 's', NULL, 0, bad, sizeof(bad));
			p.path_like = Arg(args, "path_like", 's', NULL, 0, bad, sizeof(bad));
			p.exclude_tests = Arg(args, "exclude_tests", 'b', NULL, 0, bad, sizeof(bad));
			if (!bad[0] && !p.q)
				snprintf(bad, sizeof(bad), "argument query is required");
			if (!bad[0])
				serve_api_search(pool, &p, &reply);
			break;
		case TOOL_SNIPPET:
			p.id = Arg(args, "id", 'i', idbuf, sizeof(idbuf), bad, sizeof(bad));
			p.context = Arg(args, "context", 'i', cbuf, sizeof(cbuf), bad, sizeof(bad));
			if (!bad[0] && !p.id)
				snprintf(bad, sizeof(bad), "argument id is required");
			if (!bad[0])
				serve_api_snippet(pool, &p, &reply);
			break;
		case TOOL_SIMILAR:
			p.id = Arg(args, "id", 'i', idbuf, sizeof(idbuf), bad, sizeof(bad));
			p.k = Arg(args, "k", 'i', kbuf, sizeof(kbuf), bad, sizeof(bad));
			if (!bad[0] && !p.id)
				snprintf(bad, sizeof(bad), "argument id is required");
			if (!bad[0])
				serve_api_similar(pool, &p, &reply);
			break;
		case TOOL_REPOS:
			if (!bad[0])
				serve_api_repos(pool, &reply);
			break;
	}
	if (bad[0])
		res = ToolError(bad, "22023");
	else if (reply.status != 200)
	{
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply.body, "error");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "sqlstate");

		res = ToolError(cJSON_IsString(m) ? m->valuestring : "error",
						cJSON_IsString(s) ? s->valuestring : NULL);
	}
	else
	{
		cJSON	   *content;
		cJSON	   *text = cJSON_CreateObject();
		char	   *json = serve_json_print(reply.body);

		res = cJSON_CreateObject();
		content = cJSON_AddArrayToObject(res, "content");
		cJSON_AddStringToObject(text, "type", "text");
		cJSON_AddStringToObject(text, "text", json ? json : "{}");
		free(json);
		cJSON_AddItemToArray(content, text);
		cJSON_AddItemToObject(res, "structuredContent", reply.body);
		reply.body = NULL;
		cJSON_AddFalseToObject(res, "isError");
	}
	cJSON_Delete(reply.body);
	return RpcResult(id, res);
}

/* ---------------------------------------------------------------- dispatch */

/*
 * Whether JSON text holds the escape \u0000: cJSON would cut the string
 * there without a word, and no PostgreSQL text can hold NUL anyway.
 */
static bool
NulEscape(const char *text, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++)
		if (text[i] == '\\')
		{
			if (text[i + 1] == 'u' && strncmp(text + i + 2, "0000", 4) == 0)
				return true;
			i++;				/* skip the escaped character */
		}
	return false;
}

static cJSON *
Dispatch(ServePool pool, const char *text, size_t n, const cJSON *msg, const ServeMcpHeadersData *h,
		 int *http_status)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	const cJSON *jsonrpc = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(meta, META_VERSION);
	const char *m;

	if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id))
		return RpcError(NULL, INVALID_REQUEST, "id must be a string or a number", NULL);
	if (!cJSON_IsString(jsonrpc) || strcmp(jsonrpc->valuestring, "2.0") != 0)
		return RpcError(id, INVALID_REQUEST, "jsonrpc must be \"2.0\"", NULL);
	if (!method)
	{
		/* a response to a request of ours (we send none): ignore it */
		if (id && (cJSON_GetObjectItemCaseSensitive(msg, "result") ||
				   cJSON_GetObjectItemCaseSensitive(msg, "error")))
		{
			*http_status = 202;
			return NULL;
		}
		return RpcError(id, INVALID_REQUEST, "a request needs a method", NULL);
	}
	if (!cJSON_IsString(method))
		return RpcError(id, INVALID_REQUEST, "method must be a string", NULL);
	if (params && !cJSON_IsObject(params))
		return RpcError(id, INVALID_REQUEST, "params must be an object", NULL);
	m = method->valuestring;
	if (!id)
	{
		/* notifications (initialized, cancelled, ...) need no answer */
		*http_status = 202;
		return NULL;
	}
	/*
	 * The per-request envelope of 2026-07-28 (a request with _meta's
	 * protocolVersion, or a modern version header), checked in the
	 * specification's order: both envelope keys, then the HTTP routing
	 * headers agree with the body, then a version we speak.
	 */
	if (pv || (h && h->version && InList(h->version, ModernVersions, N_MODERN)))
	{
		const char *v = cJSON_IsString(pv) ? pv->valuestring : NULL;
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");

		if (!cJSON_IsObject(meta) || !pv || !cJSON_GetObjectItemCaseSensitive(meta, META_CAPABILITIES))
			return RpcError(id, INVALID_PARAMS, "params._meta must carry \"" META_VERSION
							"\" and \"" META_CAPABILITIES "\"", NULL);
		if (!v)
			return RpcError(id, INVALID_PARAMS, "_meta's protocolVersion must be a string", NULL);
		if (h && (!h->version || strcmp(v, h->version) != 0))
			return RpcError(id, HEADER_MISMATCH,
							"the MCP-Protocol-Version header does not match _meta's protocolVersion", NULL);
		if (h && (!h->method || strcmp(h->method, m) != 0))
			return RpcError(id, HEADER_MISMATCH, "the Mcp-Method header does not match the method", NULL);
		if (h && strcmp(m, "tools/call") == 0 && cJSON_IsString(name) &&
			(!h->name || strcmp(h->name, name->valuestring) != 0))
			return RpcError(id, HEADER_MISMATCH, "the Mcp-Name header does not match params.name", NULL);
		if (!InList(v, ModernVersions, N_MODERN))
		{
			cJSON	   *data = cJSON_CreateObject();
			cJSON	   *sup = cJSON_AddArrayToObject(data, "supported");

			for (size_t i = 0; i < N_MODERN; i++)
				cJSON_AddItemToArray(sup, cJSON_CreateString(ModernVersions[i]));
			cJSON_AddStringToObject(data, "requested", v);
			return RpcError(id, UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version", data);
		}
	}
	else if (h && h->version && !InList(h->version, HandshakeVersions, N_HANDSHAKE))
		return RpcError(id, INVALID_REQUEST, "unsupported MCP-Protocol-Version header", NULL);
	if (NulEscape(text, n))
		return RpcError(id, INVALID_PARAMS, "strings must not contain NUL (\\u0000)", NULL);
	if (strcmp(m, "initialize") == 0)
		return Initialize(id, params);
	if (strcmp(m, "server/discover") == 0)
		return Discover(id);
	if (strcmp(m, "ping") == 0)
		return RpcResult(id, cJSON_CreateObject());
	if (strcmp(m, "tools/list") == 0)
		return ToolsList(id);
	if (strcmp(m, "tools/call") == 0)
		return ToolsCall(pool, id, params);
	{
		char		msg[160];

		snprintf(msg, sizeof(msg), "method not found: %.100s", m);
		return RpcError(id, METHOD_NOT_FOUND, msg, NULL);
	}
}

/*
 * Handles one message (see serve.h).  Malformed JSON is -32700, a batch
 * (array; removed from the protocol in 2025-06-18) or a non-object is
 * -32600.
 */
char *
serve_mcp_handle(ServePool pool, const char *text, size_t n, const ServeMcpHeadersData *h,
				 int *http_status)
{
	cJSON	   *msg;
	cJSON	   *reply;
	char	   *out;

	*http_status = 200;
	if (!serve_utf8_valid(text, n))
		reply = RpcError(NULL, PARSE_ERROR, "parse error: the message is not valid UTF-8", NULL);
	else if (!(msg = cJSON_ParseWithLength(text, n)))
		reply = RpcError(NULL, PARSE_ERROR, "parse error: the message is not JSON", NULL);
	else
	{
		if (!cJSON_IsObject(msg))
			reply = RpcError(NULL, INVALID_REQUEST,
							 cJSON_IsArray(msg) ? "batches are not supported" : "a message must be an object", NULL);
		else
			reply = Dispatch(pool, text, n, msg, h, http_status);
		cJSON_Delete(msg);
	}
	if (!reply)
		return NULL;
	/* the HTTP status of an error (the transport's table) */
	if (*http_status == 200)
	{
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "error"), "code");

		if (cJSON_IsNumber(code))
			*http_status = code->valueint == METHOD_NOT_FOUND ? 404 :
				code->valueint == INTERNAL_ERROR ? 200 : 400;
	}
	out = serve_json_print(reply);
	cJSON_Delete(reply);
	return out;
}

/* set by SIGTERM / SIGINT in stdio mode */
static volatile sig_atomic_t StdioStop;

static void
OnStop(int sig)
{
	(void) sig;
	StdioStop = 1;
}

/*
 * Runs the stdio transport: newline-delimited messages on stdin, responses
 * on stdout (nothing else is ever written there; logs go to stderr), until
 * end of input or SIGTERM.  A line longer than SERVE_MAX_BODY is answered
 * with a parse error and skipped.  Returns the exit status.
 */
int
serve_mcp_stdio(ServePool pool)
{
	struct sigaction sa = {0};
	char	   *line = malloc(SERVE_MAX_BODY + 1);
	size_t		len = 0;
	bool		overlong = false;
	int			c;

	if (!line)
		return 1;
	sa.sa_handler = OnStop;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: reads return EINTR */
	sigaction(SIGINT, &sa, NULL);
	while (!StdioStop)
	{
		c = getchar_unlocked();	/* one thread reads stdin */
		if (c == EOF)
		{
			if (ferror(stdin) && errno == EINTR && !StdioStop)
			{
				clearerr(stdin);
				continue;
			}
			break;
		}
		if (c != '\n')
		{
			if (len < SERVE_MAX_BODY)
				line[len++] = (char) c;
			else
				overlong = true;
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > 0 || overlong)
		{
			int			status;
			char	   *out;

			if (overlong)
				out = strdup("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
							 "\"message\":\"parse error: the message is longer than 1 MB\"}}");
			else
				out = serve_mcp_handle(pool, line, len, NULL, &status);
			if (out)
			{
				fputs(out, stdout);
				fputc('\n', stdout);
				fflush(stdout);
				free(out);
			}
		}
		len = 0;
		overlong = false;
	}
	free(line);
	return 0;
}
