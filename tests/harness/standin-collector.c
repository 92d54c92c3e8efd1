/*
 * standin-collector: a minimal stand-in for the vmsift binary, used to exercise
 * `capture-with` before the real collector exists.
 *
 *   standin-collector [any makedumpfile-style options...] -F INPUT
 *
 * Options other than -F are accepted and ignored (option values such as the 31 in
 * `-d 31` are skipped as well). It copies INPUT unfiltered to stdout in makedumpfile's
 * *flattened* format, so `makedumpfile -R out.elf < stdout` rebuilds a byte-identical copy
 * of INPUT (here /proc/vmcore). Layout, all integers big-endian:
 *
 *   4096-byte header: "makedumpfile" (16 bytes, NUL padded), i64 type = 1, i64 version = 1,
 *                     zero fill
 *   records:          i64 offset, i64 size, then `size` bytes destined for `offset`
 *   end marker:       i64 -1, i64 -1
 *
 * Exit status: 0 on success, 1 on I/O error, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_SIZE 4096
#define CHUNK (1 << 20)

static void put_be64(unsigned char *b, int64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v = (int64_t)((uint64_t)v >> 8);
    }
}

static int write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_record(int64_t offset, int64_t size)
{
    unsigned char h[16];
    put_be64(h, offset);
    put_be64(h + 8, size);
    return write_all(STDOUT_FILENO, h, sizeof h);
}

int main(int argc, char **argv)
{
    const char *input = NULL;
    int flattened = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-F") == 0 || strcmp(a, "--flatten") == 0) {
            flattened = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            /* makedumpfile options that take a separate value */
            if ((strcmp(a, "-d") == 0 || strcmp(a, "-x") == 0 || strcmp(a, "-i") == 0 ||
                 strcmp(a, "--message-level") == 0 || strcmp(a, "--num-threads") == 0) &&
                i + 1 < argc)
                i++;
        } else {
            input = a; /* last positional wins: makedumpfile takes the vmcore last with -F */
        }
    }
    if (!flattened || input == NULL) {
        fprintf(stderr, "usage: %s [options] -F INPUT   (writes flattened INPUT to stdout)\n",
                argv[0]);
        return 2;
    }
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "%s: refusing to write to a terminal\n", argv[0]);
        return 2;
    }

    int in = open(input, O_RDONLY);
    if (in < 0) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], input, strerror(errno));
        return 1;
    }

    static unsigned char header[HEADER_SIZE];
    memcpy(header, "makedumpfile", 12);
    put_be64(header + 16, 1); /* type: flattened */
    put_be64(header + 24, 1); /* version */
    if (write_all(STDOUT_FILENO, header, sizeof header) != 0)
        goto write_error;

    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        perror("malloc");
        return 1;
    }
    int64_t offset = 0;
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: read %s at %lld: %s\n", argv[0], input, (long long)offset,
                    strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        if (write_record(offset, n) != 0 || write_all(STDOUT_FILENO, buf, (size_t)n) != 0)
            goto write_error;
        offset += n;
    }
    if (write_record(-1, -1) != 0)
        goto write_error;
    fprintf(stderr, "%s: copied %lld bytes of %s\n", argv[0], (long long)offset, input);
    return 0;

write_error:
    fprintf(stderr, "%s: write: %s\n", argv[0], strerror(errno));
    return 1;
}
