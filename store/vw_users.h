/*  vw_users - operator accounts: Argon2id hashes (crypto_pwhash_str, made by
    the auth actor), roles, the disabled flag and the token generation
    signed into each user's JWTs; and the deny-list of logged-out tokens
    (by jti, kept until their exp). Called by the store actor only.

    User objects answered here carry "gen" for the auth actor, which strips
    it before anything reaches a client; none ever carries the hash. */
#ifndef VW_USERS_H
#define VW_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

//  Number of users, or -1.
int64_t vw_users_count (vw_db_t *db);

//  POST /users: 201 {"username","role","disabled","created_at","gen"}, 409
//  if taken.
void vw_users_insert (vw_db_t *db, const char *username, const char *password_hash,
                      const char *role, int64_t gen, int64_t now_ms, vw_result_t *result);

typedef struct {
    bool found;
    char password_hash[256];
    char role[16];
    bool disabled;
    int64_t gen;
} vw_user_record_t;

//  Recovery (viworks-backend --reset-admin-password): gives `username` this
//  password hash and makes it an enabled admin, creating it if missing; its
//  token generation becomes `gen`, so tokens signed before stop working.
//  1 created, 0 updated, -1 on a database error.
int vw_users_reset_admin (vw_db_t *db, const char *username, const char *password_hash, int64_t gen,
                          int64_t now_ms);

//  -1 on a database error.
int vw_users_get (vw_db_t *db, const char *username, vw_user_record_t *out);

//  Changes what is given (password_hash, role NULL = unchanged; disabled
//  when set_disabled) and sets the token generation to gen: 200 user
//  object, 404, 400 when the schema refuses a value.
void vw_users_update (vw_db_t *db, const char *username, const char *password_hash,
                      const char *role, bool set_disabled, bool disabled, int64_t gen,
                      vw_result_t *result);

//  204, or 404.
void vw_users_delete (vw_db_t *db, const char *username, vw_result_t *result);

//  Every user, by name, and every denied jti whose exp is after now_s:
//  200 {"users":[user object…], "denied":{jti: exp}}.
void vw_users_load (vw_db_t *db, int64_t now_s, vw_result_t *result);

//  Puts jti on the deny-list until exp_s (again: no change) and forgets
//  entries that expired by now_s: 204.
void vw_users_deny (vw_db_t *db, const char *jti, const char *username, int64_t exp_s,
                    int64_t now_s, vw_result_t *result);

#endif
