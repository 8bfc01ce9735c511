#!/usr/bin/env bash
# test/cluster.sh — start or stop a throwaway PostgreSQL cluster (15 or 18).
#
#   eval "$(bash test/cluster.sh start DIR [PORT] [name=value ...])"
#       creates the cluster in DIR if it is not there (initdb as an
#       unprivileged user: initdb refuses root), starts it unless it runs,
#       and prints the PG* variables to eval (socket in /tmp, no TCP).
#       Extra name=value pairs go to postgresql.conf (applied at start).
#   bash test/cluster.sh stop DIR [fast|immediate]
#       (immediate: a crash; the next start replays WAL)
#   bash test/cluster.sh status DIR
#   bash test/cluster.sh bindir
#       the server binaries' folder this script uses (initdb, pg_ctl,
#       pg_upgrade ...)
#
# Which PostgreSQL: the one $PG_CONFIG names (default: pg_config on PATH,
# Debian's 15). Debian's pg_config --bindir is /usr/bin, which has the
# client only; the server is then in /usr/lib/postgresql/<major>/bin.
# PostgreSQL 18 from tools/install-pg18.sh has everything in one bindir.
# Extra initdb options: CLUSTER_INITDB_OPTS (e.g. --no-data-checksums: 18
# turns checksums on by default, 15 off, and pg_upgrade needs both alike).
#
# As root the server runs as the system user "codevec" (created if missing);
# otherwise as the calling user. The superuser role is "postgres".
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] || { echo "usage: $0 start|stop|status DIR [PORT] [name=value ...] | bindir" >&2; exit 2; }

PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
if ! [ -x "$bindir/initdb" ] || ! [ -x "$bindir/pg_ctl" ]; then
	major=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
	bindir=/usr/lib/postgresql/$major/bin
fi

if [ "$cmd" = bindir ]; then
	echo "$bindir"
	exit 0
fi
[ -n "$dir" ] || { echo "usage: $0 start|stop|status DIR [PORT] [name=value ...] | bindir" >&2; exit 2; }
port=${3:-5499}
mode=${3:-fast}
shift $(( $# >= 3 ? 3 : $# ))

dir=$(mkdir -p "$dir" && cd "$dir" && pwd)

if [ "$(id -u)" = 0 ]; then
	runas=codevec
	id -u "$runas" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$runas"
	chown "$runas" "$dir"
	as_user() { su -s /bin/sh "$runas" -c "$(printf '%q ' "$@")"; }
else
	as_user() { "$@"; }
fi

case "$cmd" in
start)
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		# shellcheck disable=SC2086
		as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 ${CLUSTER_INITDB_OPTS:-} >"$dir/initdb.log" 2>&1 \
			|| { cat "$dir/initdb.log" >&2; exit 1; }
		{
			echo "listen_addresses = ''"
			echo "unix_socket_directories = '/tmp'"
			echo "port = $port"
			echo "fsync = off"
			echo "max_parallel_workers_per_gather = 2"
		} >>"$dir/data/postgresql.conf"
	fi
	for kv in "$@"; do
		echo "${kv%%=*} = '${kv#*=}'" >>"$dir/data/postgresql.conf"
	done
	if ! as_user "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		# the server must not inherit the caller's descriptors: started under
		# `flock /tmp/codevec-db.lock ...` it would hold that lock for as long
		# as it runs
		for fd in /proc/$$/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null
		done
		as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
			|| { tail -20 "$dir/server.log" >&2; exit 1; }
	fi
	p=$(sed -n "s/^port = \([0-9]*\)$/\1/p" "$dir/data/postgresql.conf" | tail -1)
	echo "export PGHOST=/tmp PGPORT=$p PGUSER=postgres PGDATABASE=postgres"
	;;
stop)
	case "$mode" in fast|immediate) ;; *) echo "unknown stop mode $mode" >&2; exit 2 ;; esac
	# a cluster that is not there or not running is stopped; one that runs
	# and does not stop is an error
	if [ -f "$dir/data/PG_VERSION" ] && as_user "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_user "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null
	fi
	;;
status)
	as_user "$bindir/pg_ctl" -D "$dir/data" status
	;;
*)
	echo "unknown command $cmd" >&2; exit 2 ;;
esac
