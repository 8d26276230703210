/*  jwt_tool - a command-line face on vw_jwt for the interop test
    (tests/interop/jwt_interop.py), which checks our tokens against PyJWT.

        jwt_tool sign KEY SUB ROLE IAT EXP [JTI]
            prints a new token; no JTI means a random one
        jwt_tool verify KEY TOKEN NOW [SKEW]
            prints the status text, then "status=<name>"; on success also
            sub=, role=, exp=, iat=, nbf=, jti=, gen= lines (iat/nbf/gen when present)

    KEY is used as raw bytes. Exits 0 on success, 1 when signing fails or
    the token is refused, 2 on bad usage.
*/
#include "vw_jwt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_usage (void)
{
    fprintf (stderr, "usage: jwt_tool sign KEY SUB ROLE IAT EXP [JTI [GEN]]\n"
                     "       jwt_tool verify KEY TOKEN NOW [SKEW]\n");
    return 2;
}

static int
s_parse_int (const char *text, int64_t *value)
{
    char *end;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *value = (int64_t) parsed;
    return 0;
}

static int
s_sign (int argc, char **argv)
{
    int64_t iat, exp;
    int64_t gen = -1;
    if (argc < 7 || argc > 9 || s_parse_int (argv[5], &iat) || s_parse_int (argv[6], &exp) ||
        (argc == 9 && (s_parse_int (argv[8], &gen) || gen < 0)))
        return s_usage ();
    const char *key = argv[2];
    char *token = vw_jwt_sign_gen ((const uint8_t *) key, strlen (key), argv[3], argv[4], iat, exp,
                                   argc >= 8 ? argv[7] : NULL, gen);
    if (!token) {
        fprintf (stderr, "jwt_tool: cannot sign these claims\n");
        return 1;
    }
    printf ("%s\n", token);
    free (token);
    return 0;
}

static int
s_verify (int argc, char **argv)
{
    int64_t now, skew = 0;
    if (argc < 5 || argc > 6 || s_parse_int (argv[4], &now) ||
        (argc == 6 && s_parse_int (argv[5], &skew)))
        return s_usage ();
    const char *key = argv[2];
    vw_jwt_claims_t claims;
    vw_jwt_status_t status =
        vw_jwt_verify ((const uint8_t *) key, strlen (key), argv[3], now, skew, &claims);
    printf ("%s\nstatus=%s\n", vw_jwt_status_text (status), vw_jwt_status_name (status));
    if (status != VW_JWT_OK)
        return 1;
    printf ("sub=%s\nrole=%s\nexp=%" PRId64 "\n", claims.sub, claims.role, claims.exp);
    if (claims.has_iat)
        printf ("iat=%" PRId64 "\n", claims.iat);
    if (claims.has_nbf)
        printf ("nbf=%" PRId64 "\n", claims.nbf);
    printf ("jti=%s\n", claims.jti);
    if (claims.has_gen)
        printf ("gen=%" PRId64 "\n", claims.gen);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc >= 2 && strcmp (argv[1], "sign") == 0)
        return s_sign (argc, argv);
    if (argc >= 2 && strcmp (argv[1], "verify") == 0)
        return s_verify (argc, argv);
    return s_usage ();
}
