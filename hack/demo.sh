#!/usr/bin/env bash
# The one-machine demo behind `make demo` and `make demo-stop`.
#
#   demo.sh start   build the demo image, start a manager with --worker on
#                   loopback (data under build/demo), push the image, create a
#                   3-replica service publishing port 8080, show its tasks,
#                   curl answers from different replicas, and its logs. On a terminal
#                   it then follows the logs until Ctrl-C, and cleans up.
#   demo.sh stop    remove the demo's services, stop the manager, and make
#                   sure no process, mount or cgroup of the demo is left.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$ROOT/build/demo
BIN=$ROOT/bin
export MINKE_HOST=$DEMO/manager.sock
SWARMCTL=$BIN/swarmctl

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

manager_pid() {
	[[ -f $DEMO/manager.pid ]] || return 1
	local pid; pid=$(cat "$DEMO/manager.pid")
	kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.2s.
wait_for() {
	local what=$1 secs=$2; shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

containers_gone() { [[ -z $(ls -A "$DEMO/data/runtime/containers" 2>/dev/null) ]]; }

stop() {
	if pid=$(manager_pid); then
		say "removing services"
		local svcs
		svcs=$("$SWARMCTL" service ls --format json 2>/dev/null | grep -o '"name": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' || true)
		for s in $svcs; do "$SWARMCTL" service rm "$s" || true; done
		wait_for "containers to stop" 40 containers_gone || echo "demo: containers still there after 40s; forcing cleanup" >&2
		say "stopping manager (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		wait_for "manager to exit" 15 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$DEMO/manager.pid"
	# Whatever a crash may have left: processes in the demo node's cgroups,
	# overlay mounts under the demo dir, and the cgroups themselves.
	if [[ -f $DEMO/data/node-id ]]; then
		local node; node=$(cat "$DEMO/data/node-id")
		for h in /sys/fs/cgroup/*/minke/"$node" /sys/fs/cgroup/minke/"$node"; do
			[[ -d $h ]] || continue
			find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
			sleep 0.2
			find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done
	fi
	awk -v d="$DEMO/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	echo "demo stopped and cleaned up (data kept in $DEMO/data; 'make clean' deletes it)"
}

start() {
	[[ $EUID -eq 0 ]] || die "needs root: containers use namespaces, cgroups and overlayfs (run: sudo make demo)"
	manager_pid >/dev/null && stop
	mkdir -p "$DEMO"
	say "building the demo image (a static Go program) as an OCI image tarball"
	go run ./hack/mkimage -o "$DEMO/hello.tar" -tag hello:latest ./examples/hello
	ls -l "$DEMO/hello.tar"

	say "starting a one-machine cluster: manager --worker on 127.0.0.1"
	"$BIN/manager" --data-dir "$DEMO/data" --listen-addr 127.0.0.1:4242 --control-socket "$MINKE_HOST" \
		--worker --hostname demo-node >"$DEMO/manager.log" 2>&1 &
	echo $! >"$DEMO/manager.pid"
	if ! wait_for "manager" 30 "$SWARMCTL" node ls; then
		tail -20 "$DEMO/manager.log" >&2
		die "manager did not come up in 30s (log: $DEMO/manager.log)"
	fi
	trap 'stop; exit 130' INT TERM
	"$SWARMCTL" node ls

	say "swarmctl image push $DEMO/hello.tar"
	"$SWARMCTL" image push "$DEMO/hello.tar"

	say "swarmctl service create --name hello --replicas 3 --limit-memory 64M --publish 8080:80 hello:latest -listen :80"
	local t0=$EPOCHREALTIME
	"$SWARMCTL" service create --name hello --replicas 3 --limit-memory 64M --publish 8080:80 hello:latest -listen :80
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "service create -> 3 running: %.2fs\n", b - a }'

	say "swarmctl service ls"; "$SWARMCTL" service ls
	say "swarmctl service ps hello"; "$SWARMCTL" service ps hello
	say "the containers: one PID namespace each, 64MiB memory limit"
	local node; node=$(cat "$DEMO/data/node-id")
	for d in /sys/fs/cgroup/memory/minke/"$node"/*/; do
		[[ -d $d ]] || continue
		local pid; pid=$(head -1 "$d/cgroup.procs" 2>/dev/null || true)
		[[ -n $pid ]] || continue
		printf '%s  pid %-7s %s  memory.limit_in_bytes=%s\n' "$(basename "$d" | cut -c1-12)" "$pid" \
			"$(readlink /proc/"$pid"/ns/pid)" "$(cat "$d/memory.limit_in_bytes")"
	done
	say "curl http://127.0.0.1:8080/ six times: each connection goes to the next replica (answers are container hostnames)"
	wait_for "port 8080" 10 curl -fsS --max-time 2 http://127.0.0.1:8080/ || echo "demo: port 8080 does not answer yet" >&2
	for _ in 1 2 3 4 5 6; do
		printf 'curl 127.0.0.1:8080 -> %s\n' "$(curl -sS --max-time 2 http://127.0.0.1:8080/ 2>&1)"
	done
	sleep 1
	say "swarmctl service logs hello"; "$SWARMCTL" service logs hello

	if [[ -t 0 && -t 1 ]]; then
		say "following the logs; Ctrl-C stops the demo and cleans up"
		"$SWARMCTL" service logs -f hello || true
		stop
	else
		say "the cluster keeps running: export MINKE_HOST=$MINKE_HOST and try swarmctl; 'make demo-stop' cleans up"
		trap - INT TERM
	fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) die "usage: demo.sh start|stop" ;;
esac
