/*  vw_http_users - POST /auth/token, POST /auth/logout, the users and the audit log (SPEC §6). */
#include "vw_http_int.h"
#include "vw_clock.h"
#include "vw_jwt.h"
#include "vw_ratelimit.h"
#include "vw_tokens.h"
#include "vw_wire.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  POST /auth/token

static void
s_token_reply (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
               const char *why)
{
    if (!reply || reply->id != VW_MSG_ID_login_result) {
        vw_http_error (session, 503, "unavailable", "cannot check credentials now");
        return;
    }
    const vw_login_result_msg_t *r = &reply->login_result;
    if (!r->ok || !r->role) {
        vw_edge_audit (edge, call->target, session->peer, "auth.login_failed", call->target,
                       "failure", "bad credentials");
        session->challenge = true;
        vw_http_error (session, 401, "unauthorized", "wrong username or password");
        return;
    }
    int64_t now = vw_clock_wall_ms () / 1000;
    int64_t ttl = edge->config->token_ttl_ms / 1000;
    char *token = vw_jwt_sign_gen ((const uint8_t *) edge->config->jwt_secret,
                                   strlen (edge->config->jwt_secret), r->username, r->role, now,
                                   now + ttl, NULL, r->gen);
    if (!token) {
        vw_http_error (session, 500, "internal", "cannot sign a token");
        return;
    }
    vw_edge_audit (edge, r->username, session->peer, "auth.login", r->username, "success", NULL);
    vw_http_respond (session, 200,
                     json_pack ("{s:s, s:s, s:I}", "access_token", token, "token_type", "Bearer",
                                "expires_in", (json_int_t) ttl));
    free (token);
}

void
vw_http_post_token (vw_edge_t *edge, vw_http_session_t *session)
{
    json_t *user = json_object_get (session->json, "username");
    json_t *pass = json_object_get (session->json, "password");
    if (!json_is_string (user) || !json_string_length (user) || json_string_length (user) > 128) {
        vw_http_error (session, 400, "bad_request",
                       "field 'username' is required and must be a string of 1-128 characters");
        return;
    }
    if (!json_is_string (pass) || json_string_length (pass) > 1024) {
        vw_http_error (
            session, 400, "bad_request",
            "field 'password' is required and must be a string of at most 1024 characters");
        return;
    }
    //  Logins cost an Argon2id hash each: a tighter limit per address.
    int64_t retry_ms = 0;
    if (!vw_ratelimit_take (edge->rl_login, session->peer, 1, vw_clock_mono_ms (), &retry_ms)) {
        session->retry_after = (int) ((retry_ms + 999) / 1000);
        vw_http_error (session, 429, "rate_limited", "too many login attempts; retry in %d s",
                       session->retry_after);
        return;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_login);
    vw_msg_set_str (&msg->login.username, json_string_value (user));
    vw_msg_set_str (&msg->login.password, json_string_value (pass));
    vw_http_call (edge, session, "auth", &msg, s_token_reply, NULL, json_string_value (user));
}

//  --------------------------------------------------------------------------
//  Users and audit

void
vw_http_post_users (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_api_error_t err;
    vw_msg_t *msg = vw_api_user_create (session->json, &err);
    if (!msg) {
        vw_http_api_error (session, &err);
        return;
    }
    char user[160];
    snprintf (user, sizeof user, "%s", msg->user_create.username);
    vw_http_call (edge, session, "auth", &msg, vw_http_reply_audited, "user.create", user);
}

//  GET/PUT/DELETE /users/{name}, GET /users, POST /auth/logout (issue 8).
//  The auth actor owns users: it answers, and pushes the change to every
//  api edge's token table before it does, so the old tokens are refused
//  by the time the client hears 200 or 204.

void
vw_http_get_users (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_http_query (edge, session, "auth", vw_api_user_list);
}

void
vw_http_get_user (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *name = vw_http_id_segment (session, 1, "user");
    if (!name)
        return;
    vw_api_error_t err;
    vw_msg_t *msg = vw_api_user_show (name, &err);
    if (msg)
        vw_http_call (edge, session, "auth", &msg, vw_http_reply_plain, NULL, NULL);
    else
        vw_http_api_error (session, &err);
}

void
vw_http_put_user (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *name = vw_http_id_segment (session, 1, "user");
    if (!name)
        return;
    //  Below admin, only one's own password.
    if (session->role < VW_HTTP_ADMIN &&
        (strcmp (name, session->sub) != 0 || json_object_size (session->json) != 1 ||
         !json_object_get (session->json, "password"))) {
        vw_http_error (
            session, 403, "forbidden",
            "PUT /users/{name} needs the admin role, except to change one's own password");
        return;
    }
    vw_api_error_t err;
    vw_msg_t *msg = vw_api_user_update (name, session->json, &err);
    if (msg)
        vw_http_call (edge, session, "auth", &msg, vw_http_reply_audited, "user.update", name);
    else
        vw_http_api_error (session, &err);
}

void
vw_http_delete_user (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *name = vw_http_id_segment (session, 1, "user");
    if (!name)
        return;
    vw_api_error_t err;
    vw_msg_t *msg = vw_api_user_delete (name, &err);
    if (msg)
        vw_http_call (edge, session, "auth", &msg, vw_http_reply_audited, "user.delete", name);
    else
        vw_http_api_error (session, &err);
}

void
vw_http_post_logout (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_token_revoke);
    vw_msg_set_str (&msg->token_revoke.username, session->sub);
    if (*session->jti)
        vw_msg_set_str (&msg->token_revoke.jti, session->jti);
    msg->token_revoke.exp = session->token_exp;
    vw_http_call (edge, session, "auth", &msg, vw_http_reply_audited, "auth.logout", session->sub);
}

void
vw_http_get_audit (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_http_query (edge, session, "store", vw_api_audit_list);
}
