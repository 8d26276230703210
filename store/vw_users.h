/*  vw_users - operator accounts: Argon2id hashes (crypto_pwhash_str, made by
    the auth actor) and roles. Called by the store actor only. */
#ifndef VW_USERS_H
#define VW_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

//  Number of users, or -1.
int64_t vw_users_count (vw_db_t *db);

//  POST /users: 201 {"username","role","created_at"}, 409 if taken.
void vw_users_insert (vw_db_t *db, const char *username, const char *password_hash,
                      const char *role, int64_t now_ms, vw_result_t *result);

typedef struct {
    bool found;
    char password_hash[256];
    char role[16];
    bool disabled;
} vw_user_record_t;

//  Recovery (viworks-backend --reset-admin-password): gives `username` this
//  password hash and makes it an enabled admin, creating it if missing.
//  1 created, 0 updated, -1 on a database error.
int vw_users_reset_admin (vw_db_t *db, const char *username, const char *password_hash,
                          int64_t now_ms);

//  -1 on a database error.
int vw_users_get (vw_db_t *db, const char *username, vw_user_record_t *out);

#endif
