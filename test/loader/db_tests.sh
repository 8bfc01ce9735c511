# test/loader/db_tests.sh -- database tests of codevec-load, sourced by
# run.sh (uses its ok/is/between helpers, $LOADER, $TMP, $FIXTURES).
# Creates a scratch database (dropped by run.sh's cleanup) on the server
# that the PG* environment variables name.

echo "# database"
MAINTDB=${PGDATABASE:-postgres}
if ! psql -X -q -d "$MAINTDB" -c 'SELECT 1' >/dev/null 2>"$TMP/psql.err"; then
    ok 1 "database reachable (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGDATABASE=$MAINTDB)"
    sed 's/^/#   /' "$TMP/psql.err"
    return 0 2>/dev/null || true
fi
TESTDB=cvl_test_$$
CVL_MAINTDB=$MAINTDB
psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $TESTDB" >/dev/null
ok $? "scratch database $TESTDB created"
export PGDATABASE=$TESTDB
Q() { psql -X -A -t -q -d "$TESTDB" -c "$1"; }

DIMSOPT=
if Q "CREATE EXTENSION IF NOT EXISTS codevec" >/dev/null 2>"$TMP/ext.err"; then
    ok 0 "codevec extension installs"
else
    ok 1 "codevec extension installs (continuing with --dims 0)"
    sed 's/^/#   /' "$TMP/ext.err"
    DIMSOPT="--dims 0"
fi

# --embed-words splits identifiers as the codevec_code text search parser
# does (its word, part and number leaves, lower-cased)
if [ -z "$DIMSOPT" ]; then
    IDS="parseConfigFile read_all_bytes HTTPServer getURLs getURLsFor parseHTTPConfig_v2 __init__ XMLHttpRequest utf8Decode base64 IDs A1B2 x42 snake_Case_ID"
    got=$(for w in $IDS; do
        printf '%s\t%s\n' "$w" "$(Q "SELECT string_agg(lower(token), ' ' ORDER BY n) FROM
            ts_debug('codevec_code', '$w') WITH ORDINALITY AS t(alias, d, token, ds, dl, lx, n)
            WHERE alias IN ('word', 'part', 'number')")"
    done)
    is "$got" "$(python3 "$HERE/words.py" split $IDS)" \
       "--embed-words rule (words.py) equals codevec_code's parser on $(echo $IDS | wc -w) identifiers"
    "$LOADER" -q --jsonl --embed-words=bare --embed-max-bytes=16M "$FIXTURES" > "$TMP/w-bare-fx.jsonl"
    # each qualified name and the first line of its bare embed_text (its words)
    python3 - "$TMP/w-bare-fx.jsonl" > "$TMP/w-ids.txt" <<'PYEOF'
import json, sys
seen = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    seen.setdefault(d["qualified_name"], d["embed_text"].split("\n")[0])
for q, w in sorted(seen.items()):
    print(q + "\t" + w)
PYEOF
    bad=0
    while IFS=$'\t' read -r qn gotl; do
        want=$(Q "SELECT string_agg(lower(token), ' ' ORDER BY n) FROM
            ts_debug('codevec_code', \$q\$$qn\$q\$) WITH ORDINALITY AS t(alias, d, token, ds, dl, lx, n)
            WHERE alias IN ('word', 'part', 'number')")
        [ "$gotl" = "$want" ] || { bad=$((bad + 1)); echo "#   $qn: loader '$gotl', parser '$want'"; }
    done < "$TMP/w-ids.txt"
    is "$bad" 0 "--embed-words: the loader's words of every fixture's qualified name equal the parser's ($(wc -l < "$TMP/w-ids.txt") names)"
else
    ok 0 "--embed-words against codevec_code's parser # SKIP no codevec extension on this server"
fi

R=$TMP/repo
mkdir -p "$R"
cp -r "$FIXTURES"/* "$R"/
NFILES=$(find "$R" -type f | wc -l)
"$LOADER" -q --jsonl "$R" > "$TMP/repo.jsonl"
NSNIP=$(wc -l < "$TMP/repo.jsonl")

# compare the database with the JSONL output of the same tree
db_matches_jsonl() {   # db_matches_jsonl REPO JSONL
    Q "SELECT f.path, s.kind, s.qualified_name, s.start_line, s.end_line,
              md5(s.code), md5(s.embed_text), coalesce(s.signature, 'None'),
              coalesce(md5(s.doc), 'None')
       FROM code.snippets s JOIN code.files f ON f.id = s.file_id
       JOIN code.repos r ON r.id = f.repo_id WHERE r.name = '$1'
       ORDER BY 1, 4, 3, 2" > "$TMP/db.rows"
    python3 - "$2" > "$TMP/jsonl.rows" <<'EOF'
import hashlib, json, sys
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
rows = []
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows.append((d["path"], d["kind"], d["qualified_name"], d["start_line"], d["end_line"],
                 md5(d["code"]), md5(d["embed_text"]), d["signature"] or "None",
                 md5(d["doc"]) if d["doc"] is not None else "None"))
rows.sort(key=lambda r: (r[0], r[3], r[2], r[1]))
for r in rows:
    print("|".join(str(x) for x in r))
EOF
    diff -q "$TMP/db.rows" "$TMP/jsonl.rows" >/dev/null
}

"$LOADER" --no-progress --no-embed $DIMSOPT "$R" 2> "$TMP/load1.err"
is $? 0 "first load exits 0"
is "$(Q "SELECT count(*) FROM code.files")" "$NFILES" "first load: every fixture file in code.files"
is "$(Q "SELECT count(*) FROM code.snippets")" "$NSNIP" "first load: snippet count equals --jsonl"
db_matches_jsonl repo "$TMP/repo.jsonl"; ok $? "first load: rows equal the --jsonl snippets (lines, code, doc, embed_text)"
is "$(Q "SELECT max(version) FROM code.schema_version")" "$([ -z "$DIMSOPT" ] && echo 2 || echo 1)" "schema version recorded (2: tsv by codevec_code)"
if [ -z "$DIMSOPT" ]; then
    is "$(Q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'code.snippets'::regclass AND attname = 'emb'")" \
       "codevec(384)" "emb column is codevec(384)"
    # kept in the row (code.search computes every candidate's distance from
    # it): new tables, and a table of an older loader on its next load
    is "$(Q "SELECT attstorage FROM pg_attribute WHERE attrelid = 'code.snippets'::regclass AND attname = 'emb'")" \
       "m" "emb is STORAGE MAIN (the vector stays in its row)"
    Q "ALTER TABLE code.snippets ALTER COLUMN emb SET STORAGE EXTERNAL" >/dev/null
    "$LOADER" -q --no-embed "$R" 2>/dev/null
    is "$(Q "SELECT attstorage FROM pg_attribute WHERE attrelid = 'code.snippets'::regclass AND attname = 'emb'")" \
       "m" "a table whose emb was EXTERNAL (an older loader's) is MAIN after the next load"
else
    ok 0 "emb column is codevec(384) # SKIP no codevec extension (--dims 0)"
    ok 0 "emb is STORAGE MAIN # SKIP no codevec extension (--dims 0)"
    ok 0 "an EXTERNAL emb becomes MAIN # SKIP no codevec extension (--dims 0)"
fi
is "$(Q "SELECT language || ' ' || bytes || ' ' || length(sha256) FROM code.files WHERE path = 'go/server.go'")" \
   "go $(stat -c %s "$R/go/server.go") 64" "code.files: language, bytes, sha256"
is "$(Q "SELECT count(*) FROM code.files WHERE indexed_at IS NULL")" "0" "code.files: indexed_at set"
is "$(Q "SELECT symbol FROM code.snippets WHERE tsv @@ to_tsquery('simple', 'fetch & user')")" \
   "fetchUser" "tsv: camelCase identifier found by its parts"
is "$(Q "SELECT symbol FROM code.snippets WHERE tsv @@ to_tsquery('simple', 'addrstring')")" \
   "addrString" "tsv: whole identifier kept"
is "$(Q "SELECT string_agg(symbol, ',' ORDER BY symbol) FROM code.snippets
         WHERE tsv @@ to_tsquery('simple', 'add & one')")" "add_one" "tsv: snake_case identifier found by its parts"
is "$(Q "SELECT symbol FROM code.snippets
         ORDER BY ts_rank(tsv, to_tsquery('simple', 'push')) DESC, id LIMIT 1")" \
   "list_push" "tsv: name matches (weight A) rank first"

IDS1=$(Q "SELECT string_agg(id::text, ',' ORDER BY id) FROM code.snippets")
"$LOADER" --no-progress --no-embed $DIMSOPT "$R" 2> "$TMP/load2.err"
is $? 0 "second load exits 0"
grep -q "0 parsed (0 new, 0 changed, 0 with syntax errors), $NFILES unchanged" "$TMP/load2.err"
ok $? "second load: nothing re-parsed"
is "$(Q "SELECT string_agg(id::text, ',' ORDER BY id) FROM code.snippets")" "$IDS1" \
   "second load: snippet rows untouched"

# modify one file
OTHER1=$(Q "SELECT string_agg(s.id::text, ',' ORDER BY s.id) FROM code.snippets s
            JOIN code.files f ON f.id = s.file_id WHERE f.path <> 'python/shapes.py'")
printf '\n\ndef added_later(x):\n    """Added by the test."""\n    return x\n' >> "$R/python/shapes.py"
"$LOADER" --no-progress --no-embed $DIMSOPT "$R" 2> "$TMP/load3.err"
is $? 0 "load after modify exits 0"
grep -q "1 parsed (0 new, 1 changed" "$TMP/load3.err"; ok $? "modify: only the changed file re-parsed"
is "$(Q "SELECT s.start_line || ' ' || s.doc FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         WHERE f.path = 'python/shapes.py' AND s.symbol = 'added_later'")" "$(grep -n '^def added_later' "$R/python/shapes.py" | cut -d: -f1) Added by the test." \
   "modify: new function present with line and doc"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         WHERE f.path = 'python/shapes.py'")" "9" "modify: old snippets replaced, not duplicated"
is "$(Q "SELECT string_agg(s.id::text, ',' ORDER BY s.id) FROM code.snippets s
         JOIN code.files f ON f.id = s.file_id WHERE f.path <> 'python/shapes.py'")" "$OTHER1" \
   "modify: other files' snippets untouched"
grep -q "snippets 1 added, 8 updated, 0 removed" "$TMP/load3.err"; ok $? "modify: summary counts"

# delete, rename, turn binary
rm "$R/go/server.go"
mv "$R/rust/lib.rs" "$R/rust/lib2.rs"
printf '\0' >> "$R/c/list.c"
"$LOADER" --no-progress --no-embed $DIMSOPT "$R" 2> "$TMP/load4.err"
is $? 0 "load after delete/rename/binary exits 0"
is "$(Q "SELECT count(*) FROM code.files WHERE path IN ('go/server.go', 'rust/lib.rs', 'c/list.c')")" "0" \
   "deleted, renamed-away and now-binary files removed"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         WHERE f.path = 'rust/lib2.rs'")" "10" "renamed file loaded under its new path"
is "$(Q "SELECT count(*) FROM code.snippets WHERE file_id NOT IN (SELECT id FROM code.files)")" "0" \
   "no orphan snippets"
grep -q "3 files removed" "$TMP/load4.err"; ok $? "summary counts removed files"
"$LOADER" -q --jsonl "$R" > "$TMP/repo2.jsonl"
db_matches_jsonl repo "$TMP/repo2.jsonl"; ok $? "after incremental loads: rows equal a fresh --jsonl run"

# a second repository side by side
"$LOADER" -q --no-embed $DIMSOPT --repo other "$R"
is $? 0 "--repo other loads"
is "$(Q "SELECT string_agg(name, ',' ORDER BY name) FROM code.repos")" "other,repo" "two repositories"
db_matches_jsonl other "$TMP/repo2.jsonl"; ok $? "--repo other: its own complete copy"
db_matches_jsonl repo "$TMP/repo2.jsonl"; ok $? "--repo other: first repository untouched"

# embedding
if [ -z "$DIMSOPT" ] && [ "$(Q "SELECT to_regprocedure('embed(text[])') IS NOT NULL")" = t ]; then
    "$LOADER" --no-progress --embed-only --repo repo 2> "$TMP/embed.err"
    is $? 0 "--embed-only exits 0"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'repo' AND s.emb IS NULL")" "0" \
       "--embed-only fills every embedding of the repository"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'other' AND s.emb IS NOT NULL")" "0" \
       "--embed-only --repo leaves other repositories alone"
    mkdir -p "$TMP/emb"
    cp "$FIXTURES/python/shapes.py" "$TMP/emb/"
    "$LOADER" --no-progress --repo emb "$TMP/emb" 2> "$TMP/embed2.err"
    is $? 0 "a load without --no-embed exits 0"
    is "$(Q "SELECT count(*) FILTER (WHERE s.emb IS NOT NULL) || '/' || count(*)
             FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'emb'")" "8/8" \
       "a load embeds its new snippets"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id
             WHERE r.name = 'emb' AND NOT (s.emb <=>
                   (SELECT e FROM unnest(embed(ARRAY[s.embed_text])) e) < 1e-4)")" "0" \
       "emb is embed(embed_text) (cosine distance < 1e-4; batches may round differently)"
    grep -q "embed: cpu, 64 snippets per call, rows stored with their embeddings" "$TMP/embed2.err"
    ok $? "without a GPU service: batches of 64, rows stored with their embeddings"
    # a changed file keeps the vectors of the snippets whose embed_text did
    # not change; only the new one is embedded (issue 23)
    Q "CREATE TABLE cvl_before AS SELECT s.embed_text, s.emb::text AS emb FROM code.snippets s
       JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
       WHERE r.name = 'emb'" >/dev/null
    printf '\n\ndef added_for_reuse(x):\n    """Added by the test."""\n    return x * 2\n' >> "$TMP/emb/shapes.py"
    "$LOADER" --no-progress --repo emb "$TMP/emb" 2> "$TMP/embed3.err"
    is $? 0 "reload of a changed file with embeddings exits 0"
    grep -q "snippets 1 added, 8 updated, 0 removed; 0 files removed; 1 snippets embedded, 8 embeddings kept" "$TMP/embed3.err"
    ok $? "changed file: the new snippet embedded, the 8 unchanged ones keep their vectors"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id JOIN cvl_before b ON b.embed_text = s.embed_text
             WHERE r.name = 'emb' AND s.emb::text = b.emb")" "8" \
       "changed file: the kept vectors are the stored ones, bit for bit"
    is "$(Q "SELECT count(*) FILTER (WHERE s.emb IS NOT NULL) || '/' || count(*) || ' ' ||
             count(*) FILTER (WHERE NOT (s.emb <=> (SELECT e FROM unnest(embed(ARRAY[s.embed_text])) e) < 1e-4))
             FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'emb'")" "9/9 0" \
       "changed file: every vector is embed(embed_text) after the reload"
    # embed() failing (a model folder that does not exist): the rows are
    # stored without embeddings, the error is reported, exit 3
    mkdir -p "$TMP/emb2" && cp "$FIXTURES/python/shapes.py" "$TMP/emb2/"
    PGOPTIONS="-c codevec.model=/nonexistent/model" "$LOADER" --no-progress --repo emb2 "$TMP/emb2" 2> "$TMP/embed4.err"
    is $? 3 "embed() failing: exit 3"
    grep -q "database error: .*nonexistent" "$TMP/embed4.err"; ok $? "embed() failing: the error names the model folder"
    is "$(Q "SELECT count(*) || ' ' || count(s.emb) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'emb2'")" "8 0" \
       "embed() failing: the rows are stored, without embeddings"
else
    "$LOADER" --no-progress $DIMSOPT --embed-only 2> "$TMP/embed.err"
    is $? 0 "--embed-only without embed(text[]) is not an error"
    grep -q "no embed(text\[\]) function\|nothing embedded" "$TMP/embed.err" || [ -n "$DIMSOPT" ]
    ok $? "--embed-only without embed(text[]) prints a notice"
fi

# a dropped connection mid-run: committed batches are whole files
M=$TMP/many
mkdir -p "$M"
python3 - "$M" <<'EOF'
import os, sys
for i in range(3000):
    d = os.path.join(sys.argv[1], "pkg%02d" % (i % 30))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "m%04d.py" % i), "w") as f:
        for j in range(3):
            f.write("def f%d_%d(x):\n    '''Doc %d.'''\n    return x + %d\n\n\n" % (i, j, j, j))
EOF
"$LOADER" --no-progress --no-embed $DIMSOPT --repo many --batch-files 10 -j 1 "$M" 2> "$TMP/drop.err" &
LPID=$!
for _ in $(seq 1 200); do
    n=$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'many'" 2>/dev/null)
    [ "${n:-0}" -gt 30 ] && break
    sleep 0.05
done
# hold a lock the loader's next batch must wait for (its upsert of
# code.files), so that it is surely in the middle of the run, then
# terminate its backend while it waits
PGAPPNAME=cvl_locker psql -X -q -d "$TESTDB" -c "BEGIN" -c "LOCK TABLE code.files IN SHARE MODE" \
    -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
LOCKPID=$!
waiting=
for _ in $(seq 1 400); do
    waiting=$(Q "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'codevec-load' AND wait_event_type = 'Lock' LIMIT 1" 2>/dev/null)
    [ -n "$waiting" ] && break
    sleep 0.05
done
is "$([ -n "$waiting" ] && Q "SELECT pg_terminate_backend($waiting)")" "t" \
   "dropped connection: the loader's backend, waiting mid-run, was terminated (pg_terminate_backend)"
wait $LPID
rc=$?
Q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cvl_locker'" >/dev/null
wait $LOCKPID 2>/dev/null
is "$rc" 3 "dropped connection: exit 3"
grep -Eq "database error: .*(terminat|connection)" "$TMP/drop.err"
ok $? "dropped connection: the message says the connection was lost"
sed -n 's/^codevec-load: database error/#   &/p' "$TMP/drop.err" | head -2
n=$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'many'")
between "$n" 1 2999 "dropped connection: earlier batches committed"
is "$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id
         WHERE r.name = 'many' AND (SELECT count(*) FROM code.snippets s WHERE s.file_id = f.id) <> 3")" \
   "0" "dropped connection: no half-written file"
"$LOADER" -q --no-embed $DIMSOPT --repo many "$M"
is $? 0 "reload after the drop exits 0"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'many'")" "9000" "reload completes the repository"

# several writer connections store exactly what one does (issue 23)
"$LOADER" --no-progress --no-embed $DIMSOPT --repo par --connections 3 --batch-files 7 "$M" 2> "$TMP/par.err"
is $? 0 "--connections 3 exits 0"
grep -q "(3 connections, summed)" "$TMP/par.err"; ok $? "--connections 3: three writers"
"$LOADER" -q --no-embed $DIMSOPT --repo one --connections 1 "$M"
rows() { echo "SELECT f.path, f.sha256, s.kind, s.qualified_name, s.start_line, s.end_line, s.code,
              s.embed_text, s.tsv::text FROM code.snippets s JOIN code.files f ON f.id = s.file_id
              JOIN code.repos r ON r.id = f.repo_id WHERE r.name = '$1'"; }
is "$(Q "SELECT count(*) FROM (($(rows par)) EXCEPT ALL ($(rows one))) a") $(Q "SELECT count(*) FROM (($(rows one)) EXCEPT ALL ($(rows par))) a") $(Q "SELECT count(*) FROM ($(rows par)) a")" \
   "0 0 9000" "--connections 3 and --connections 1 store the same rows (9000)"
"$LOADER" -q --no-embed $DIMSOPT --repo par --connections 0 "$M" 2>/dev/null
is $? 2 "--connections 0 is a usage error"

# a tree that vanishes mid-run: committed rows stay, nothing is wiped
V=$TMP/vanish
cp -r "$M" "$V"
"$LOADER" --no-progress --no-embed $DIMSOPT --repo vanish --batch-files 10 -j 1 "$V" 2> "$TMP/vanish.err" &
LPID=$!
for _ in $(seq 1 200); do
    n=$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'vanish'" 2>/dev/null)
    [ "${n:-0}" -gt 30 ] && break
    sleep 0.05
done
# the loader waits on a lock mid-run while the tree is removed, so the
# removal surely happens during the run
PGAPPNAME=cvl_locker psql -X -q -d "$TESTDB" -c "BEGIN" -c "LOCK TABLE code.files IN SHARE MODE" \
    -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
LOCKPID=$!
waiting=
for _ in $(seq 1 400); do
    waiting=$(Q "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'codevec-load' AND wait_event_type = 'Lock' LIMIT 1" 2>/dev/null)
    [ -n "$waiting" ] && break
    sleep 0.05
done
ok "$([ -n "$waiting" ]; echo $?)" "vanishing tree: the loader is waiting mid-run when the tree is removed"
rm -rf "$V"
Q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cvl_locker'" >/dev/null
wait $LOCKPID 2>/dev/null
wait $LPID
rc=$?
is "$rc" 1 "vanishing tree: exit 1 (partial)"
grep -q "vanished during the run" "$TMP/vanish.err"; ok $? "vanishing tree: says so"
grep -q "vanished [0-9]" "$TMP/vanish.err"; ok $? "vanishing tree: vanished files counted in the summary"
n=$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'vanish'")
between "$n" 1 2999 "vanishing tree: committed files kept"
is "$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id
         WHERE r.name = 'vanish' AND (SELECT count(*) FROM code.snippets s WHERE s.file_id = f.id) <> 3")" \
   "0" "vanishing tree: no half-written file"

# two loaders on one repository at once: the second waits for the first
"$LOADER" -q --no-embed $DIMSOPT --repo conc "$M" & P1=$!
"$LOADER" -q --no-embed $DIMSOPT --repo conc "$M" & P2=$!
wait $P1; r1=$?
wait $P2; r2=$?
is "$r1 $r2" "0 0" "two concurrent loads of one repository both exit 0"
is "$(Q "SELECT count(*) || ' ' || count(DISTINCT (s.file_id, s.qualified_name))
         FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'conc'")" "9000 9000" \
   "two concurrent loads: every snippet once"

# the product's main job on a real tree: load the Python stdlib, find by keywords
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
if [ -f "$PYLIB/json/decoder.py" ]; then
    "$LOADER" -q --no-embed $DIMSOPT --repo stdlib "$PYLIB"
    is $? 0 "stdlib loads into the database"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'stdlib'")" \
       "$(wc -l < "$TMP/stdlib.jsonl")" "stdlib: as many rows as --jsonl snippets"
    Q "SELECT s.qualified_name FROM code.snippets s JOIN code.files f ON f.id = s.file_id
       JOIN code.repos r ON r.id = f.repo_id
       WHERE r.name = 'stdlib' AND s.tsv @@ websearch_to_tsquery('simple', 'json decode')
       ORDER BY ts_rank(s.tsv, websearch_to_tsquery('simple', 'json decode')) DESC, s.id
       LIMIT 10" > "$TMP/kw.out"
    grep -qx 'json.decoder.JSONDecoder.decode' "$TMP/kw.out"
    ok $? "stdlib: keyword query 'json decode' finds json.decoder.JSONDecoder.decode in the top 10"
    is "$(Q "SELECT f.path || ':' || s.start_line FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id
             WHERE r.name = 'stdlib' AND s.qualified_name = 'os.makedirs'")" \
       "os.py:$(grep -n '^def makedirs' "$PYLIB/os.py" | cut -d: -f1)" "stdlib: os.makedirs path and line in the database"
else
    ok 0 "stdlib in the database # SKIP $PYLIB/json/decoder.py not found"
fi

# ---------------------------------------------------------------- isolation
# the server refuses some files' rows (a CHECK constraint on code.snippets,
# a trigger on code.files: independent of anything the loader does wrong);
# the rest of each batch is written, the refused files are named (-v) and
# counted, the exit status is 1, and embedding still runs
echo "# isolation: rows the server refuses"
J=$TMP/reject
mkdir -p "$J"
for i in $(seq 1 60); do
    printf 'def f%03d(x):\n    """Function %d."""\n    return x + %d\n' "$i" "$i" "$i" > "$J/$(printf 'm%03d' "$i").py"
done
printf 'def reject_me():\n    return 0\n' >> "$J/m017.py"
printf 'def g():\n    return 1\n' > "$J/refused_by_trigger.py"
Q "ALTER TABLE code.snippets ADD CONSTRAINT cvl_test_reject CHECK (symbol <> 'reject_me') NOT VALID" >/dev/null
Q "CREATE FUNCTION cvl_test_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN IF NEW.path LIKE 'refused%' THEN RAISE EXCEPTION 'file % refused by a test trigger', NEW.path; END IF;
   RETURN NEW; END \$\$;
   CREATE TRIGGER cvl_test_refuse BEFORE INSERT ON code.files FOR EACH ROW EXECUTE FUNCTION cvl_test_refuse()" >/dev/null
EMBED=
if [ -z "$DIMSOPT" ] && [ "$(Q "SELECT to_regprocedure('embed(text[])') IS NOT NULL")" = t ]; then EMBED=1; fi
"$LOADER" --no-progress -v $DIMSOPT $([ -z "$EMBED" ] && echo --no-embed) --repo reject "$J" 2> "$TMP/reject.err"
is $? 1 "rejected files: exit 1 (partial success)"
grep -q '^codevec-load: skipped m017.py: rejected (writing code.snippets: ERROR:  new row for relation "snippets" violates check constraint "cvl_test_reject")$' "$TMP/reject.err"
ok $? "rejected files: -v names the file a CHECK constraint refused, with the server's message"
grep -q '^codevec-load: skipped refused_by_trigger.py: rejected (.*file refused_by_trigger.py refused by a test trigger)$' "$TMP/reject.err"
ok $? "rejected files: -v names the file a trigger refused"
grep -q '^codevec-load: 61 files seen, 59 parsed (59 new, 0 changed, 0 with syntax errors), 0 unchanged, 2 skipped$' "$TMP/reject.err"
ok $? "rejected files: the counts add up (61 seen = 59 parsed + 2 skipped)"
grep -q '^codevec-load: skipped: rejected 2$' "$TMP/reject.err"; ok $? "rejected files: counted under skipped: rejected"
is "$(Q "SELECT count(*) || ' ' || count(*) FILTER (WHERE f.path IN ('m017.py', 'refused_by_trigger.py'))
         FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'reject'")" "59 0" \
   "rejected files: every other file of the batch is stored, the refused ones are not"
if [ -n "$EMBED" ]; then
    is "$(Q "SELECT count(*) FILTER (WHERE s.emb IS NOT NULL) || '/' || count(*) FROM code.snippets s
             JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
             WHERE r.name = 'reject'")" "59/59" "rejected files: embedding still ran for everything stored"
else
    ok 0 "rejected files: embedding still ran # SKIP no embed(text[]) on this server"
fi
Q "ALTER TABLE code.snippets DROP CONSTRAINT cvl_test_reject; DROP TRIGGER cvl_test_refuse ON code.files" >/dev/null
"$LOADER" --no-progress --no-embed $DIMSOPT --repo reject "$J" 2> "$TMP/reject2.err"
is $? 0 "rejected files: once the server accepts them, a rerun exits 0"
grep -q ' 2 parsed (2 new, 0 changed, 0 with syntax errors), 59 unchanged' "$TMP/reject2.err"
ok $? "rejected files: the rerun loads just the two missing files"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
         JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'reject'")" "62" "rejected files: the repository is complete"

# ---------------------------------------------------------------- text in the database
echo "# text in the database"
"$LOADER" -q --no-embed $DIMSOPT --repo encodings "$HERE/encodings"
is $? 0 "encodings fixtures load into the database"
Q "SELECT json_build_object('path', f.path, 'start_line', s.start_line, 'end_line', s.end_line, 'code', s.code)
   FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
   WHERE r.name = 'encodings'" > "$TMP/enc-db.jsonl"
python3 "$HERE/textcheck.py" "$HERE/encodings" "$TMP/enc-db.jsonl" > "$TMP/enc-db.out"
ok $? "encodings: code.snippets.code is the text Python decodes ($(wc -l < "$TMP/enc-db.jsonl") snippets)"
grep '^#   ' "$TMP/enc-db.out" | head -5
if [ -d "$TMP/cuts" ]; then
    "$LOADER" -q --no-embed $DIMSOPT --repo cuts "$TMP/cuts"
    is $? 0 "cut fixtures and random ill-formed UTF-8 load into the database (the server takes every row)"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'cuts'")" \
       "$(cat "$TMP/cuts/def.jsonl" "$TMP/cuts/rand.jsonl" | wc -l)" "cuts: as many rows as --jsonl snippets"
else
    ok 0 "cut fixtures in the database # SKIP run.sh's text section did not make them"
fi
