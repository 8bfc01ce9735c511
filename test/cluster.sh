#!/usr/bin/env bash
# test/cluster.sh — start or stop a throwaway PostgreSQL 15 cluster.
#
#   eval "$(bash test/cluster.sh start DIR [PORT] [name=value ...])"
#       creates the cluster in DIR if it is not there (initdb as an
#       unprivileged user: initdb refuses root), starts it unless it runs,
#       and prints the PG* variables to eval (socket in /tmp, no TCP).
#       Extra name=value pairs go to postgresql.conf (applied at start).
#   bash test/cluster.sh stop DIR
#   bash test/cluster.sh status DIR
#
# As root the server runs as the system user "codevec" (created if missing);
# otherwise as the calling user. The superuser role is "postgres".
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status DIR [PORT] [name=value ...]" >&2; exit 2; }
port=${3:-5499}
shift $(( $# >= 3 ? 3 : $# ))

bindir=$(pg_config --bindir)
# Debian's pg_config --bindir is /usr/bin for the client; the server lives in
# the versioned folder.
[ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] || bindir=/usr/lib/postgresql/15/bin

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
		as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
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
		as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
			|| { tail -20 "$dir/server.log" >&2; exit 1; }
	fi
	p=$(sed -n "s/^port = \([0-9]*\)$/\1/p" "$dir/data/postgresql.conf" | tail -1)
	echo "export PGHOST=/tmp PGPORT=$p PGUSER=postgres PGDATABASE=postgres"
	;;
stop)
	if [ -f "$dir/data/PG_VERSION" ]; then
		as_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
status)
	as_user "$bindir/pg_ctl" -D "$dir/data" status
	;;
*)
	echo "unknown command $cmd" >&2; exit 2 ;;
esac
