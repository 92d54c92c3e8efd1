# shellcheck shell=bash
# Shared helpers for the vmsift QEMU crash harness. Sourced, not executed.
#
# Everything the harness produces lives under the repository's target/ directory, so
# `cargo clean` removes it and CI can cache it:
#   target/cache/debs/            downloaded kernel image .debs (-dbg .debs are deleted)
#   target/cache/kernels/<kver>/  `dpkg -x` of linux-image-<kver>
#   target/cache/vmlinux/         vmlinux-<kver> with debug info
#   target/cache/workload         static workload binary
#   target/vmcores/               <name>.elf/.log/.env from make-vmcore
#   target/e2e/<name>/            capture-with and capture-to results

HARNESS_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$HARNESS_DIR/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
CACHE_DIR=$TARGET_DIR/cache
# shellcheck disable=SC2034  # used by the scripts that source this file
{
    DEB_DIR=$CACHE_DIR/debs
    KERNEL_CACHE=$CACHE_DIR/kernels
    VMLINUX_CACHE=$CACHE_DIR/vmlinux
    VMCORE_DIR=$TARGET_DIR/vmcores
    E2E_DIR=$TARGET_DIR/e2e
}

# Progress and errors go to stderr so stdout stays clean for the result path.
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# need_cmd CMD PACKAGE: install PACKAGE with apt-get unless CMD is already available.
need_cmd() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "installing $pkg (for $cmd)"
    if [ "$(id -u)" -ne 0 ]; then die "$cmd missing and not root; install $pkg"; fi
    if [ -z "${_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 \
        || die "apt-get install $pkg failed"
    command -v "$cmd" >/dev/null 2>&1 || die "$pkg installed but $cmd still not found"
}

# need_file PATH PACKAGE: like need_cmd for a file that is not on PATH.
need_file() {
    local file=$1 pkg=$2
    [ -e "$file" ] && return 0
    log "installing $pkg (for $file)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 \
        || die "apt-get install $pkg failed"
    [ -e "$file" ] || die "$pkg installed but $file still missing"
}

# Static busybox: the only userland of both initramfs images.
busybox_static() {
    local bb=/bin/busybox
    if [ ! -x "$bb" ] || ! file_is_static "$bb"; then
        need_file /bin/busybox busybox-static
    fi
    file_is_static "$bb" || die "$bb is not statically linked (install busybox-static)"
    echo "$bb"
}

# file_is_static FILE: true if FILE has no ELF interpreter (PT_INTERP).
file_is_static() {
    ! LC_ALL=C readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
}

# check_kver KVER: refuse anything that does not look like a Debian kernel release.
check_kver() {
    [[ $1 =~ ^[0-9]+\.[0-9]+[.0-9]*[-+][A-Za-z0-9.+~-]+$ ]] || die "bad kernel version '$1'"
}

# kver_arch KVER: the Debian architecture of kernel KVER (its flavour suffix): amd64 or arm64.
kver_arch() {
    case $1 in
    *-arm64) echo arm64 ;;
    *) echo amd64 ;;
    esac
}

# suite_of KVER: the Debian suite that serves kernel KVER, other than this machine's own
# (empty for bookworm and its backports, which this machine's sources already have).
suite_of() {
    case $1 in
    5.10.*) echo bullseye ;;
    7.*) echo sid ;;
    *) echo "" ;;
    esac
}

# apt_lock / apt_unlock: one apt-get at a time across processes (tests/run-all fetches
# debug packages in the background while the rest goes on). Nested calls are no-ops.
apt_lock() {
    [ -z "${_APT_LOCKED:-}" ] || return 0
    mkdir -p "$CACHE_DIR"
    exec 7>"$CACHE_DIR/.apt.lock"
    flock 7
    _APT_LOCKED=1
}
apt_unlock() {
    [ -n "${_APT_LOCKED:-}" ] || return 0
    flock -u 7
    exec 7>&-
    _APT_LOCKED=
}

# apt_suite_opts SUITE [ARCH]: sets APT_OPTS to apt options that read SUITE's package lists
# for ARCH (default amd64), kept in target/cache/apt/SUITE/ (another architecture than
# amd64: target/cache/apt/SUITE-ARCH/, bookworm for an empty SUITE); fetched once a day at
# most; sid's Release may look expired. The machine's own dpkg and apt state are not touched.
apt_suite_opts() {
    local suite=$1 arch=${2:-amd64} dir
    APT_OPTS=()
    if [ "$arch" = amd64 ]; then
        [ -n "$suite" ] || return 0
        dir=$CACHE_DIR/apt/$suite
    else
        suite=${suite:-bookworm}
        dir=$CACHE_DIR/apt/$suite-$arch
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    local key=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        echo "deb [signed-by=$key] http://deb.debian.org/debian $suite main"
        [ "$suite" != bookworm ] || echo "deb [signed-by=$key] http://deb.debian.org/debian $suite-updates main"
        [ "$suite" = sid ] || echo "deb [signed-by=$key] http://deb.debian.org/debian-security $suite-security main"
    } > "$dir/sources.list"
    APT_OPTS=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$dir/lists" -o "Acquire::Check-Valid-Until=false")
    if [ "$arch" != amd64 ]; then
        # Its own package cache too, so the machine's pkgcache.bin is never rebuilt for it.
        APT_OPTS+=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
            -o "Dir::Cache=$dir/cache" -o "Dir::State::status=$dir/status")
        [ -f "$dir/status" ] || : > "$dir/status"
    fi
    if [ -z "$(find "$dir" -maxdepth 1 -name .updated -mmin -1440)" ]; then
        local held=${_APT_LOCKED:-}
        apt_lock
        if [ -z "$(find "$dir" -maxdepth 1 -name .updated -mmin -1440)" ]; then
            log "reading the package lists of Debian $suite${2:+ ($arch)}"
            apt-get -qq "${APT_OPTS[@]}" update >&2 || die "apt-get update for $suite failed"
            touch "$dir/.updated"
        fi
        [ -n "$held" ] || apt_unlock
    fi
}

# apt_download PKG DIR [SUITE [ARCH]]: fetch PKG's .deb for ARCH (default: the machine's)
# into DIR (idempotent), print its path.
apt_download() {
    local pkg=$1 dir=$2 suite=${3:-} arch=${4:-} deb
    mkdir -p "$dir"
    if [ -n "$arch" ]; then
        deb=$(find "$dir" -maxdepth 1 \( -name "${pkg}_*_$arch.deb" -o -name "${pkg}_*_all.deb" \) | head -n1)
    else
        deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
    fi
    if [ -z "$deb" ]; then
        apt_lock
        # Another process may have fetched it while this one waited for the lock.
        deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*${arch:+_$arch}.deb" | head -n1)
    fi
    if [ -z "$deb" ]; then
        need_cmd apt-get apt
        apt_suite_opts "$suite" ${arch:+"$arch"}
        log "downloading $pkg${suite:+ (Debian $suite)}${arch:+ ($arch)}"
        # apt-get download works in the current directory; run in a temp dir so an
        # interrupted download never leaves a partial .deb under the final name.
        local tmp
        tmp=$(mktemp -d "$dir/.dl.XXXXXX")
        # The _apt sandbox user cannot read a root-only dir; apt warns ("Download is
        # performed unsandboxed as root") and carries on, so that warning is filtered out.
        local errf=$tmp/.stderr
        if ! (cd "$tmp" && apt-get download -q "${APT_OPTS[@]}" "$pkg" >/dev/null 2>"$errf"); then
            # The package lists may be missing or stale on a fresh machine.
            log "apt-get download $pkg failed; running apt-get update and retrying"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq "${APT_OPTS[@]}" >&2 || true
            if ! (cd "$tmp" && apt-get download -q "${APT_OPTS[@]}" "$pkg" >/dev/null 2>"$errf"); then
                cat "$errf" >&2; rm -rf "$tmp"; die "apt-get download $pkg failed"
            fi
        fi
        grep -v -e 'unsandboxed' -e "_apt" "$errf" >&2 || true
        deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
        [ -n "$deb" ] || { rm -rf "$tmp"; die "no .deb for $pkg after download"; }
        mv "$deb" "$dir/"
        rm -rf "$tmp"
        deb=$dir/${deb##*/}
    fi
    apt_unlock
    echo "$deb"
}

# Debian package names: the image package for KVER, and the matching -dbg package.
# From 7.x (sid) the image package is split in three: the kernel is in linux-binary-KVER
# (the vmlinuz under usr/lib/modules/KVER/), the modules in linux-modules-KVER, and
# modules.builtin, config and System.map in linux-base-KVER.
image_pkg() {
    case $1 in
    7.*) echo "linux-binary-$1 linux-modules-$1 linux-base-$1" ;;
    *) echo "linux-image-$1" ;;
    esac
}
dbg_pkg() { echo "linux-image-$1-dbg"; }
