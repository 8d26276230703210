/*  vw_actors - the classes of the backend's actors (one file each).

    Each is run with vw_actor_task; the args each create() expects are
    declared here next to its class.
*/
#ifndef VW_ACTORS_H
#define VW_ACTORS_H

#include "vw_actor.h"
#include "vw_config.h"

//  store: the only owner of the SQLite database. args: vw_store_args_t.
typedef struct {
    const char *database_url;
    bool full_sync;
} vw_store_args_t;
extern const vw_actor_class_t vw_store_class;

//  registry: agents, sessions, status model. args: const vw_config_t *.
extern const vw_actor_class_t vw_registry_class;
//  scheduler: command queue and policy. args: const vw_config_t *.
extern const vw_actor_class_t vw_scheduler_class;
//  executor: dispatch, in-flight, timeouts, results. args: const vw_config_t *.
extern const vw_actor_class_t vw_executor_class;
//  telemetry: ingest, analytics, alerts. args: const vw_config_t *.
extern const vw_actor_class_t vw_telemetry_class;
//  auth: password hashing, logins and the first start's admin user (Argon2id),
//  off the hot paths. args: const vw_config_t *.
extern const vw_actor_class_t vw_auth_class;
//  admin: the ZeroMQ admin socket (JSON ops). args: const vw_config_t *.
extern const vw_actor_class_t vw_admin_class;

#endif
