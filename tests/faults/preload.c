/* Fault injection for tests/faults.rs, loaded with LD_PRELOAD into the (dynamically
 * linked) test build of vmsift, which reads its input with pread when given --non-mmap.
 *
 *   FAULT_EIO=START:END   pread64 calls that touch file offsets [START, END) fail with EIO,
 *                         and so does MADV_POPULATE_READ of a file mapping over them (how
 *                         vmsift reads runs of pages of a regular file without --non-mmap)
 *   FAULT_NO_POPULATE=1   MADV_POPULATE_READ fails with EINVAL, as on kernels before 5.14
 *   FAULT_SLOW_US=N       every pread64 first sleeps N microseconds (to stop a run midway)
 *   FAULT_WRITE_EIO=AT    pwrite64 calls that reach file offset AT or beyond fail with EIO
 *                         (a disk going bad under the dump)
 *   FAULT_WRITE_ERRNO=N   ... with errno N instead (110, ETIMEDOUT: a soft NFS mount whose
 *                         server is gone); FAULT_WRITE_COUNT=PATH counts those calls there */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
    static pread_fn real;
    if (!real)
        real = (pread_fn)dlsym(RTLD_NEXT, "pread64");
    const char *slow = getenv("FAULT_SLOW_US");
    if (slow)
        usleep((useconds_t)atol(slow));
    const char *eio = getenv("FAULT_EIO");
    unsigned long long start, end;
    if (eio && sscanf(eio, "%llu:%llu", &start, &end) == 2 &&
        (unsigned long long)offset < end &&
        (unsigned long long)offset + count > start) {
        errno = EIO;
        return -1;
    }
    return real(fd, buf, count, offset);
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
    return pread64(fd, buf, count, offset);
}

/* File mappings, newest first, so that madvise() can tell which file offsets an address
 * range stands for. */
#include <sys/mman.h>
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older C libraries lack the name */
#endif
#define MAPS 64
static struct {
    unsigned long long addr, len, offset;
} maps[MAPS];
static unsigned next_map;

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    static mmap_fn real;
    if (!real)
        real = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
    void *p = real(addr, len, prot, flags, fd, offset);
    if (p != MAP_FAILED && fd >= 0) {
        unsigned i = __atomic_fetch_add(&next_map, 1, __ATOMIC_RELAXED) % MAPS;
        maps[i].addr = (unsigned long long)p;
        maps[i].len = len;
        maps[i].offset = (unsigned long long)offset;
    }
    return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    return mmap64(addr, len, prot, flags, fd, offset);
}

typedef int (*madvise_fn)(void *, size_t, int);

int madvise(void *addr, size_t len, int advice)
{
    static madvise_fn real;
    if (!real)
        real = (madvise_fn)dlsym(RTLD_NEXT, "madvise");
    if (advice == MADV_POPULATE_READ && getenv("FAULT_NO_POPULATE")) {
        errno = EINVAL;
        return -1;
    }
    const char *eio = getenv("FAULT_EIO");
    unsigned long long start, end, a = (unsigned long long)addr;
    if (advice == MADV_POPULATE_READ && eio &&
        sscanf(eio, "%llu:%llu", &start, &end) == 2) {
        unsigned n = next_map < MAPS ? next_map : MAPS;
        for (unsigned k = 1; k <= n; k++) {
            unsigned i = (next_map - k) % MAPS;
            if (a < maps[i].addr || a + len > maps[i].addr + maps[i].len)
                continue;
            unsigned long long off = maps[i].offset + (a - maps[i].addr);
            if (off < end && off + len > start) {
                errno = EIO;
                return -1;
            }
            break;
        }
    }
    return real(addr, len, advice);
}

/* ---- Stalled outputs, for tests/watchdog.rs ----
 *   FAULT_WRITE_HANG=AT     pwrite64 calls that reach file offset AT or beyond never return
 *                           (an NFS hard mount whose server is gone)
 *   FAULT_WRITE_SLOW_US=N   every pwrite64 first sleeps N microseconds (slow, but moving)
 *   FAULT_EXIT_HANG=1       in vmsift's supervised child (VMSIFT_WATCHDOG_FD set), exit()
 *                           never ends the process, as when its exit has to flush a dead
 *                           NFS mount */
#include <signal.h>

static void watchdog_faults_before_pwrite(size_t count, off_t offset)
{
    const char *slow = getenv("FAULT_WRITE_SLOW_US");
    if (slow)
        usleep((useconds_t)atol(slow));
    const char *hang = getenv("FAULT_WRITE_HANG");
    if (hang && (unsigned long long)offset + count > strtoull(hang, NULL, 10))
        for (;;)
            pause();
}

void exit(int status)
{
    typedef void (*exit_fn)(int) __attribute__((noreturn));
    static exit_fn real;
    if (getenv("FAULT_EXIT_HANG") && getenv("VMSIFT_WATCHDOG_FD"))
        for (;;)
            pause();
    if (!real)
        real = (exit_fn)dlsym(RTLD_NEXT, "exit");
    real(status);
}
/* ---- end of the stalled-output faults ---- */

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
    static pwrite_fn real;
    if (!real)
        real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    watchdog_faults_before_pwrite(count, offset);
    const char *at = getenv("FAULT_WRITE_EIO");
    if (at && (unsigned long long)offset + count > strtoull(at, NULL, 10)) {
        const char *code = getenv("FAULT_WRITE_ERRNO");
        const char *count_path = getenv("FAULT_WRITE_COUNT");
        if (count_path) {
            FILE *f = fopen(count_path, "a");
            if (f) {
                fputs("x", f);
                fclose(f);
            }
        }
        errno = code ? atoi(code) : EIO;
        return -1;
    }
    return real(fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    return pwrite64(fd, buf, count, offset);
}
