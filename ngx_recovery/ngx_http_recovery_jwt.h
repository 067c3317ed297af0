
/*
 * JSON Web Tokens (RFC 7519) signed with JWS (RFC 7515): base64url, signature
 * verification and signing with OpenSSL, claims with json-c.
 *
 * Plain C with no nginx types, so that the unit tests in t/unit link it alone.
 */

#ifndef _NGX_HTTP_RECOVERY_JWT_H_INCLUDED_
#define _NGX_HTTP_RECOVERY_JWT_H_INCLUDED_


#include <stddef.h>
#include <time.h>
#include <json.h>
#include <openssl/evp.h>


#define RECOVERY_JWT_HS256      0x01
#define RECOVERY_JWT_RS256      0x02
#define RECOVERY_JWT_ES256      0x04

#define RECOVERY_JWT_MAX_LEN    4096

/* a key id: the first 8 bytes of the secret's SHA-256, in hex */
#define RECOVERY_JWT_KID_LEN    16


typedef struct {
    unsigned              algorithms;   /* allowlist, RECOVERY_JWT_* bits */
    const unsigned char  *secret;       /* HS256 */
    size_t                secret_len;
    char                  kid[RECOVERY_JWT_KID_LEN + 1];
    const unsigned char  *previous_secret;  /* HS256, during a rotation */
    size_t                previous_secret_len;
    char                  previous_kid[RECOVERY_JWT_KID_LEN + 1];
    EVP_PKEY             *public_key;   /* RS256 (RSA) or ES256 (P-256) */
    long                  leeway;       /* seconds, for exp and nbf */
    const char           *issuer;       /* NULL: iss is not checked */
    const char           *audience;     /* NULL: aud is not checked */
} recovery_jwt_verifier_t;


/* base64url without padding; returns the output length, or -1 if malformed */
long recovery_base64url_decode(const char *in, size_t len, unsigned char *out);
size_t recovery_base64url_encode(const unsigned char *in, size_t len,
    char *out);

unsigned recovery_jwt_algorithm(const char *name);

/* The "kid" of an HS256 secret, NUL-terminated in kid. */
void recovery_jwt_key_id(const unsigned char *secret, size_t len,
    char *kid);

/*
 * Verifies a compact JWS token and its registered claims at time "now".
 * Returns the claims (the caller puts them with json_object_put) or NULL
 * with *error set to a short static description fit for WWW-Authenticate.
 */
json_object *recovery_jwt_verify(const recovery_jwt_verifier_t *v,
    const char *token, size_t len, time_t now, const char **error);

/*
 * Signs claims with HS256 (secret) or RS256/ES256 (private key), with a
 * "kid" header when kid is not NULL.  Returns a malloc()ed NUL-terminated
 * token, or NULL.
 */
char *recovery_jwt_sign(unsigned algorithm, const unsigned char *secret,
    size_t secret_len, const char *kid, EVP_PKEY *private_key,
    json_object *claims);


#endif /* _NGX_HTTP_RECOVERY_JWT_H_INCLUDED_ */
