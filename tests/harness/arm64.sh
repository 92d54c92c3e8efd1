# shellcheck shell=bash
# arm64 guests for the crash harness: Debian arm64 kernels (KVER ending in -arm64) crashed
# under qemu-system-aarch64 -M virt with TCG on this x86_64 host. Sourced by crash.sh.
#
# The guest userland comes from Debian's arm64 packages, unpacked once into
# target/cache/arm64/root/ (their .debs in target/cache/arm64/debs/): busybox-static, and
# kexec-tools with the shared libraries it needs (kexec links glibc, zlib and Xen's
# libraries). The workload is cross-compiled statically with aarch64-linux-gnu-gcc.
#
# --cpu for arm64: max (QEMU's max CPU: LPA2, so a 52-bit-VA kernel uses 52 bits) or
# max-nolpa2 (no LPA2: such a kernel falls back to 48 bits). Both with pauth-impdef=on:
# QEMU's default QARMA pointer authentication makes the guest about 4.5 times slower.

ARM64_DIR=$CACHE_DIR/arm64
ARM64_ROOT=$ARM64_DIR/root

# arm64_qemu_cpu CPU: QEMU's -cpu value for the harness's --cpu choice.
arm64_qemu_cpu() {
    case $1 in
    max) echo max,pauth-impdef=on ;;
    max-nolpa2) echo max,pauth-impdef=on,lpa2=off ;;
    *) die "--cpu for an arm64 kernel must be max or max-nolpa2" ;;
    esac
}

# arm64_userland: make $ARM64_ROOT once (busybox-static, kexec-tools and the libraries
# their packages depend on, from Debian bookworm arm64) and print it.
arm64_userland() {
    arm64_unpack "$ARM64_ROOT" kexec-tools busybox-static
}

# arm64_makedumpfile: Debian bookworm's arm64 makedumpfile (1.7.2) with the libraries its
# package depends on, unpacked once into $ARM64_DIR/makedumpfile-root/ (arm64_lib finds
# them there); prints the binary's path. The peer of `tests/mem-usage` on arm64 kernels.
arm64_makedumpfile() {
    echo "$(arm64_unpack "$ARM64_DIR/makedumpfile-root" makedumpfile)/usr/bin/makedumpfile"
}

# arm64_unpack ROOT PKG [EXTRA...]: make ROOT once: PKG and every library package below it
# (the rest, perl, dpkg or debconf, is not needed to run PKG's binary) and the packages
# EXTRA, from Debian bookworm arm64, unpacked (their .debs kept in $ARM64_DIR/debs/).
# Prints ROOT.
arm64_unpack() {
    local root=$1 pkg=$2
    shift 2
    if [ ! -f "$root/.complete" ]; then
        need_cmd dpkg-deb dpkg
        mkdir -p "$ARM64_DIR"
        apt_lock
        apt_suite_opts "" arm64
        local pkgs deb tmp
        pkgs=$(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
            --no-conflicts --no-breaks --no-replaces --no-enhances "$pkg" \
            | grep -E "^($pkg|zlib1g|lib[a-z0-9.+-]*)\$" | sort -u)
        [ -n "$pkgs" ] || die "no arm64 package list for $pkg"
        tmp=$(mktemp -d "$ARM64_DIR/.root.XXXXXX")
        # One apt-get download for all of them (apt reads its lists once, not 30 times).
        log "downloading $pkg with its libraries${*:+ and $*} (arm64)"
        mkdir -p "$tmp/.debs"
        # shellcheck disable=SC2086  # pkgs is a list of package names
        (cd "$tmp/.debs" && apt-get download -q "${APT_OPTS[@]}" "$@" $pkgs \
            >/dev/null 2>.stderr) || { cat "$tmp/.debs/.stderr" >&2; die "apt-get download (arm64) failed"; }
        apt_unlock
        mkdir -p "$ARM64_DIR/debs"
        for deb in "$tmp"/.debs/*.deb; do
            dpkg-deb -x "$deb" "$tmp"
            # A .deb another root already keeps stays as it is.
            mv -n "$deb" "$ARM64_DIR/debs/"
        done
        rm -rf "$tmp/.debs"
        touch "$tmp/.complete"
        rm -rf "$root"
        mv "$tmp" "$root"
    fi
    echo "$root"
}

# elf_is_aarch64 FILE: true if FILE is an AArch64 ELF.
elf_is_aarch64() {
    LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Machine:.*AArch64'
}

# arm64_lib NAME: path of shared library NAME in $ARM64_ROOT, else in the makedumpfile
# root (arm64_makedumpfile) if there is one.
arm64_lib() {
    local d r
    for r in "$ARM64_ROOT" "$ARM64_DIR/makedumpfile-root"; do
        for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
            [ -e "$r/$d/$1" ] && { echo "$r/$d/$1"; return 0; }
        done
    done
    return 1
}

# arm64_install_libs BIN ROOT: copy the loader and the DT_NEEDED closure of the dynamic
# AArch64 binary BIN, from $ARM64_ROOT, into ROOT/lib/aarch64-linux-gnu (a directory the
# loader searches by default) and ROOT/lib/ld-linux-aarch64.so.1.
arm64_install_libs() {
    local bin=$1 root=$2 todo lib path
    arm64_userland >/dev/null
    mkdir -p "$root/lib/aarch64-linux-gnu"
    cp -L "$(arm64_lib ld-linux-aarch64.so.1)" "$root/lib/ld-linux-aarch64.so.1" \
        || die "no ld-linux-aarch64.so.1 in $ARM64_ROOT"
    todo=("$bin")
    while [ ${#todo[@]} -gt 0 ]; do
        path=${todo[0]}
        todo=("${todo[@]:1}")
        for lib in $(LC_ALL=C readelf -dW "$path" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [ "$lib" = ld-linux-aarch64.so.1 ] && continue
            [ -e "$root/lib/aarch64-linux-gnu/$lib" ] && continue
            local src
            src=$(arm64_lib "$lib") || die "arm64 library $lib (needed by ${path##*/}) not found"
            cp -L "$src" "$root/lib/aarch64-linux-gnu/$lib"
            todo+=("$src")
        done
    done
}

# arm64_build_static SRC OUT: cross-compile a static AArch64 C program if OUT is missing
# or older than SRC.
arm64_build_static() {
    local src=$1 out=$2
    if [ -x "$out" ] && [ "$out" -nt "$src" ]; then return 0; fi
    need_cmd aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
    need_file /usr/aarch64-linux-gnu/lib/libc.a libc6-dev-arm64-cross
    log "building arm64 ${out##*/} from ${src#"$REPO_ROOT"/}"
    mkdir -p "$(dirname "$out")"
    aarch64-linux-gnu-gcc -O2 -Wall -Wextra -static -o "$out.tmp.$$" "$src"
    mv "$out.tmp.$$" "$out"
}

# arm64_text_below_stext KDIR: _stext - _text of the kernel image. kexec-tools computes the
# kernel's page_offset from _text in /proc/kallsyms; a kernel without CONFIG_KALLSYMS_ALL
# (Debian 6.1 arm64) does not list _text there, and kexec -p then describes the kernel
# image as a PT_LOAD at vaddr 0xffffffffffffffff of nearly 2^64 bytes, which the capture
# kernel cannot read. The first kernel's init adds the missing line (guest/init-first).
# Debian's System.map is a stub, so the offset comes from the Image's PE/COFF header: the
# EFI stub's .text section starts at _stext, its VirtualAddress counted from _text.
arm64_text_below_stext() {
    python3 - "$1/boot/vmlinuz-$KVER" <<'PY' || die "no .text section in the PE header of vmlinuz-$KVER"
import struct, sys
d = open(sys.argv[1], "rb").read(65536)
pe, = struct.unpack_from("<I", d, 0x3C)
assert d[pe:pe + 4] == b"PE\0\0"
nsect, = struct.unpack_from("<H", d, pe + 6)
optsize, = struct.unpack_from("<H", d, pe + 20)
table = pe + 24 + optsize
for i in range(nsect):
    sect = table + 40 * i
    if d[sect:sect + 8].rstrip(b"\0") == b".text":
        print(hex(struct.unpack_from("<I", d, sect + 12)[0]))
        break
else:
    sys.exit(1)
PY
}
