/*  vw_fault - an LD_PRELOAD library that makes file writes fail on demand,
    so that tests can watch the real backend meet a full disk, an I/O error
    or a read-only file system (issue 9) without root or a small tmpfs.

        LD_PRELOAD=libvw_fault.so \
        VW_FAULT_PATH=/tmp/vw-test-x/ VW_FAULT_CTL=/tmp/vw-test-x.ctl viworks-backend

    It interposes the libc calls that write to a file: write, pwrite,
    pwrite64, fsync, fdatasync, ftruncate, ftruncate64, fallocate,
    fallocate64 (Debian 12's libsqlite3 imports pwrite64, write, fdatasync
    and ftruncate64). A call is affected only when its file descriptor
    names a file whose path (readlink of /proc/self/fd/N, at each call, so
    a reused descriptor is never mistaken for another) starts with
    VW_FAULT_PATH, made absolute and free of symlinks at load time. Anything
    else (stderr, sockets, pipes, other files) passes through untouched.

    The control file VW_FAULT_CTL says what happens, read afresh at each
    affected call so a change applies to the very next one:

        missing, empty, "off"    no fault
        enospc | eio | erofs | edquot [KIND ...]
                                 the call returns -1 with that errno

    where the optional KINDs restrict the fault to some calls: "write"
    (write, pwrite*), "sync" (fsync, fdatasync), "truncate" (ftruncate*),
    "allocate" (fallocate*); none means all of them. An unknown word is
    reported once on stderr and injects nothing.

    Only calls that go through the dynamic symbol table are caught (glibc's
    own internal calls, e.g. posix_fallocate's, are not). Apart from the
    first call of each function (dlsym), nothing here allocates or takes a
    lock: the work per call is readlink, then open, read and close of the
    control file for a matching descriptor, all async-signal-safe, and errno
    is kept as it was unless a fault is injected. Give VW_FAULT_CTL as an
    absolute path. The library prints one line on stderr when it loads with
    both variables set, which tests may use to check it is active.

    Build it without sanitizers: it must load into any process, and a
    sanitized .so needs the sanitizer runtime in the executable. Under an
    executable with clang's (static) ASan runtime nothing special is needed:
    the executable's interceptors come first in symbol lookup, their "real"
    function (dlsym RTLD_NEXT from the executable) is this library's, which
    calls libc's. ASan's "runtime does not come first in initial library
    list" check is only made with the shared runtime (-shared-libasan).
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  //  pwrite64, ftruncate64, fallocate, RTLD_NEXT
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

//  Kinds of call, for the control file's optional filter.
#define S_WRITE    0x1
#define S_SYNC     0x2
#define S_TRUNCATE 0x4
#define S_ALLOCATE 0x8
#define S_ALL      (S_WRITE | S_SYNC | S_TRUNCATE | S_ALLOCATE)

static char s_prefix[PATH_MAX];  //  VW_FAULT_PATH, resolved; empty = inactive
static size_t s_prefix_len;
static char s_ctl[PATH_MAX];  //  VW_FAULT_CTL; empty = inactive
static int s_warned;          //  an unknown word was reported
static void *s_write;         //  libc's write, for s_say

//  The next definition of `name` (libc's), looked up once.
static void *
s_real (void **slot, const char *name)
{
    void *fn = __atomic_load_n (slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = dlsym (RTLD_NEXT, name);
        __atomic_store_n (slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

//  Writes a text on stderr with libc's write, bypassing this library.
static void
s_say (const char *text)
{
    ssize_t (*fn) (int, const void *, size_t) =
        (ssize_t (*) (int, const void *, size_t)) s_real (&s_write, "write");
    if (fn)
        fn (STDERR_FILENO, text, strlen (text));
}

__attribute__ ((constructor)) static void
s_init (void)
{
    const char *prefix = getenv ("VW_FAULT_PATH");
    const char *ctl = getenv ("VW_FAULT_CTL");
    if (!prefix || !*prefix || !ctl || !*ctl || strlen (ctl) >= sizeof s_ctl)
        return;
    //  Paths under /proc/self/fd are canonical: compare with a canonical
    //  prefix (the data directory may be reached through a symlink, such
    //  as a /tmp that is one). A path that does not exist yet is kept.
    char resolved[PATH_MAX];
    if (!realpath (prefix, resolved))
        snprintf (resolved, sizeof resolved, "%s", prefix);
    size_t len = strlen (resolved);
    //  "dir/" means "inside dir", not "dir2" too.
    if (prefix[strlen (prefix) - 1] == '/' && resolved[len - 1] != '/' &&
        len + 1 < sizeof resolved) {
        resolved[len++] = '/';
        resolved[len] = 0;
    }
    memcpy (s_prefix, resolved, len + 1);
    s_prefix_len = len;
    memcpy (s_ctl, ctl, strlen (ctl) + 1);
    char line[2 * PATH_MAX + 64];
    snprintf (line, sizeof line, "vw_fault: loaded (path prefix '%s', control file '%s')\n",
              s_prefix, s_ctl);
    s_say (line);
}

//  True when `fd` names a file under the prefix.
static bool
s_fd_matches (int fd)
{
    //  "/proc/self/fd/" and the digits, without snprintf (not
    //  async-signal-safe).
    char link[32] = "/proc/self/fd/", digits[12], path[PATH_MAX];
    int n = 0;
    do
        digits[n++] = (char) ('0' + fd % 10);
    while ((fd /= 10) && n < (int) sizeof digits);
    size_t at = strlen (link);
    while (n)
        link[at++] = digits[--n];
    link[at] = 0;
    ssize_t len = readlink (link, path, sizeof path - 1);
    if (len < (ssize_t) s_prefix_len)
        return false;
    return memcmp (path, s_prefix, s_prefix_len) == 0;
}

static const struct {
    const char *word;
    int value;
} s_errnos[] = {{"enospc", ENOSPC}, {"eio", EIO}, {"erofs", EROFS}, {"edquot", EDQUOT}};

static const struct {
    const char *word;
    int kind;
} s_kinds[] = {
    {"write", S_WRITE}, {"sync", S_SYNC}, {"truncate", S_TRUNCATE}, {"allocate", S_ALLOCATE}};

//  Reports an unknown word in the control file, once.
static void
s_unknown (const char *word)
{
    if (__atomic_exchange_n (&s_warned, 1, __ATOMIC_RELAXED))
        return;
    s_say ("vw_fault: unknown word '");
    s_say (word);
    s_say ("' in the control file: no fault injected\n");
}

//  The errno the control file asks for calls of `kind`, or 0.
static int
s_ctl_errno (int kind)
{
    int fd = open (s_ctl, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char text[128];
    ssize_t len = read (fd, text, sizeof text - 1);
    close (fd);
    if (len <= 0)
        return 0;
    text[len] = 0;
    int value = 0, kinds = 0;
    bool first = true;
    char *save = NULL;
    for (char *word = strtok_r (text, " \t\r\n", &save); word;
         word = strtok_r (NULL, " \t\r\n", &save)) {
        bool known = false;
        if (first) {
            first = false;
            if (strcmp (word, "off") == 0)
                return 0;
            for (size_t i = 0; i < sizeof s_errnos / sizeof s_errnos[0] && !known; i++)
                if (strcmp (word, s_errnos[i].word) == 0) {
                    value = s_errnos[i].value;
                    known = true;
                }
        }
        else
            for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0] && !known; i++)
                if (strcmp (word, s_kinds[i].word) == 0) {
                    kinds |= s_kinds[i].kind;
                    known = true;
                }
        if (!known) {
            s_unknown (word);
            return 0;
        }
    }
    return (kinds ? kinds : S_ALL) & kind ? value : 0;
}

//  The errno to fail a call of `kind` on `fd` with, or 0 to let it
//  through. errno is left as it was.
static int
s_fault (int fd, int kind)
{
    if (!*s_ctl || fd < 0)
        return 0;
    int saved = errno;
    int value = s_fd_matches (fd) ? s_ctl_errno (kind) : 0;
    errno = saved;
    return value;
}

//  Defines `ret name params`: fails with the injected errno, or with ENOSYS
//  when libc has no such call, else calls libc's with `args`.
#define S_INTERPOSE(ret, name, kind, fd, params, args)                                             \
    ret name params                                                                                \
    {                                                                                              \
        static void *real;                                                                         \
        int value = s_fault (fd, kind);                                                            \
        ret (*fn) params = (ret (*) params) s_real (&real, #name);                                 \
        if (!value && !fn)                                                                         \
            value = ENOSYS;                                                                        \
        if (value) {                                                                               \
            errno = value;                                                                         \
            return -1;                                                                             \
        }                                                                                          \
        return fn args;                                                                            \
    }

S_INTERPOSE (ssize_t, write, S_WRITE, fd, (int fd, const void *buf, size_t count), (fd, buf, count))
S_INTERPOSE (ssize_t, pwrite, S_WRITE, fd, (int fd, const void *buf, size_t count, off_t offset),
             (fd, buf, count, offset))
S_INTERPOSE (ssize_t, pwrite64, S_WRITE, fd,
             (int fd, const void *buf, size_t count, off64_t offset), (fd, buf, count, offset))
S_INTERPOSE (int, fsync, S_SYNC, fd, (int fd), (fd))
S_INTERPOSE (int, fdatasync, S_SYNC, fd, (int fd), (fd))
S_INTERPOSE (int, ftruncate, S_TRUNCATE, fd, (int fd, off_t length), (fd, length))
S_INTERPOSE (int, ftruncate64, S_TRUNCATE, fd, (int fd, off64_t length), (fd, length))
S_INTERPOSE (int, fallocate, S_ALLOCATE, fd, (int fd, int mode, off_t offset, off_t len),
             (fd, mode, offset, len))
S_INTERPOSE (int, fallocate64, S_ALLOCATE, fd, (int fd, int mode, off64_t offset, off64_t len),
             (fd, mode, offset, len))
