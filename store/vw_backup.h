/*  vw_backup - an online copy of the database (issue 12).

    VACUUM INTO on a connection of its own, in a thread of its own: in WAL
    mode that connection reads one snapshot (the last commit before it
    started) while the store goes on writing, so the copy is consistent,
    holds every transaction committed before the backup began, and costs
    the store nothing but the disk it shares. The copy is a plain SQLite
    file (compacted, no WAL): restore it by putting it in place of the
    database while the backend is stopped (docs/operations.md). */
#ifndef VW_BACKUP_H
#define VW_BACKUP_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct vw_backup_t vw_backup_t;

//  Whether dest is a path a backup may be written to: absolute, at most
//  1,024 bytes, not an existing file, in an existing directory. false with
//  the reason in err.
bool vw_backup_path_ok (const char *dest, char *err, size_t errlen);

//  Starts copying the database file src to dest. When done the thread
//  sends one frame on `done` (the store keeps that socket's other end):
//  "ok BYTES MS" or "error MESSAGE". NULL if the thread cannot start.
vw_backup_t *vw_backup_start (const char *src, const char *dest, zsock_t *done);

//  Waits for the thread (after its frame came) and frees it.
void vw_backup_join (vw_backup_t **self_p);

#endif
