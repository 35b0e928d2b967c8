#!/usr/bin/env bash
# install.sh puts a minke manager or worker in place on a systemd host:
# binaries, /etc/minke/ROLE.env (from deploy/env, only when absent),
# /var/lib/minke, the systemd unit, then `systemctl daemon-reload`. It starts
# nothing unless --start. Running it again is safe: an existing env file is
# never touched, unchanged files are left alone, and binaries are replaced by
# an atomic rename.
#
#   install.sh --role manager|worker [--bin-dir DIR] [--prefix /usr/local]
#              [--start] [--dry-run] [--destdir DIR]
#
#   --bin-dir DIR   where `make build` put manager, worker and swarmctl
#                   (default: bin/ next to this deploy/ directory)
#   --prefix DIR    binaries go to DIR/bin, docs to DIR/share/doc/minke
#                   (default /usr/local; the unit's ExecStart follows it)
#   --start         then `systemctl enable --now minke-ROLE.service`
#   --dry-run       print what would be done, change nothing (no root needed)
#   --destdir DIR   stage every file under DIR (for baking a VM image);
#                   runs no systemctl and needs no root
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
ROLE=""
BIN_DIR=$REPO_DIR/bin
PREFIX=/usr/local
START=0
DRY_RUN=0
DESTDIR=""

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() {
	echo "install.sh: $*" >&2
	exit 1
}
# run prints a command and runs it, or only prints it with --dry-run.
run() {
	echo "+ $*"
	if ((!DRY_RUN)); then
		"$@"
	fi
}
note() { echo "  $*"; }

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
	case $1 in
	--role)
		need_arg "$@"
		ROLE=$2
		shift 2
		;;
	--role=*)
		ROLE=${1#*=}
		shift
		;;
	--bin-dir)
		need_arg "$@"
		BIN_DIR=$2
		shift 2
		;;
	--bin-dir=*)
		BIN_DIR=${1#*=}
		shift
		;;
	--prefix)
		need_arg "$@"
		PREFIX=$2
		shift 2
		;;
	--prefix=*)
		PREFIX=${1#*=}
		shift
		;;
	--destdir)
		need_arg "$@"
		DESTDIR=$2
		shift 2
		;;
	--destdir=*)
		DESTDIR=${1#*=}
		shift
		;;
	--start)
		START=1
		shift
		;;
	--dry-run)
		DRY_RUN=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

case $ROLE in
manager | worker) ;;
"") die "--role is required: --role manager or --role worker" ;;
*) die "unknown role '$ROLE': want manager or worker" ;;
esac
PREFIX=${PREFIX%/}
[[ $PREFIX =~ ^/[A-Za-z0-9._/-]+$ ]] || die "--prefix '$PREFIX' must be an absolute path of letters, digits, '.', '_', '-' and '/'"
if [[ -n $DESTDIR ]]; then
	((!START)) || die "--start cannot be combined with --destdir: a staged tree is not this machine"
	DESTDIR=${DESTDIR%/}
fi

UNIT=minke-$ROLE.service
UNIT_SRC=$SCRIPT_DIR/systemd/$UNIT
ENV_SRC=$SCRIPT_DIR/env/$ROLE.env
[[ -f $UNIT_SRC && -f $ENV_SRC ]] || die "$UNIT_SRC or $ENV_SRC is missing: run install.sh from a complete deploy/ directory"

BINARIES=("$ROLE" swarmctl)
# A worker runs the manager binary (next to itself) as its manager role
# once it is promoted.
[[ $ROLE == worker ]] && BINARIES+=(manager)
# The containers' shim helper, when built: the worker runs it (next to
# itself) for each container, and falls back to re-executing itself.
[[ -f $BIN_DIR/minke-shim && -x $BIN_DIR/minke-shim ]] && BINARIES+=(minke-shim)
missing=()
for b in "${BINARIES[@]}"; do
	[[ -f $BIN_DIR/$b && -x $BIN_DIR/$b ]] || missing+=("$BIN_DIR/$b")
done
((${#missing[@]} == 0)) || die "missing executable(s): ${missing[*]} (run 'make build', or give --bin-dir DIR)"

if ((!DRY_RUN)) && [[ -z $DESTDIR ]]; then
	[[ $EUID -eq 0 ]] || die "needs root: it writes $PREFIX/bin, /etc/minke, /var/lib/minke and /etc/systemd/system (try: sudo $0 --role $ROLE ...; --dry-run shows the plan without root)"
	command -v systemctl >/dev/null || die "systemctl not found: install.sh targets systemd hosts"
fi

D=$DESTDIR
BIN_DEST=$PREFIX/bin
DOC_DEST=$PREFIX/share/doc/minke
ETC=/etc/minke
ENV_DEST=$ETC/$ROLE.env
UNIT_DEST=/etc/systemd/system/$UNIT
START_ENV=""
if ((START)); then
	START_ENV=$ENV_DEST
	[[ -e $ENV_DEST ]] || START_ENV=$ENV_SRC
	if grep -q '^[^#]*CHANGE-ME' "$START_ENV"; then
		die "refusing to start: $ENV_DEST still has CHANGE-ME placeholders; install without --start, edit it, then 'systemctl enable --now $UNIT'"
	fi
fi

((DRY_RUN)) && echo "dry run: nothing is changed"
echo "installing minke $ROLE (binaries from $BIN_DIR)${D:+ into $D}"

# copy_if_changed SRC DEST MODE: replace DEST by an atomic rename (a running
# binary is never written into) unless it already has SRC's content; sets
# COPIED to 1 when it replaced DEST.
COPIED=0
copy_if_changed() {
	local src=$1 dest=$2 mode=$3
	COPIED=0
	if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
		note "$dest is up to date"
		return
	fi
	run install -m "$mode" "$src" "$dest.new"
	run mv -f "$dest.new" "$dest"
	COPIED=1
}

changed_binaries=0
run install -d -m 0755 "$D$BIN_DEST"
for b in "${BINARIES[@]}"; do
	copy_if_changed "$BIN_DIR/$b" "$D$BIN_DEST/$b" 0755
	if ((COPIED)); then changed_binaries=1; fi
done

run install -d -m 0755 "$D$DOC_DEST"
copy_if_changed "$SCRIPT_DIR/README.md" "$D$DOC_DEST/README.md" 0644
if [[ -f $REPO_DIR/docs/operations.md ]]; then
	copy_if_changed "$REPO_DIR/docs/operations.md" "$D$DOC_DEST/operations.md" 0644
fi

# The env file holds join tokens: root only. It is the operator's: never
# overwritten.
run install -d -m 0755 "$D$ETC"
if [[ -e $D$ENV_DEST ]]; then
	note "keeping existing $D$ENV_DEST"
else
	run install -m 0600 "$ENV_SRC" "$D$ENV_DEST"
	((START)) || note "edit $ENV_DEST before starting (its CHANGE-ME placeholders)"
fi

run install -d -m 0700 "$D/var/lib/minke"

# The unit names /usr/local; it follows --prefix.
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
sed "s|/usr/local/|$PREFIX/|g" "$UNIT_SRC" >"$rendered"
echo "+ render $UNIT_SRC for --prefix $PREFIX: $(grep '^ExecStart=' "$rendered")"
run install -d -m 0755 "$D/etc/systemd/system"
copy_if_changed "$rendered" "$D$UNIT_DEST" 0644

if [[ -n $D ]]; then
	echo "staged under $D: on the target run 'systemctl daemon-reload' and 'systemctl enable --now $UNIT' once $ENV_DEST is filled in"
	exit 0
fi
run systemctl daemon-reload

if ((START)); then
	run systemctl enable --now "$UNIT"
	echo "started $UNIT: journalctl -u $UNIT -f"
	exit 0
fi
if ((changed_binaries)) && ((!DRY_RUN)) && systemctl is-active --quiet "$UNIT"; then
	echo "$UNIT is running the old binary: 'systemctl restart $UNIT' (one node at a time: see $DOC_DEST/README.md)"
fi
echo "installed; not started. Start with: systemctl enable --now $UNIT"
