/*  vw_result - what a store operation answers: an HTTP-like status and a
    JSON body, or an error code and sentence. The store actor turns it into
    a `reply` message; the edge turns that into an HTTP response. */
#ifndef VW_RESULT_H
#define VW_RESULT_H

#include <jansson.h>
#include <stdio.h>

typedef struct {
    int status;         //  200, 201, 204, 400, 404, 409, 500, 503
    json_t *body;       //  owned; NULL for 204 and errors
    const char *code;   //  for errors: snake_case (static string)
    char message[200];  //  for errors: human sentence
    //  Significant digits for the body's reals when it is serialised: 0 for
    //  jansson's 17 (always exact); fewer when every real of the body reads
    //  back as the same double with them (1.93, not 1.9299999999999999).
    int real_digits;
} vw_result_t;

#define vw_result_ok(r, st, b)                                                                     \
    do {                                                                                           \
        (r)->status = (st);                                                                        \
        (r)->body = (b);                                                                           \
    } while (0)

#define vw_result_fail(r, st, c, ...)                                                              \
    do {                                                                                           \
        (r)->status = (st);                                                                        \
        (r)->code = (c);                                                                           \
        snprintf ((r)->message, sizeof (r)->message, __VA_ARGS__);                                 \
    } while (0)

#include "vw_db.h"

//  A column as JSON: integer or null, text or null (new references).
json_t *vw_db_json_int (sqlite3_stmt *stmt, int col);
json_t *vw_db_json_text (sqlite3_stmt *stmt, int col);

//  Runs `sql` (one text parameter, ?1 = key) and answers 200 with fn's object
//  for the row, 404 "no <what> '<key>'" when there is none, or 500.
typedef json_t *(vw_db_row_fn) (sqlite3_stmt *stmt);
void vw_db_get_object (vw_db_t *db, const char *sql, const char *key, vw_db_row_fn *fn,
                       const char *what, vw_result_t *result);

#endif
