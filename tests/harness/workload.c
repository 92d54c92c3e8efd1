/*
 * workload: dirty anonymous memory so a crash dump contains user pages of every kind,
 * then stay alive until the machine panics.
 *
 *   workload [-m MIB] [-c] [-t | -T] [-r READY_FILE]
 *
 *   -m MIB   amount of anonymous memory to dirty (default 96)
 *   -c       mostly compressible: nearly all non-zero pages are patterned, 1 in 64 random
 *   -t       THP-friendly: 2 MiB-aligned mapping with madvise(MADV_HUGEPAGE)
 *   -T       forbid THP: madvise(MADV_NOHUGEPAGE), every page is a 4 KiB page
 *   -r FILE  readiness file, created once everything is dirtied (default /tmp/workload.ready);
 *            it holds "pid=... addr=0x... bytes=... thp=... compressible=..."
 *
 * Without -t/-T the memory comes from malloc() and the kernel's THP policy decides.
 *
 * Page kinds, by page index `pg` within the region:
 *   zero      every byte 0 (a written page, not the shared zero page)
 *   pattern   64-bit words (pg * GOLDEN) ^ (word_index >> 5): compressible, distinct per page
 *   random    xorshift64 stream: incompressible
 * Default mix per 8 pages: 2 zero, 2 pattern, 4 random. With -c: 2 zero, rest pattern
 * except pages with pg % 64 == 5, which stay random.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define HPAGE (2UL << 20)
#define GOLDEN 0x9e3779b97f4a7c15ULL

enum kind { ZERO, PATTERN, RANDOM };

static enum kind page_kind(size_t pg, int compressible)
{
    size_t slot = pg % 8;
    if (slot < 2)
        return ZERO;
    if (compressible)
        return pg % 64 == 5 ? RANDOM : PATTERN;
    return slot < 4 ? PATTERN : RANDOM;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-m MIB] [-c] [-t|-T] [-r READY_FILE]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    size_t mib = 96;
    int compressible = 0, thp = 0; /* thp: 1 = MADV_HUGEPAGE, -1 = MADV_NOHUGEPAGE */
    const char *ready = "/tmp/workload.ready";
    int opt;

    while ((opt = getopt(argc, argv, "m:ctTr:")) != -1) {
        switch (opt) {
        case 'm': mib = strtoul(optarg, NULL, 10); break;
        case 'c': compressible = 1; break;
        case 't': thp = 1; break;
        case 'T': thp = -1; break;
        case 'r': ready = optarg; break;
        default: usage(argv[0]);
        }
    }
    if (mib == 0 || optind != argc)
        usage(argv[0]);

    size_t len = mib << 20;
    unsigned char *p;
    if (thp == 0) {
        p = malloc(len);
        if (!p) { perror("malloc"); return 1; }
    } else {
        /* Over-allocate by one huge page and align, so the region is made of whole
         * 2 MiB extents that the kernel can back with PMD-mapped folios. */
        unsigned char *raw = mmap(NULL, len + HPAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) { perror("mmap"); return 1; }
        p = (unsigned char *)(((uintptr_t)raw + HPAGE - 1) & ~(HPAGE - 1));
        if (madvise(p, len, thp > 0 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
            fprintf(stderr, "workload: madvise: %s (continuing)\n", strerror(errno));
    }

    uint64_t x = 0x2545f4914f6cdd1dULL; /* xorshift64 state, fixed seed: reproducible */
    size_t counts[3] = {0, 0, 0};
    for (size_t pg = 0; pg < len / PAGE; pg++) {
        uint64_t *w = (uint64_t *)(p + pg * PAGE);
        enum kind k = page_kind(pg, compressible);
        counts[k]++;
        switch (k) {
        case ZERO:
            memset(w, 0, PAGE);
            break;
        case PATTERN:
            for (size_t j = 0; j < PAGE / 8; j++)
                w[j] = (pg * GOLDEN) ^ (j >> 5);
            break;
        case RANDOM:
            for (size_t j = 0; j < PAGE / 8; j++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                w[j] = x;
            }
            break;
        }
    }

    char info[256];
    snprintf(info, sizeof info,
             "pid=%ld addr=%p bytes=%zu thp=%d compressible=%d zero=%zu pattern=%zu random=%zu\n",
             (long)getpid(), (void *)p, len, thp, compressible,
             counts[ZERO], counts[PATTERN], counts[RANDOM]);
    printf("workload: %s", info);
    fflush(stdout);

    /* Write the readiness file atomically so a poller never sees it half written. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, info, strlen(info)) < 0 || close(fd) != 0 || rename(tmp, ready) != 0) {
        perror("workload: ready file");
        return 1;
    }

    for (;;)
        pause();
}
