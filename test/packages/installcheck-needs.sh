#!/usr/bin/env bash
# test/packages/installcheck-needs.sh -- run by `make installcheck` before
# pg_regress: says in one line what the regression tests need and lack,
# instead of a dozen diffs. They run against any server the PG* variables
# (PGHOST, PGPORT, PGUSER, ...) name, and need:
#   - the server answering, as a superuser (CREATE EXTENSION codevec is
#     untrusted; pg_regress creates and drops contrib_regression);
#   - the same major version as PG_CONFIG (whose files `make install` put in);
#   - codevec installed there (make install) and the default model (make
#     model: share/extension/codevec_models/default);
#   - the server on this machine, able to read this source tree (embed.sql
#     loads the fixture models of test/embed/fixtures by path).
# Exit status 0 when all is there, 1 (with the reasons) otherwise.
set -u
PG_CONFIG=${PG_CONFIG:-pg_config}
top=$(cd "$(dirname "$0")/../.." && pwd)
bindir=$("$PG_CONFIG" --bindir)
psql=$bindir/psql
[ -x "$psql" ] || psql=psql
q() { PGDATABASE=${PGDATABASE:-postgres} "$psql" -X -A -t -q -c "$1" 2>&1; }

why=()
if ! v=$(q "SELECT current_setting('server_version_num')::int / 10000, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"); then
	echo "installcheck: no server answers at PGHOST=${PGHOST:-(default)} PGPORT=${PGPORT:-(default)} as PGUSER=${PGUSER:-$(id -un)}: $v" >&2
	exit 1
fi
major=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[ "${v%%|*}" = "$major" ] || why+=("the server is PostgreSQL ${v%%|*}, $PG_CONFIG is $major (set PG_CONFIG to the server's)")
[ "${v##*|}" = t ] || why+=("${PGUSER:-$(id -un)} is not a superuser (CREATE EXTENSION codevec needs one)")
[ -f "$("$PG_CONFIG" --sharedir)/extension/codevec.control" ] || why+=("codevec is not installed for $PG_CONFIG (make install)")
[ -f "$("$PG_CONFIG" --sharedir)/extension/codevec_models/default/model.safetensors" ] ||
	why+=("the default model is not installed (make model)")
[ "${v##*|}" = t ] && case "$(q "SELECT (pg_stat_file('$top/test/embed/fixtures/tiny-bert/config.json', true)).size IS NOT NULL")" in
	t) ;;
	*) why+=("the server cannot read $top/test/embed/fixtures (embed.sql's fixture models): it must run on this machine, as a user that can read the tree") ;;
esac
[ ${#why[@]} -eq 0 ] && exit 0
printf 'installcheck: %s\n' "${why[@]}" >&2
exit 1
