#!/usr/bin/env bash
# Runs README.md's shell blocks as a new user would paste them: top to
# bottom, in one shell, in a fresh clone of this repository, against the
# emulator the README itself starts. A block fails the check when any of
# its commands fails (the blocks run under `set -e -o pipefail`; so write a
# command whose failure matters on a line of its own, not as the left side
# of `&&`, which set -e does not check).
#
#   scripts/readme-check.sh            # needs root (unshare -n); .ci/run runs it
#
# Which blocks run: every fenced block whose info string is sh, bash or
# shell. A block may be marked, on the line just before its opening fence:
#
#   <!-- readme-check: background: REASON -->  run it in the background, as
#       in a second terminal (a server that runs until stopped); later
#       blocks wait for it themselves, as the README tells users to
#   <!-- readme-check: skip: REASON -->  do not run it; the reason, printed
#       in the log, says why it cannot run here and what covers it instead
#
# The README's commands use the hub's fixed ports, 443 and 8883. So that
# they collide with nothing else on the machine, the blocks run in a network
# namespace of their own, with only a loopback interface: no network, so
# the Go modules are downloaded before entering it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"

log() { echo "== readme-check: $*"; }
die() { echo "readme-check: $*" >&2; exit 1; }

if [ "${READMECHECK_IN_NS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || die "needs root, for a network namespace of its own (unshare -n)"
	log "downloading the Go modules the blocks build with"
	(cd "$repo" && go mod download)
	exec unshare -n env READMECHECK_IN_NS=1 "$0" "$@"
fi

ip link set lo up
tmp="$(mktemp -d)"
# Everything in this network namespace besides this script was started by
# the blocks: a server a block left running must not outlive the check.
leftovers() {
	local self ns pid
	self=$(readlink /proc/$$/ns/net)
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[ "$pid" = $$ ] && continue
		ns=$(readlink "$d/ns/net" 2>/dev/null) || continue
		[ "$ns" = "$self" ] && echo "$pid"
	done
}
cleanup() {
	if [ -n "${runner:-}" ]; then
		kill -TERM -- "-$runner" 2>/dev/null || true
		wait "$runner" 2>/dev/null || true
	fi
	for pid in $(leftovers); do
		[ "$pid" = "$BASHPID" ] || kill -TERM "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

log "cloning $(git -C "$repo" rev-parse --short HEAD) into $tmp/iothub"
git clone --quiet --no-hardlinks "$repo" "$tmp/iothub"
mkdir -p "$tmp/bin" "$tmp/logs"

# The blocks, in order, as one script. Each starts with a line naming it.
awk -v logs="$tmp/logs" '
	function flush_marker() { mode = ""; reason = "" }
	BEGIN { in_block = 0; n = 0; flush_marker()
		print "set -e -o pipefail"
		print "set -m   # each background job in a process group of its own, stopped at the end"
		print "trap '\''rc=$?; for j in $(jobs -p); do kill -TERM -- -$j 2>/dev/null || true; done; wait || true; exit $rc'\'' EXIT"
		print "trap '\''exit 143'\'' TERM"
	}
	in_block == 0 && /^[[:space:]]*<!-- readme-check: (skip|background): .+ -->$/ {
		line = $0
		sub(/^[[:space:]]*<!-- readme-check: /, "", line); sub(/ -->$/, "", line)
		mode = line; sub(/:.*/, "", mode)
		reason = line; sub(/^[a-z]+: /, "", reason)
		next
	}
	in_block == 0 && /^[[:space:]]*<!-- readme-check/ { printf "echo \"README.md:%d: malformed marker: %s\" >&2; exit 2\n", NR, $0; next }
	in_block == 0 && /^[[:space:]]*```(sh|bash|shell)[[:space:]]*$/ {
		in_block = 1; n++; start = NR + 1
		if (mode == "skip") {
			printf "echo \"== README.md:%d: skipped: %s\"\n", start, reason
		} else if (mode == "background") {
			printf "echo \"== README.md:%d: in the background (%s)\"\n(\n", start, reason
		} else {
			printf "echo \"== README.md:%d\"\n", start
		}
		next
	}
	in_block == 0 && /^[[:space:]]*```/ { in_block = 2; flush_marker(); next }
	in_block == 0 && NF > 0 { flush_marker(); next }
	in_block != 0 && /^[[:space:]]*```[[:space:]]*$/ {
		if (in_block == 1 && mode == "background") {
			# disown: it is another terminal, not a job of this shell (a
			# later block'"'"'s bare `wait` must not wait for it).
			printf ") > %s/background-%d.log 2>&1 &\ndisown\n", logs, n
		}
		in_block = 0; flush_marker(); next
	}
	in_block == 1 && mode != "skip" { print }
' "$tmp/iothub/README.md" > "$tmp/readme.sh"

blocks=$(grep -c '^echo "== README.md:' "$tmp/readme.sh" || true)
[ "$blocks" -gt 0 ] || die "no shell blocks found in README.md"
log "running $blocks blocks ($(grep -c ': skipped: ' "$tmp/readme.sh" || true) marked to skip)"

# A new user's environment: the binaries `go install` makes are on PATH,
# nothing of ours is set, and the module proxy is out of reach.
set +e
(
	cd "$tmp/iothub"
	for v in $(env | sed -n 's/^\(IOTHUB_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
	# The module cache was filled, and verified, before entering the
	# namespace; the checksum database is out of reach from here.
	export GOBIN="$tmp/bin" PATH="$tmp/bin:$PATH" GOPROXY=off GOSUMDB=off
	exec setsid timeout 20m bash "$tmp/readme.sh"
) &
runner=$!
wait "$runner"
rc=$?
runner=""
set -e
if [ "$rc" != 0 ]; then
	for f in "$tmp"/logs/*.log; do
		[ -e "$f" ] || continue
		echo "--- $(basename "$f"):"
		tail -n 40 "$f"
	done
	die "a README block failed (exit $rc); see the block named last above"
fi
log "OK: every README shell block ran"
