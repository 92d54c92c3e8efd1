# shellcheck shell=bash
# Crash a Debian kernel in QEMU and capture its /proc/vmcore. Sourced by make-vmcore and
# capture-with (after lib.sh); not executed directly.
#
# Inputs (globals, set by the caller):
#   KVER CRASH_MEM_MB CRASH_CRASHKERNEL CRASH_WORKLOAD_MB CRASH_CPU CRASH_THP CRASH_COMPRESSIBLE
#   CRASH_RICH
#                       (crash_defaults and crash_option set them from the command line)
#   CRASH_COLLECTOR     optional: collector binary to run in the capture kernel
#   CRASH_ARGS          array: collector options (the guest adds the vmcore and the target)
#   CRASH_TARGET        where the collector writes (guest/init-capture): "flat" (default:
#                       `-F` stream onto a raw disk), or disk, nfs, ssh-pipe, ssh-native
#                       set up by the caller through the hooks below (capture-to)
#   CRASH_WORK          scratch directory (created by the caller, deleted by the caller)
# Optional hooks for the caller:
#   CAPTURE_MODULES+=(...)      more kernel modules for the capture initramfs
#   CRASH_CAPTURE_CONF=(K=V..)  more settings for the capture kernel's /etc/harness.conf
#   CRASH_QEMU_ARGS=(...)       more QEMU arguments (disks, network)
#   CRASH_CAPTURE_HOOK=FUNC     called as FUNC ROOT to add files to the capture initramfs
#   CRASH_TICK_HOOK=FUNC        called about once a second while QEMU runs
# Outputs:
#   $CRASH_WORK/vmcore.raw   disk with the raw /proc/vmcore copy at offset 0
#   $CRASH_WORK/flat.raw     (target flat) disk with the collector's stdout at offset 0
#   $CRASH_WORK/console.log  serial console of both kernels (CRs removed)
#   $CRASH_WORK/monitor.sock QEMU's human monitor while it runs (qemu_monitor CMD)
#   marker VALUE functions below read results from the console log.

# shellcheck source=arm64.sh
source "$HARNESS_DIR/arm64.sh"

QEMU_TIMEOUT=${HARNESS_QEMU_TIMEOUT:-540}   # seconds; the whole crash+capture, <= 9 min
PAGE_CACHE_RANDOM_MB=16
PAGE_CACHE_TEXT_MB=16

# Modules the capture kernel needs to see a virtio-blk disk (plus their dependencies);
# on arm64 the disks sit on virtio-mmio, and virtio_pci is replaced by virtio_mmio.
CAPTURE_MODULES=(virtio_pci virtio_blk)
CRASH_TARGET=flat
CRASH_CAPTURE_CONF=() CRASH_QEMU_ARGS=() CRASH_CAPTURE_HOOK="" CRASH_TICK_HOOK=""

# The crash options shared by make-vmcore, capture-with and capture-to.
crash_defaults() {
    CRASH_MEM_MB=640 CRASH_CRASHKERNEL=192M CRASH_WORKLOAD_MB=96 CRASH_CPU=max
    CRASH_THP=0 CRASH_COMPRESSIBLE=0 CRASH_RICH=0
}

# crash_option ARG [VALUE]: take one crash option; sets CRASH_SHIFT to the number of
# arguments used (0: not a crash option).
crash_option() {
    CRASH_SHIFT=2
    case $1 in
    --mem) CRASH_MEM_MB=${2:?--mem wants MiB} ;;
    --crashkernel) CRASH_CRASHKERNEL=${2:?--crashkernel wants a size} ;;
    --workload) CRASH_WORKLOAD_MB=${2:?--workload wants MiB} ;;
    --cpu) CRASH_CPU=${2:?--cpu wants max, qemu64 or (arm64) max-nolpa2} ;;
    --thp) CRASH_THP=1 CRASH_SHIFT=1 ;;
    --compressible) CRASH_COMPRESSIBLE=1 CRASH_SHIFT=1 ;;
    --rich) CRASH_RICH=1 CRASH_SHIFT=1 ;;
    *) CRASH_SHIFT=0 ;;
    esac
}

crash_check_options() {
    [[ $CRASH_MEM_MB =~ ^[0-9]+$ ]] || die "--mem wants MiB"
    [[ $CRASH_WORKLOAD_MB =~ ^[0-9]+$ ]] || die "--workload wants MiB"
    [[ $CRASH_CRASHKERNEL =~ ^[0-9]+[MG]$ ]] || die "--crashkernel wants e.g. 192M"
    if [ "$(kver_arch "$KVER")" = arm64 ]; then
        arm64_qemu_cpu "$CRASH_CPU" >/dev/null
        [ "$CRASH_RICH" = 0 ] || die "--rich is not available for arm64 kernels"
    else
        case $CRASH_CPU in max | qemu64) ;; *) die "--cpu must be max or qemu64" ;; esac
    fi
    if [ "$CRASH_RICH" = 1 ]; then
        [ $((CRASH_MEM_MB % 2)) = 0 ] || die "--rich splits --mem over two NUMA nodes: use an even size"
        [ "$CRASH_MEM_MB" -ge 1024 ] || die "--rich wants --mem 1024 or more"
    fi
}

# The rich guest (--rich): a hugetlb pool of RICH_HUGEPAGES 2 MiB pages with the vmemmap
# optimisation, RICH_HUGE_MAPPED of them mapped and dirtied by tests/harness/rich.c, which
# also poisons RICH_POISON anonymous pages (MADV_HWPOISON); a virtio-balloon inflated by
# RICH_BALLOON_MB through the QEMU monitor; two NUMA nodes (one CPU and half the memory
# each); and block-device page cache with buffer heads from a raw virtio disk ("bdev").
RICH_HUGEPAGES=32 RICH_HUGE_MAPPED=16 RICH_POISON=8 RICH_BALLOON_MB=64 RICH_BDEV_MB=32
RICH_MODULES=(virtio_balloon virtio_blk)

rich_bin() {
    build_static "$HARNESS_DIR/rich.c" "$CACHE_DIR/rich"
    echo "$CACHE_DIR/rich"
}

# rich_tick: inflate the balloon once the guest asks for it (HARNESS: balloon-wanted).
_rich_ballooned=0
rich_tick() {
    [ "$_rich_ballooned" = 0 ] || return 0
    tr -d '\r' < "$CRASH_WORK/serial.log" 2>/dev/null | grep -aq '^HARNESS: balloon-wanted' || return 0
    _rich_ballooned=1
    log "  balloon: $(qemu_monitor "balloon $((CRASH_MEM_MB - RICH_BALLOON_MB))" | tr -d '\n' | cut -c1-80)"
}

# build_static SRC OUT: compile a static C program if OUT is missing or older than SRC.
build_static() {
    local src=$1 out=$2
    if [ -x "$out" ] && [ "$out" -nt "$src" ]; then return 0; fi
    need_cmd gcc gcc
    need_file /usr/lib/x86_64-linux-gnu/libc.a libc6-dev
    log "building ${out##*/} from ${src#"$REPO_ROOT"/}"
    mkdir -p "$(dirname "$out")"
    gcc -O2 -Wall -Wextra -static -o "$out.tmp.$$" "$src"
    mv "$out.tmp.$$" "$out"
}

# workload_bin [ARCH]: the static workload for ARCH (amd64 by default).
workload_bin() {
    if [ "${1:-amd64}" = arm64 ]; then
        arm64_build_static "$HARNESS_DIR/workload.c" "$ARM64_DIR/workload"
        echo "$ARM64_DIR/workload"
        return
    fi
    build_static "$HARNESS_DIR/workload.c" "$CACHE_DIR/workload"
    echo "$CACHE_DIR/workload"
}

# install_binary BIN ROOT DEST: copy BIN to ROOT/DEST; if it is dynamically linked, also
# copy its loader and libraries to the same absolute paths under ROOT (an AArch64 binary's
# from the arm64 userland, arm64.sh).
install_binary() {
    local bin=$1 root=$2 dest=$3 lib
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$bin" "$root/$dest"
    chmod 755 "$root/$dest"
    file_is_static "$bin" && return 0
    if elf_is_aarch64 "$bin"; then
        arm64_install_libs "$bin" "$root"
        return 0
    fi
    log "note: ${bin##*/} is dynamically linked; copying its libraries into the initramfs"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
}

# module_file KDIR NAME: path of NAME.ko[.xz|.zst|.gz] in the kernel tree ('-' == '_').
module_file() {
    local mods=$1/lib/modules/$KVER name=$2
    find "$mods" -name "${name}.ko*" -o -name "${name//_/-}.ko*" | head -n1
}

# module_cat FILE: decompressed module on stdout.
module_cat() {
    case $1 in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) need_cmd zstd zstd; zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
    esac
}

# stage_module KDIR NAME DEST: copy NAME and its dependencies (from .modinfo "depends=")
# into DEST, appending them to DEST/load.order dependencies first. Built-in modules and
# modules already staged are skipped.
stage_module() {
    local kdir=$1 name=${2//-/_} dest=$3 file deps dep
    grep -qx "$name" "$dest/load.order" 2>/dev/null && return 0
    if grep -qE "/${name}\.ko$" "$kdir/lib/modules/$KVER/modules.builtin" 2>/dev/null; then
        return 0
    fi
    file=$(module_file "$kdir" "$name")
    [ -n "$file" ] || die "kernel module $name not found in $kdir"
    module_cat "$file" > "$dest/$name.ko"
    deps=$(tr '\0' '\n' < "$dest/$name.ko" | sed -n 's/^depends=//p' | head -n1)
    for dep in ${deps//,/ }; do
        stage_module "$kdir" "$dep" "$dest"
    done
    echo "$name" >> "$dest/load.order"
}

# write_conf FILE NAME=VALUE...: shell-sourceable config for the guest init.
write_conf() {
    local file=$1 kv
    shift
    for kv in "$@"; do
        printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
    done > "$file"
}

# make_cpio DIR OUT: gzip'd newc archive of DIR, owned by root.
make_cpio() {
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc -R 0:0 --quiet) \
        | gzip -6 > "$2"
}

# build_images KDIR: build $CRASH_WORK/capture.img and $CRASH_WORK/first.img.
build_images() {
    local kdir=$1 bb root workload arch console=ttyS0 kexec m
    need_cmd cpio cpio
    need_cmd xz xz-utils
    need_cmd gzip gzip
    arch=$(kver_arch "$KVER")
    if [ "$arch" = arm64 ]; then
        bb=$(arm64_userland)/bin/busybox
        kexec=$ARM64_ROOT/sbin/kexec
        console=ttyAMA0
        local -a mods=()
        for m in "${CAPTURE_MODULES[@]}"; do
            [ "$m" = virtio_pci ] && m=virtio_mmio
            mods+=("$m")
        done
        CAPTURE_MODULES=("${mods[@]}")
    else
        bb=$(busybox_static)
        kexec=$(command -v kexec)
    fi
    workload=$(workload_bin "$arch")

    # Capture kernel's initramfs.
    root=$CRASH_WORK/capture-root
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules}
    cp "$bb" "$root/bin/busybox"
    cp "$HARNESS_DIR/guest/init-capture" "$root/init"
    chmod 755 "$root/init"
    : > "$root/lib/modules/load.order"
    local m
    for m in "${CAPTURE_MODULES[@]}"; do stage_module "$kdir" "$m" "$root/lib/modules"; done
    if [ -n "${CRASH_COLLECTOR:-}" ]; then
        install_binary "$CRASH_COLLECTOR" "$root" /bin/vmsift
        ln -s /bin/vmsift "$root/sbin/makedumpfile"
        if [ ${#CRASH_ARGS[@]} -gt 0 ]; then
            printf '%s\n' "${CRASH_ARGS[@]}" > "$root/etc/collector.args"
        else
            : > "$root/etc/collector.args"
        fi
        write_conf "$root/etc/harness.conf" MODE=collect "TARGET=$CRASH_TARGET" \
            ${CRASH_CAPTURE_CONF[@]+"${CRASH_CAPTURE_CONF[@]}"}
    else
        write_conf "$root/etc/harness.conf" MODE=copy
    fi
    [ -z "$CRASH_CAPTURE_HOOK" ] || "$CRASH_CAPTURE_HOOK" "$root"
    make_cpio "$root" "$CRASH_WORK/capture.img"

    # First kernel's initramfs: kexec (+ libraries), workload, the capture kernel and image.
    root=$CRASH_WORK/first-root
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,boot}
    cp "$bb" "$root/bin/busybox"
    cp "$HARNESS_DIR/guest/init-first" "$root/init"
    chmod 755 "$root/init"
    install_binary "$kexec" "$root" /sbin/kexec
    cp "$workload" "$root/bin/workload"
    if [ "$CRASH_RICH" = 1 ]; then
        cp "$(rich_bin)" "$root/bin/rich"
        mkdir -p "$root/lib/modules"
        : > "$root/lib/modules/load.order"
        for m in "${RICH_MODULES[@]}"; do stage_module "$kdir" "$m" "$root/lib/modules"; done
    fi
    cp "$kdir/boot/vmlinuz-$KVER" "$root/boot/vmlinuz"
    cp "$CRASH_WORK/capture.img" "$root/boot/capture.img"
    # Optional extras for the first kernel: CRASH_FIRST_BINS="NAME=PATH ..." installs each
    # binary as /bin/NAME; CRASH_BEFORE is a script init-first runs just before the crash.
    local spec
    for spec in ${CRASH_FIRST_BINS:-}; do
        install_binary "${spec#*=}" "$root" "/bin/${spec%%=*}"
    done
    # CRASH_FIRST_TREE=DIR: DIR's files are copied into the first kernel's root as they are.
    if [ -n "${CRASH_FIRST_TREE:-}" ]; then
        cp -a "$CRASH_FIRST_TREE/." "$root/"
    fi
    if [ -n "${CRASH_BEFORE:-}" ]; then
        cp "$CRASH_BEFORE" "$root/etc/before-crash"
        chmod 755 "$root/etc/before-crash"
    fi
    local wflags=""
    [ "$CRASH_THP" = 1 ] && wflags+=" -t"
    [ "$CRASH_COMPRESSIBLE" = 1 ] && wflags+=" -c"
    write_conf "$root/etc/harness.conf" \
        "WORKLOAD_MB=$CRASH_WORKLOAD_MB" \
        "WORKLOAD_FLAGS=${wflags# }" \
        "CACHE_RANDOM_MB=$PAGE_CACHE_RANDOM_MB" \
        "CACHE_TEXT_MB=$PAGE_CACHE_TEXT_MB" \
        "RICH=$CRASH_RICH" "RICH_HUGE_MAPPED=$RICH_HUGE_MAPPED" "RICH_POISON=$RICH_POISON" \
        "RICH_BALLOON_MB=$RICH_BALLOON_MB" \
        "CAPTURE_CMDLINE=console=$console nr_cpus=1 irqpoll reset_devices panic=-1 loglevel=4"
    if [ "$arch" = arm64 ]; then
        local below
        below=$(arm64_text_below_stext "$kdir")
        # -i: no SHA-256 check of the loaded segments in kexec's purgatory, which runs with
        # the MMU off and takes about two minutes under TCG.
        printf '%s\n' "TEXT_BELOW_STEXT=$below" "KEXEC_OPTS=-i" >> "$root/etc/harness.conf"
    fi
    make_cpio "$root" "$CRASH_WORK/first.img"
    log "initramfs: first.img $(du -h "$CRASH_WORK/first.img" | cut -f1), capture.img $(du -h "$CRASH_WORK/capture.img" | cut -f1)"
}

# marker KEY: value of the last "HARNESS: KEY..." line in the console log (rest of line).
marker() {
    # Anywhere in a line: the collector's progress line (no newline on a serial console
    # that redraws it) can come between the guest's newline and its marker.
    { grep -ao "HARNESS: $1\b.*" "$CRASH_WORK/console.log" || true; } | tail -n1 \
        | sed "s/^HARNESS: $1[ =]\{0,1\}//"
}

# field LINE KEY: value of KEY=VALUE inside LINE.
field() {
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1
}

# Print the new "HARNESS:" progress markers since the last call.
_progress_seen=0
report_progress() {
    local lines n
    [ -f "$CRASH_WORK/serial.log" ] || return 0
    lines=$(tr -d '\r' < "$CRASH_WORK/serial.log" | grep -a -o '^HARNESS: [a-z-]*' || true)
    [ -n "$lines" ] || return 0
    n=$(wc -l <<<"$lines")
    if [ "$n" -gt "$_progress_seen" ]; then
        sed -n "$((_progress_seen + 1)),\$p" <<<"$lines" | while read -r _ step; do
            log "  [$((SECONDS - _qemu_start))s] $step"
        done
        _progress_seen=$n
    fi
}

# run_crash: boot, crash, capture. Dies with the console tail if no capture happened.
run_crash() {
    local kdir qemu_rc=0 disk_mb qemu blk console
    local -a machine
    need_cmd timeout coreutils
    if [ "$(kver_arch "$KVER")" = arm64 ]; then
        need_cmd qemu-system-aarch64 qemu-system-arm
        # QEMU's device tree, no firmware: Debian's arm64 vmlinuz is a plain Image.
        qemu=qemu-system-aarch64 blk=virtio-blk-device console=ttyAMA0
        machine=(-machine virt -cpu "$(arm64_qemu_cpu "$CRASH_CPU")")
    else
        need_cmd qemu-system-x86_64 qemu-system-x86
        need_cmd kexec kexec-tools
        qemu=qemu-system-x86_64 blk=virtio-blk-pci console=ttyS0
        machine=(-machine pc -cpu "$CRASH_CPU")
    fi
    kdir=$("$HARNESS_DIR/fetch-kernel" "$KVER")
    build_images "$kdir"

    # Disks are sparse files; the vmcore is smaller than guest RAM plus ELF headers.
    disk_mb=$((CRASH_MEM_MB + 64))
    truncate -s "${disk_mb}M" "$CRASH_WORK/vmcore.raw"
    local -a disks=(
        -drive "file=$CRASH_WORK/vmcore.raw,if=none,id=vmcore,format=raw,cache=unsafe"
        -device "$blk,drive=vmcore,serial=vmcore"
    )
    if [ -n "${CRASH_COLLECTOR:-}" ] && [ "$CRASH_TARGET" = flat ]; then
        # A flattened stream is at most the input plus 16 bytes per record and a header.
        truncate -s "$((disk_mb + 64))M" "$CRASH_WORK/flat.raw"
        disks+=(
            -drive "file=$CRASH_WORK/flat.raw,if=none,id=flat,format=raw,cache=unsafe"
            -device "$blk,drive=flat,serial=flat"
        )
    fi
    local append="console=$console crashkernel=$CRASH_CRASHKERNEL panic=-1 loglevel=4"
    [ "$CRASH_THP" = 1 ] && append+=" transparent_hugepage=always"
    local -a numa=()
    if [ "$CRASH_RICH" = 1 ]; then
        append+=" hugetlb_free_vmemmap=on hugepages=$RICH_HUGEPAGES"
        local half=$((CRASH_MEM_MB / 2))
        truncate -s "${RICH_BDEV_MB}M" "$CRASH_WORK/bdev.raw"
        numa=(
            -object "memory-backend-ram,id=mem0,size=${half}M"
            -object "memory-backend-ram,id=mem1,size=${half}M"
            -numa "node,nodeid=0,cpus=0,memdev=mem0"
            -numa "node,nodeid=1,cpus=1,memdev=mem1"
            -device virtio-balloon-pci,id=balloon0
            -drive "file=$CRASH_WORK/bdev.raw,if=none,id=bdev,format=raw,cache=unsafe"
            -device "virtio-blk-pci,drive=bdev,serial=bdev"
        )
    fi

    # Multi-threaded TCG now and then kills a guest kernel while it patches its own code
    # (seen: an oops in hrtimer code during early boot). A first kernel that dies before
    # it reached the planned crash is such a flake, not a result: boot it again, twice at
    # most. Anything after the planned crash counts as it is.
    local attempt
    for attempt in 1 2 3; do
        [ "$attempt" -gt 1 ] && truncate -s 0 "$CRASH_WORK/serial.log"
        log "booting $KVER in QEMU (TCG, -cpu $CRASH_CPU, ${CRASH_MEM_MB} MiB, crashkernel=$CRASH_CRASHKERNEL, timeout ${QEMU_TIMEOUT}s)"
        _qemu_start=$SECONDS
        _progress_seen=0 _rich_ballooned=0
        qemu_rc=0
        timeout --kill-after=10 "$QEMU_TIMEOUT" "$qemu" \
            -nodefaults -no-user-config -display none -no-reboot \
            -accel tcg,thread=multi "${machine[@]}" -smp 2 -m "$CRASH_MEM_MB" \
            -kernel "$kdir/boot/vmlinuz-$KVER" -initrd "$CRASH_WORK/first.img" -append "$append" \
            -serial "file:$CRASH_WORK/serial.log" \
            -monitor "unix:$CRASH_WORK/monitor.sock,server=on,wait=off" \
            "${disks[@]}" ${numa[@]+"${numa[@]}"} ${CRASH_QEMU_ARGS[@]+"${CRASH_QEMU_ARGS[@]}"} \
            > "$CRASH_WORK/qemu.out" 2>&1 &
        _qemu_pid=$!
        while kill -0 "$_qemu_pid" 2>/dev/null; do
            sleep 1
            report_progress
            [ "$CRASH_RICH" = 0 ] || rich_tick
            [ -z "$CRASH_TICK_HOOK" ] || "$CRASH_TICK_HOOK"
        done
        wait "$_qemu_pid" || qemu_rc=$?
        _qemu_pid=
        report_progress
        tr -d '\r' < "$CRASH_WORK/serial.log" > "$CRASH_WORK/console.log" 2>/dev/null || true
        CRASH_SECONDS=$((SECONDS - _qemu_start))
        grep -aq '^HARNESS: capture-done' "$CRASH_WORK/console.log" && break
        if [ "$attempt" -lt 3 ] && ! grep -aq '^HARNESS: panicking' "$CRASH_WORK/console.log"; then
            log "the first kernel died before the planned crash (attempt $attempt; last line: $(tail -n 1 "$CRASH_WORK/console.log" | cut -c1-100)); booting again"
            continue
        fi
        local why="QEMU exited with status $qemu_rc before the capture finished"
        [ "$qemu_rc" = 124 ] && why="QEMU timed out after ${QEMU_TIMEOUT}s"
        {
            echo "---- qemu output ----"
            tail -n 20 "$CRASH_WORK/qemu.out"
            echo "---- last 40 console lines ----"
            tail -n 40 "$CRASH_WORK/console.log"
            echo "----"
        } >&2
        die "$why (kernel $KVER); no vmcore captured"
    done
    log "capture finished in ${CRASH_SECONDS}s"
}

# qemu_monitor CMD: run one human-monitor command in the running QEMU (e.g.
# `set_link net0 off`); prints the monitor's answer.
qemu_monitor() {
    python3 - "$CRASH_WORK/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(2)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
try:
    print(s.recv(65536).decode(errors="replace").replace("\r", ""), end="")
except socket.timeout:
    pass
PY
}

# Kill QEMU if the caller exits early (Ctrl-C, error).
crash_cleanup() {
    if [ -n "${_qemu_pid:-}" ]; then kill "$_qemu_pid" 2>/dev/null || true; fi
}

# Remove the scratch directory, unless HARNESS_KEEP_WORK=1 (then say where it is).
cleanup_work() {
    [ -n "${CRASH_WORK:-}" ] && [ -d "$CRASH_WORK" ] || return 0
    if [ "${HARNESS_KEEP_WORK:-0}" = 1 ]; then
        log "kept scratch directory $CRASH_WORK"
    else
        rm -rf "$CRASH_WORK"
    fi
}

# finalize_vmcore OUT: check the copy and move $CRASH_WORK/vmcore.raw, truncated to the
# guest's /proc/vmcore size, to OUT (atomically).
finalize_vmcore() {
    local out=$1 size copy
    size=$(marker vmcore-size)
    [[ $size =~ ^[0-9]+$ ]] || die "no vmcore size in the console log"
    copy=$(marker copy-result)
    [ "$(field "$copy" rc)" = 0 ] || die "raw copy of /proc/vmcore failed in the capture kernel ($copy)"
    truncate -s "$size" "$CRASH_WORK/vmcore.raw"
    check_vmcore "$CRASH_WORK/vmcore.raw"
    mv "$CRASH_WORK/vmcore.raw" "$out.tmp"
    mv "$out.tmp" "$out"
}

# check_vmcore FILE: ELF magic and a VMCOREINFO note for $KVER near the start.
check_vmcore() {
    local magic
    magic=$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')
    [ "$magic" = 7f454c46 ] || die "captured vmcore has no ELF magic ($magic)"
    # grep -c reads all its input: `grep -q` would SIGPIPE `head` and trip pipefail.
    [ "$(head -c 1048576 "$1" | grep -acF "OSRELEASE=$KVER")" -gt 0 ] \
        || die "captured vmcore has no VMCOREINFO OSRELEASE=$KVER"
}
