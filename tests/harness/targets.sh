# shellcheck shell=bash
# Host side of capture-to's dump targets. Sourced after lib.sh and crash.sh.
#
#   disk        an ext4 filesystem on a virtio disk (serial "dumpfs"), read back with debugfs
#   nfs         an NFSv4.1 export of nfs-ganesha (VFS backend) listening on 127.0.0.1,
#               mounted soft in the capture kernel
#   ssh-pipe    `vmsift -F ... | ssh root@host 'cat > DIR/vmcore-incomplete'`, then
#               `ssh root@host mv ... vmcore.flat` when both succeeded (as kdump.sh does)
#   ssh-native  vmsift's own target: ssh://root@host:PORT/DIR/vmcore
#
# The capture kernel reaches this machine's loopback as 10.0.2.2 through QEMU user
# networking (no other address is ever used). The servers run only for one capture, with
# configuration, host key and client key under the scratch directory; the machine's own
# sshd configuration and /root/.ssh are never touched. guest/init-capture does the guest
# side of each target.

HOST_IP=10.0.2.2     # the host's loopback as seen from QEMU user networking
GUEST_IP=10.0.2.15
DUMP_SUBDIR=vmsift   # where the guest writes, on the ext4 disk and in the NFS/ssh directory

_server_pids=()

# free_port: print an unused TCP port on 127.0.0.1 (best effort: checked, not reserved).
free_port() {
    local p tries=0
    while [ $tries -lt 200 ]; do
        p=$((20000 + RANDOM % 20000))
        if [ -z "$(ss -Htln "sport = :$p")" ]; then echo "$p"; return 0; fi
        tries=$((tries + 1))
    done
    die "no free TCP port found"
}

# wait_listen PORT PID WHAT: wait up to 20 s for PID to listen on 127.0.0.1:PORT.
wait_listen() {
    local port=$1 pid=$2 what=$3
    for _ in $(seq 1 80); do
        [ -n "$(ss -Htln "src 127.0.0.1 and sport = :$port")" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    tail -n 20 "$CRASH_WORK/servers/$what.log" >&2 || true
    die "$what did not start listening on 127.0.0.1:$port"
}

# start_sshd: OpenSSH on 127.0.0.1:SSH_PORT, root login with the generated key only.
# REMOTE_PATH is the PATH of the commands the client runs.
start_sshd() {
    local d=$CRASH_WORK/servers
    need_file /usr/sbin/sshd openssh-server
    need_cmd ssh-keygen openssh-client
    ssh-keygen -q -t ed25519 -N '' -C vmsift-e2e-host -f "$d/host_key"
    ssh-keygen -q -t ed25519 -N '' -C vmsift-e2e-client -f "$d/client_key"
    cp "$d/client_key.pub" "$d/authorized_keys"
    SSH_PORT=$(free_port)
    cat > "$d/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
# A capture kernel that went silent: drop the session within ~15 s.
ClientAliveInterval 5
ClientAliveCountMax 3
SetEnv PATH=$REMOTE_PATH
LogLevel VERBOSE
EOF
    # sshd wants its privilege separation directory (the package makes it at service start).
    mkdir -p /run/sshd
    /usr/sbin/sshd -t -f "$d/sshd_config" || die "sshd rejects $d/sshd_config"
    /usr/sbin/sshd -D -e -f "$d/sshd_config" 2> "$d/sshd.log" &
    _server_pids+=($!)
    wait_listen "$SSH_PORT" $! sshd
    printf '[%s]:%s %s\n' "$HOST_IP" "$SSH_PORT" "$(cut -d' ' -f1,2 "$d/host_key.pub")" \
        > "$d/known_hosts"
    log "sshd on 127.0.0.1:$SSH_PORT (guest: $HOST_IP:$SSH_PORT), PATH=$REMOTE_PATH"
}

# start_ganesha: NFSv4-only nfs-ganesha on 127.0.0.1:NFS_PORT exporting $TARGET_EXPORT
# as /dump. NFSv4 only, because for NFSv3 ganesha must register with rpcbind.
start_ganesha() {
    local d=$CRASH_WORK/servers
    need_file /usr/bin/ganesha.nfsd nfs-ganesha
    need_file /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so nfs-ganesha-vfs
    NFS_PORT=$(free_port)
    mkdir -p "$d/recovery"
    cat > "$d/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    Bind_addr = 127.0.0.1;
    NFS_Port = $NFS_PORT;
    Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 {
    Graceless = true;   # no 90 s grace period before the first write
    # The Linux NFSv4 client waits as long as the lease for a TCP (re)connect: with the
    # 60 s default, a cut network fails the first write only after ~63 s.
    Lease_Lifetime = 10;
    RecoveryRoot = "$d/recovery";
}
EXPORT {
    Export_Id = 1;
    Path = "$TARGET_EXPORT";
    Pseudo = /dump;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    Transports = TCP;
    Protocols = 4;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF
    ganesha.nfsd -F -f "$d/ganesha.conf" -L "$d/ganesha.log" -p "$d/ganesha.pid" &
    _server_pids+=($!)
    wait_listen "$NFS_PORT" $! ganesha
    log "nfs-ganesha on 127.0.0.1:$NFS_PORT exporting ${TARGET_EXPORT#"$REPO_ROOT"/} as /dump"
}

# stop_servers: end the servers this run started (by pid), waiting up to 10 s each.
stop_servers() {
    local pid i
    for pid in ${_server_pids[@]+"${_server_pids[@]}"}; do
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    _server_pids=()
}

# The capture initramfs for the ssh targets: the system's ssh client (dynamic: with its
# libraries), the client key, known_hosts with the test server's key, a passwd for root.
install_ssh_client() {
    local root=$1 d=$CRASH_WORK/servers
    install_binary "$(command -v ssh)" "$root" /usr/bin/ssh
    mkdir -p "$root/etc/ssh" "$root/root"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
    echo 'root:x:0:' > "$root/etc/group"
    install -m 600 "$d/client_key" "$root/etc/kdump_key"
    install -m 644 "$d/known_hosts" "$root/etc/kdump_known_hosts"
}

# target_setup TARGET: servers, modules, QEMU arguments and guest settings for TARGET.
target_setup() {
    local target=$1
    TARGET_EXPORT=$CRASH_WORK/export
    mkdir -p "$CRASH_WORK/servers" "$TARGET_EXPORT"
    CRASH_TARGET=$target
    CRASH_CAPTURE_CONF+=("HOST_IP=$HOST_IP" "GUEST_IP=$GUEST_IP" "DUMP_SUBDIR=$DUMP_SUBDIR")
    case $target in
    disk)
        need_cmd mkfs.ext4 e2fsprogs
        need_cmd debugfs e2fsprogs
        # Room for an unfiltered dump; the file is sparse.
        truncate -s "$((CRASH_MEM_MB + 256))M" "$CRASH_WORK/dumpfs.raw"
        mkfs.ext4 -q -F -L dumpfs "$CRASH_WORK/dumpfs.raw"
        CAPTURE_MODULES+=(crc32c_generic ext4)
        CRASH_QEMU_ARGS+=(
            -drive "file=$CRASH_WORK/dumpfs.raw,if=none,id=dumpfs,format=raw,cache=unsafe"
            -device "virtio-blk-pci,drive=dumpfs,serial=dumpfs"
        )
        return 0
        ;;
    nfs)
        start_ganesha
        CAPTURE_MODULES+=(virtio_net nfsv4)
        # A dead server must end the collector's writes with an error, not hang the
        # capture kernel (a hard mount never gives up): softerr (ETIMEDOUT, not EIO) with
        # a 6 s major timeout, and sync, because with cached writes the errors reach
        # neither write() nor the writer until the final fsync, while the dump crawls on
        # at the pace of the timeouts (seen: 0.7 MB/s for minutes).
        CRASH_CAPTURE_CONF+=("NFS_PORT=$NFS_PORT" "NFS_OPTS=${NFS_OPTS:-softerr,timeo=10,retrans=2,sync}")
        ;;
    ssh-pipe | ssh-native)
        start_sshd
        CAPTURE_MODULES+=(virtio_net)
        CRASH_CAPTURE_CONF+=("SSH_PORT=$SSH_PORT" "REMOTE_DIR=$TARGET_EXPORT/$DUMP_SUBDIR")
        CRASH_CAPTURE_HOOK=install_ssh_client
        ;;
    *) die "unknown target '$target' (disk, nfs, ssh-pipe, ssh-native)" ;;
    esac
    CRASH_QEMU_ARGS+=(
        -netdev "user,id=net0,ipv6=off,net=10.0.2.0/24,host=$HOST_IP"
        -device "virtio-net-pci,netdev=net0"
    )
}

# target_fetch OUT: stop the servers and make OUT (a new directory) hold what the target
# received in DUMP_SUBDIR: read out of the ext4 image, or moved from the NFS/ssh directory.
target_fetch() {
    local out=$1 img=$CRASH_WORK/dumpfs.raw
    stop_servers
    if [ "$CRASH_TARGET" = disk ]; then
        # The filesystem must be clean after the capture kernel unmounted it.
        e2fsck -fn "$img" > "$CRASH_WORK/e2fsck.log" 2>&1 \
            || { cat "$CRASH_WORK/e2fsck.log" >&2; log "warning: e2fsck finds the dump filesystem damaged"; }
        mkdir -p "$CRASH_WORK/fetched"
        if debugfs -R "stat /$DUMP_SUBDIR" "$img" > /dev/null 2>&1; then
            debugfs -R "rdump /$DUMP_SUBDIR $CRASH_WORK/fetched" "$img" 2> "$CRASH_WORK/debugfs.log" \
                || { cat "$CRASH_WORK/debugfs.log" >&2; die "debugfs could not read the dump back"; }
        fi
        TARGET_EXPORT=$CRASH_WORK/fetched
    fi
    if [ -d "$TARGET_EXPORT/$DUMP_SUBDIR" ]; then
        mv "$TARGET_EXPORT/$DUMP_SUBDIR" "$out"
    else
        mkdir -p "$out"
    fi
}
