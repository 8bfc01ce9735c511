# test/venv.sh — the venv of a suite's pinned PyPI packages: sourced after
# test/tap.sh (it counts one check), bash.
#
#   pinned_venv VENV REQUIREMENTS DESCRIPTION
#       makes VENV (python3 -m venv, pip install -r REQUIREMENTS) unless it
#       exists with a copy of the same REQUIREMENTS; when it had to be made,
#       one check "DESCRIPTION" (ok when pip succeeded; pip's last lines as
#       the diagnostic when not). VENV's python is VENV/bin/python.
pinned_venv() {
	local venv=$1 reqs=$2 log
	[ -x "$venv/bin/python" ] && cmp -s "$reqs" "$venv/requirements.txt" && return 0
	log=$(mktemp "${TMPDIR:-/tmp}/pinned-venv.XXXXXX")
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	/usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
		-r "$reqs" >"$log" 2>&1 && cp "$reqs" "$venv/requirements.txt"
	ok $? "$3" "$log"
	rm -f "$log"
}
