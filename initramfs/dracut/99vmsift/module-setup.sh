#!/bin/bash
# dracut module "vmsift": puts the static vmsift binary into the image as /usr/bin/vmsift
# and makes /usr/sbin/makedumpfile (/sbin/makedumpfile on merged /usr) a symlink to it.
#
# For Fedora/RHEL kdump-utils, opt in with one line in /etc/kdump.conf:
#     dracut_args --add vmsift
# (editing kdump.conf also makes kdumpctl rebuild the kdump image). The capture script
# (99kdumpbase's kdump.sh) runs the core_collector by its name, "makedumpfile", from PATH,
# and only adds -F (ssh, raw targets) and --num-threads when that name contains
# "makedumpfile": so vmsift must answer to that name, not to its own.
#
# Coexisting with 99kdumpbase: its install() does `inst /sbin/makedumpfile`, which copies
# the host's makedumpfile (plus its shared libraries) into the image, and dracut's `inst`
# silently skips any path that already exists in the image. dracut runs install() of the
# chosen modules in the order of their directory names, and "99kdumpbase" sorts before
# "99vmsift", so ours runs last and overwrites the name with `ln -sf`: ours wins. If the
# host's /usr/sbin/makedumpfile is already a symlink to vmsift (scripts/install --prefix /usr
# --makedumpfile-name), 99kdumpbase copies that link and its target, and the result matches.
# dracut resolves shared libraries once, at the end, for the executables then in the image,
# so the distribution makedumpfile's libraries (lzo, snappy, zstd, elfutils...) stay out
# unless something else needs them: the image gets smaller.
#
# Needs nothing else in the image: vmsift is statically linked.

# Where scripts/install (or a package) may have put the binary on the host. dracut
# resets PATH to /usr/sbin:/usr/bin, so /usr/local has to be looked at explicitly.
vmsift_host_binary() {
    local p
    for p in /usr/bin/vmsift /usr/sbin/vmsift /usr/local/bin/vmsift /usr/local/sbin/vmsift; do
        if [[ -x ${dracutsysrootdir-}$p ]]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# 255: only when asked for (--add vmsift, add_dracutmodules, -m), never in every initramfs
# the host builds. 1 (dracut then fails if the module was asked for): no binary to install.
check() {
    if ! vmsift_host_binary > /dev/null; then
        dinfo "dracut module 'vmsift' will not be installed: no vmsift in" \
            "/usr/bin, /usr/sbin, /usr/local/bin or /usr/local/sbin"
        return 1
    fi
    return 255
}

depends() {
    return 0
}

install() {
    local src d
    src=$(vmsift_host_binary) || return 1
    inst_binary "$src" /usr/bin/vmsift || return 1

    # The name kdump-utils calls. Also replace a copy in a separate /sbin, /bin or /usr/bin
    # (an image without merged /usr), so that no PATH order can find the distribution's.
    mkdir -p "${initdir:?}/usr/sbin"
    for d in usr/sbin sbin usr/bin bin; do
        [[ -L $initdir/$d ]] && continue
        if [[ $d == usr/sbin || -e $initdir/$d/makedumpfile || -L $initdir/$d/makedumpfile ]]; then
            ln_r /usr/bin/vmsift "/$d/makedumpfile" || return 1
        fi
    done
}
