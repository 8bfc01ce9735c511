#!/usr/bin/env python3
"""cat.py MODE... : per-category first-minus-second perf ms per session (and page-fault share)"""
import json, collections, glob, subprocess, sys, pickle, os
def stacks(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"], capture_output=True, text=True).stdout
    cur = []
    for line in out.splitlines():
        if not line.strip():
            if cur: yield tuple(reversed(cur))
            cur = []; continue
        parts = line.split(None, 1)
        sym = parts[1] if len(parts) > 1 else "?"
        sym = sym.rsplit(" (", 1)
        name = sym[0].split("+0x")[0]
        dso = sym[1].rstrip(")").split("/")[-1] if len(sym) > 1 else ""
        if name == "[unknown]": name = "?"
        if dso.startswith("codevec"): name = "cv:" + name
        elif dso.startswith("plpgsql"): name = "plpg:" + name
        elif not dso.startswith("postgres") and not dso.startswith("[kernel"): name = dso + ":" + name
        cur.append(name)
    if cur: yield tuple(reversed(cur))
def load(d):
    pk = d + ".cstacks.pkl"
    if os.path.exists(pk): return pickle.load(open(pk, "rb"))
    files = sorted(glob.glob(d + "/p*.data"))
    r = (len(files), [s for f in files for s in stacks(f)])
    pickle.dump(r, open(pk, "wb")); return r
CATFN = ("systable_beginscan", "systable_getnext", "systable_endscan", "RelationBuildDesc", "RelationIdGetRelation", "index_open",
         "SearchCatCacheList", "RelationInitIndexAccessInfo", "systable_getnext_ordered", "systable_beginscan_ordered", "LookupOpclassInfo")
def iscat(s):
    return any(f in s for f in CATFN)
REAL = json.loads(sys.argv[1]); sys.argv = sys.argv[1:]
def category(s):
    j = " ".join(s)
    has = lambda x: x in s
    if any(f.startswith("plpg:") for f in s): return "plpgsql functions (compile, SPI parse/plan/run)"
    if has("to_tsvector_byid") or has("to_tsquery_byid") or has("plainto_tsquery_byid") or any(f.startswith("lookup_ts_") for f in s): return "text search (config/dict cache, tokenize)"
    if any(f.startswith("cv:") for f in s):
        return "codevec C code (embed, gpuivf, bm25 topk)"
    if has("inline_set_returning_function") or has("inline_function"):
        if has("pg_parse_query"): return "plan: inlining: raw parse of the bodies"
        if has("addRangeTableEntry") or has("parserOpenTable") or has("table_openrv_extended"): return "plan: inlining: open the bodies' tables (relcache)"
        if has("ParseFuncOrColumn"): return "plan: inlining: function lookups"
        if has("make_op") or has("make_scalar_array_op") or has("oper"): return "plan: inlining: operator lookups"
        if has("lookup_type_cache") or has("get_sort_group_operators"): return "plan: inlining: sort/group operators (type cache)"
        return "plan: inlining: rest (coercions, types, rewrite)"
    if has("pg_analyze_and_rewrite_varparams") or has("pg_analyze_and_rewrite_fixedparams"): return "outer statement: look up code.search (search_path, pg_proc)"
    if has("pg_parse_query"): return "raw parse (outer)"
    if has("get_relation_info"): return "plan: relation + index info (relcache)"
    if has("standard_planner"): return "plan: rest (stats, costing, const folding)"
    if has("standard_ExecutorStart"): return "executor start"
    if has("standard_ExecutorRun") or has("PortalRun"): return "executor run"
    if has("PortalDrop") or has("CommitTransactionCommand") or has("finish_xact_command"): return "end of statement (commit, drop portal)"
    return "other"
res = {}
for m in sys.argv[1:]:
    fn, fs = load(m + "-first"); sn, ss = load(m + "-second")
    c = collections.Counter(); pf = collections.Counter(); cat = collections.Counter()
    fs = [s for s in fs if "PostgresMain" in s]; ss = [s for s in ss if "PostgresMain" in s]   # the backend's main thread only
    for s in fs:
        k = category(s); c[k] += 1.0 / fn
        if "asm_exc_page_fault" in s: pf[k] += 1.0 / fn
        if iscat(s): cat[k] += 1.0 / fn
    for s in ss:
        k = category(s); c[k] -= 1.0 / sn
        if "asm_exc_page_fault" in s: pf[k] -= 1.0 / sn
        if iscat(s): cat[k] -= 1.0 / sn
    tot = sum(c.values())
    print("== %s: perf diff %.2f ms (first %.2f, second %.2f)" % (m, tot * 0.05, len(fs) * 0.05 / fn, len(ss) * 0.05 / sn))
    for k, v in sorted(c.items(), key=lambda x: -x[1]):
        print("  %-50s %6.2f ms perf  %5.1f%%  -> %5.2f ms real | of it: catalog reads %5.2f, page faults %5.2f" % (k, v * 0.05, 100 * v / tot, v / tot * REAL[m], cat[k] / tot * REAL[m], pf[k] / tot * REAL[m]))
    print("  %-50s %6.2f ms perf          -> %5.2f ms real | catalog reads %5.2f, page faults %5.2f" % ("TOTAL", tot * 0.05, REAL[m], sum(cat.values()) / tot * REAL[m], sum(pf.values()) / tot * REAL[m]))
