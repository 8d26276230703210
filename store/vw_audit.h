/*  vw_audit - the audit_logs table (SPEC §6): one row per state change made
    through the API or the admin socket, and per failed login. Called by the
    store actor only. */
#ifndef VW_AUDIT_H
#define VW_AUDIT_H

#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

//  Appends a row (inside the store's open transaction). -1 on error.
int vw_audit_append (vw_db_t *db, int64_t ts, const char *actor, const char *source,
                     const char *action, const char *target, const char *outcome,
                     const char *detail);

//  GET /audit: 200 {"entries":[…],"next_cursor":…}, newest first. Filters
//  may be NULL; from/to 0 mean unbounded (from inclusive, to exclusive).
void vw_audit_list (vw_db_t *db, const char *action, const char *actor, int64_t from, int64_t to,
                    int64_t limit, const char *cursor, vw_result_t *result);

#endif
