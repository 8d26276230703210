/*  vw_secret - see vw_secret.h. */
#include "vw_secret.h"
#include "vw_log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HEX_LEN 64

static int
s_mkdirs (const char *dir)
{
    char path[4096];
    if (snprintf (path, sizeof path, "%s", dir) >= (int) sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (path, 0700) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir (path, 0700) && errno != EEXIST ? -1 : 0;
}

char *
vw_secret_load_previous (const char *dir, int64_t *rotated_ms)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/jwt.secret.previous", dir);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char text[S_HEX_LEN + 2] = "";
    struct stat st;
    ssize_t n = fstat (fd, &st) == 0 ? read (fd, text, sizeof text - 1) : -1;
    close (fd);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n < 32)
        return NULL;
    text[n] = 0;
    *rotated_ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return strdup (text);
}

int
vw_secret_rotate (const char *dir, char *err, size_t errlen)
{
    char path[4096], previous[4200];
    snprintf (path, sizeof path, "%s/jwt.secret", dir);
    snprintf (previous, sizeof previous, "%s/jwt.secret.previous", dir);
    if (access (path, R_OK) != 0) {
        snprintf (err, errlen, "no kept secret to rotate (%s: %s)", path, strerror (errno));
        return -1;
    }
    //  The rename is the rotation; the file's time says when it happened.
    if (rename (path, previous) != 0 || utimensat (AT_FDCWD, previous, NULL, 0) != 0) {
        snprintf (err, errlen, "cannot rotate %s: %s", path, strerror (errno));
        return -1;
    }
    char *fresh = vw_secret_load (dir, err, errlen);
    if (!fresh)
        return -1;
    sodium_memzero (fresh, strlen (fresh));
    free (fresh);
    return 0;
}

char *
vw_secret_load (const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf (path, sizeof path, "%s/jwt.secret", dir) >= (int) sizeof path) {
        snprintf (err, errlen, "data directory path too long");
        return NULL;
    }
    if (s_mkdirs (dir)) {
        snprintf (err, errlen, "cannot create data directory %s: %s", dir, strerror (errno));
        return NULL;
    }
    char text[S_HEX_LEN + 2] = "";
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat (fd, &st) == 0 && (st.st_mode & 077))
            vw_warn ("main", "%s is readable by others (mode %03o); chmod 600 it", path,
                     (unsigned) (st.st_mode & 0777));
        ssize_t n = read (fd, text, sizeof text - 1);
        close (fd);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            n--;
        if (n < 32) {
            snprintf (err, errlen, "%s holds no usable secret (at least 32 characters)", path);
            return NULL;
        }
        text[n] = 0;
        return strdup (text);
    }
    if (errno != ENOENT) {
        snprintf (err, errlen, "cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    uint8_t raw[S_HEX_LEN / 2];
    randombytes_buf (raw, sizeof raw);
    sodium_bin2hex (text, sizeof text, raw, sizeof raw);
    sodium_memzero (raw, sizeof raw);
    //  O_EXCL: two starts racing never overwrite each other's secret.
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf (err, errlen, "cannot create %s: %s", path, strerror (errno));
        return NULL;
    }
    char line[S_HEX_LEN + 4];
    snprintf (line, sizeof line, "%s\n", text);
    bool ok = write (fd, line, strlen (line)) == (ssize_t) strlen (line) && fsync (fd) == 0;
    close (fd);
    if (!ok) {
        unlink (path);
        snprintf (err, errlen, "cannot write %s", path);
        return NULL;
    }
    vw_info ("main", "generated a JWT signing secret in %s", path);
    return strdup (text);
}
