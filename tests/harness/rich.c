/*
 * rich: the page classes of a "rich" guest (make-vmcore --rich) that the plain workload
 * does not make, then stay alive until the machine panics.
 *
 *   rich [-H HUGE_PAGES] [-p POISON_PAGES] [-r READY_FILE]
 *
 *   -H N     map N 2 MiB hugetlb pages (MAP_HUGETLB) and dirty them with random data; the
 *            rest of the pool (hugepages= on the command line) stays free (default 16)
 *   -p N     in a child process, dirty N anonymous 4 KiB pages and poison each with
 *            madvise(MADV_HWPOISON) (needs CONFIG_MEMORY_FAILURE and root); the child then
 *            exits, the poisoned pages stay out of use (default 8)
 *   -r FILE  readiness file, written once everything is done (default /tmp/rich.ready);
 *            it holds "pid=... huge=... poisoned=..."
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define HPAGE (2UL << 20)

static uint64_t x = 0x9e3779b97f4a7c15ULL; /* xorshift64: reproducible, incompressible */

static void fill_random(unsigned char *p, size_t len)
{
    uint64_t *w = (uint64_t *)p;
    for (size_t j = 0; j < len / 8; j++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        w[j] = x;
    }
}

static void on_sigbus(int sig) { (void)sig; }

/* Child: dirty n pages, poison each; exit status = number poisoned. memory_failure()
 * sends the caller SIGBUS (BUS_MCEERR_AR) for each page it unmaps: handled, it is only a
 * notice here. */
static int poison(size_t n)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
    unsigned char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("rich: mmap (poison)"); return 0; }
    madvise(p, n * PAGE, MADV_NOHUGEPAGE);
    fill_random(p, n * PAGE);
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        if (madvise(p + i * PAGE, PAGE, MADV_HWPOISON) == 0)
            done++;
        else
            fprintf(stderr, "rich: MADV_HWPOISON: %s\n", strerror(errno));
    }
    return done;
}

int main(int argc, char **argv)
{
    size_t huge = 16, npoison = 8;
    const char *ready = "/tmp/rich.ready";
    int opt;
    while ((opt = getopt(argc, argv, "H:p:r:")) != -1) {
        switch (opt) {
        case 'H': huge = strtoul(optarg, NULL, 10); break;
        case 'p': npoison = strtoul(optarg, NULL, 10); break;
        case 'r': ready = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-H HUGE_PAGES] [-p POISON_PAGES] [-r READY_FILE]\n",
                    argv[0]);
            return 2;
        }
    }

    size_t mapped = 0;
    if (huge) {
        unsigned char *h = mmap(NULL, huge * HPAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (h == MAP_FAILED) {
            perror("rich: mmap MAP_HUGETLB");
            return 1;
        }
        fill_random(h, huge * HPAGE);
        mapped = huge;
    }

    int poisoned = 0;
    if (npoison) {
        pid_t pid = fork();
        if (pid < 0) { perror("rich: fork"); return 1; }
        if (pid == 0)
            _exit(poison(npoison));
        int st;
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
            poisoned = WEXITSTATUS(st);
        else
            fprintf(stderr, "rich: poisoning child ended abnormally (status %#x)\n", st);
    }

    char info[256];
    snprintf(info, sizeof info, "pid=%ld huge=%zu poisoned=%d\n", (long)getpid(), mapped,
             poisoned);
    printf("rich: %s", info);
    fflush(stdout);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, info, strlen(info)) < 0 || close(fd) != 0 || rename(tmp, ready) != 0) {
        perror("rich: ready file");
        return 1;
    }
    for (;;)
        pause();
}
