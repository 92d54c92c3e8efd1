# shellcheck shell=bash disable=SC2154
# Shared by the shell benches (sourced): needs $vmcore, $out and $warm set.

# Before a timed run: the vmcore back into the page cache (a machine may reclaim cold page
# cache between runs; this one runs DAMON's pageout), and with -w the output's memory
# warmed by writing and deleting a file as large as the last dump of these flags (before
# the first, half the vmcore). On a VM whose host takes back freed guest memory, the first
# touch of fresh tmpfs pages otherwise costs seconds, varying from run to run.
prepare_run() {
    cat "$vmcore" > /dev/null
    if [ -n "$warm" ]; then
        head -c "$(cat "$out/last" 2>/dev/null || echo $(($(stat -c %s "$vmcore") / 2)))" \
            /dev/zero > "$out/warm"
        rm -f "$out/warm"
    fi
}

# After a timed run: remember its dump's size for the next warm-up.
note_dump_size() { stat -c %s "$1" > "$out/last"; }

# The median of the numbers on stdin, one a line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

machine() {
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
}
