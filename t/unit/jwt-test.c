/*
 * Unit tests of ngx_recovery's base64url and JWT code, in TAP for prove:
 * the RFC 4648 vectors, the RFC 7515/7519 example tokens, and the attacks
 * a verifier must refuse.  Built by make into build/jwt-test.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "ngx_http_recovery_jwt.h"


static int  tests;
static int  failures;

static void
ok(int passed, const char *name)
{
    tests++;
    if (!passed) {
        failures++;
    }
    printf("%sok %d - %s\n", passed ? "" : "not ", tests, name);
}


/* RFC 7515 A.1 and RFC 7519 3.1 */
static const char  hs256_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char  hs256_key[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h"
    "cgUuTwjAzZr1Z9CAow";

/* RFC 7515 A.3 */
static const char  es256_token[] =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ"
    "xfKTUJqPP3-Kg6NU1Q";
static const char  es256_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char  es256_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

#define RFC_BEFORE_EXP  1300819300
#define RFC_AFTER_EXP   1300819381


static EVP_PKEY *
es256_public_key(void)
{
    unsigned char    point[65];
    OSSL_PARAM_BLD  *bld;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    EVP_PKEY        *key;

    point[0] = 0x04;
    recovery_base64url_decode(es256_x, strlen(es256_x), point + 1);
    recovery_base64url_decode(es256_y, strlen(es256_y), point + 33);

    key = NULL;
    bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                    "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                     point, sizeof(point));
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    if (EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        key = NULL;
    }

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);

    return key;
}


static int
verifies(const recovery_jwt_verifier_t *v, const char *token, time_t now,
    const char *expected_error)
{
    const char   *error;
    json_object  *claims;

    error = NULL;
    claims = recovery_jwt_verify(v, token, strlen(token), now, &error);

    if (claims) {
        json_object_put(claims);
        return expected_error == NULL;
    }

    if (expected_error == NULL || strcmp(error, expected_error) != 0) {
        printf("# error: %s\n", error);
        return 0;
    }

    return 1;
}


static char *
signed_hs256(const char *header, const char *payload, const char *secret)
{
    char           *token;
    size_t          n;
    unsigned char   mac[32];
    unsigned int    mac_len;

    token = malloc(strlen(header) * 2 + strlen(payload) * 2 + 64);
    n = recovery_base64url_encode((const unsigned char *) header,
                                  strlen(header), token);
    token[n++] = '.';
    n += recovery_base64url_encode((const unsigned char *) payload,
                                   strlen(payload), token + n);
    HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) token,
         n, mac, &mac_len);
    token[n++] = '.';
    recovery_base64url_encode(mac, mac_len, token + n);

    return token;
}


static void
test_base64url(void)
{
    static const char  *plain[] = { "", "f", "fo", "foo", "foob", "fooba",
                                    "foobar" };
    static const char  *coded[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
                                    "Zm9vYmE", "Zm9vYmFy" };
    static const unsigned char  url_bytes[] = { 0xfb, 0xff, 0xbf };
    char           out[64], name[80];
    unsigned char  raw[64];
    long           n;
    size_t         i;

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        recovery_base64url_encode((const unsigned char *) plain[i],
                                  strlen(plain[i]), out);
        snprintf(name, sizeof(name), "base64url encodes \"%s\" as \"%s\"",
                 plain[i], coded[i]);
        ok(strcmp(out, coded[i]) == 0, name);

        n = recovery_base64url_decode(coded[i], strlen(coded[i]), raw);
        snprintf(name, sizeof(name), "base64url decodes \"%s\"", coded[i]);
        ok(n == (long) strlen(plain[i]) && memcmp(raw, plain[i], n) == 0,
           name);
    }

    recovery_base64url_encode(url_bytes, sizeof(url_bytes), out);
    ok(strcmp(out, "-_-_") == 0, "base64url uses - and _ instead of + and /");

    ok(recovery_base64url_decode("Zg==", 4, raw) == -1,
       "base64url refuses padding");
    ok(recovery_base64url_decode("Z", 1, raw) == -1,
       "base64url refuses a lone trailing character");
    ok(recovery_base64url_decode("Zh", 2, raw) == -1,
       "base64url refuses non-zero unused bits (non-canonical)");
    ok(recovery_base64url_decode("+/8", 3, raw) == -1,
       "base64url refuses the standard alphabet's + and /");
    ok(recovery_base64url_decode("Zm9v\0YmFy", 9, raw) == -1,
       "base64url refuses a NUL byte");
}


static void
test_rfc_examples(void)
{
    recovery_jwt_verifier_t  v;
    unsigned char            secret[64];
    const char              *error;
    json_object             *claims, *field;
    long                     n;

    n = recovery_base64url_decode(hs256_key, strlen(hs256_key), secret);
    ok(n == 64, "RFC 7515 A.1 key decodes to 64 bytes");

    memset(&v, 0, sizeof(v));
    v.algorithms = RECOVERY_JWT_HS256;
    v.secret = secret;
    v.secret_len = (size_t) n;
    v.issuer = "joe";

    claims = recovery_jwt_verify(&v, hs256_token, strlen(hs256_token),
                                 RFC_BEFORE_EXP, &error);
    ok(claims != NULL, "RFC 7515 A.1 / RFC 7519 3.1 HS256 token verifies");
    ok(claims != NULL
       && json_object_object_get_ex(claims, "http://example.com/is_root",
                                    &field)
       && json_object_get_boolean(field),
       "its claims are returned (is_root is true)");
    json_object_put(claims);

    ok(verifies(&v, hs256_token, RFC_AFTER_EXP, "token has expired"),
       "the same token is refused one second after exp");

    v.leeway = 60;
    ok(verifies(&v, hs256_token, RFC_AFTER_EXP + 30, NULL),
       "a leeway of 60 s still accepts it 31 s after exp");
    v.leeway = 0;

    v.issuer = "mallory";
    ok(verifies(&v, hs256_token, RFC_BEFORE_EXP,
                "token issuer is not accepted"),
       "a configured issuer that differs is refused");
    v.issuer = NULL;

    v.audience = "recovery";
    ok(verifies(&v, hs256_token, RFC_BEFORE_EXP,
                "token audience is not accepted"),
       "a configured audience that the token lacks is refused");
    v.audience = NULL;

    v.secret_len--;
    ok(verifies(&v, hs256_token, RFC_BEFORE_EXP,
                "token signature is invalid"),
       "a different HS256 secret is refused");
    v.secret_len++;

    v.algorithms = RECOVERY_JWT_RS256 | RECOVERY_JWT_ES256;
    ok(verifies(&v, hs256_token, RFC_BEFORE_EXP,
                "token algorithm is not allowed"),
       "HS256 is refused when it is not in the allowlist");

    memset(&v, 0, sizeof(v));
    v.algorithms = RECOVERY_JWT_ES256;
    v.public_key = es256_public_key();
    ok(v.public_key != NULL, "RFC 7515 A.3 P-256 public key loads");
    ok(verifies(&v, es256_token, RFC_BEFORE_EXP, NULL),
       "RFC 7515 A.3 ES256 token verifies");

    {
        char  forged[sizeof(es256_token)];

        memcpy(forged, es256_token, sizeof(es256_token));
        forged[sizeof(es256_token) - 3] ^= 0x01;
        ok(verifies(&v, forged, RFC_BEFORE_EXP, "token signature is invalid"),
           "ES256 token with one signature bit changed is refused");
    }

    EVP_PKEY_free(v.public_key);
}


static void
test_attacks(void)
{
    static const char        secret[] = "a-secret-of-the-right-length-32b";
    recovery_jwt_verifier_t  v;
    EVP_PKEY                *rsa;
    BIO                     *bio;
    char                    *pem, *token, *p;
    long                     pem_len;
    char                     big[RECOVERY_JWT_MAX_LEN + 2];

    memset(&v, 0, sizeof(v));
    v.algorithms = RECOVERY_JWT_HS256;
    v.secret = (const unsigned char *) secret;
    v.secret_len = strlen(secret);

    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"sub\":\"1\",\"exp\":2000000000}", secret);
    ok(verifies(&v, token, 1700000000, NULL),
       "a token signed with the configured secret verifies");

    /* change the payload but keep the signature */
    p = strchr(token, '.') + 1;
    *p = (*p == 'e') ? 'f' : 'e';
    ok(verifies(&v, token, 1700000000, "token signature is invalid"),
       "a token whose payload was changed is refused");
    free(token);

    ok(verifies(&v,
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwiZXhwIjoyMDAwMDAwMDAwfQ.",
                1700000000, "token algorithm is not allowed"),
       "alg none is refused");

    token = signed_hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"1\"}", secret);
    ok(verifies(&v, token, 1700000000, "token has no numeric exp claim"),
       "a token without exp is refused");
    free(token);

    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"exp\":\"2000000000\"}", secret);
    ok(verifies(&v, token, 1700000000, "token has no numeric exp claim"),
       "a token whose exp is a string is refused");
    free(token);

    {
        /* numbers JSON has not, which json-c reads: tokens that never expire */
        static const char *never[][2] = {
            { "{\"exp\":NaN}", "token has no numeric exp claim" },
            { "{\"exp\":Infinity}", "token has no numeric exp claim" },
            { "{\"exp\":1e400}", "token has no numeric exp claim" },
            { "{\"exp\":2000000000,\"nbf\":NaN}", "token nbf claim is not a number" },
        };
        size_t  i;

        for (i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
            token = signed_hs256("{\"alg\":\"HS256\"}", never[i][0], secret);
            ok(verifies(&v, token, 1700000000, never[i][1]),
               "a claim of NaN, Infinity or 1e400 is refused");
            free(token);
        }
    }

    {
        /* claims are C strings: a NUL would cut them short */
        static const char *cut[] = {
            "{\"exp\":2000000000,\"role\":\"recovery_admin\\u0000-readonly\"}",
            "{\"exp\":2000000000,\"sub\":\"5\\u00001\"}",
            "{\"exp\":2000000000,\"email\":\"admin@demo.example\\u0000@evil\"}",
            "{\"exp\":2000000000,\"role\":\"recovery_viewer\",\"role\\u0000\":\"recovery_admin\"}",
        };
        size_t  i;

        for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
            token = signed_hs256("{\"alg\":\"HS256\"}", cut[i], secret);
            ok(verifies(&v, token, 1700000000,
                        "token claims hold a NUL character"),
               "a claim or key with a NUL character is refused");
            free(token);
        }

        token = signed_hs256("{\"alg\":\"HS256\\u0000x\"}",
                             "{\"exp\":2000000000}", secret);
        ok(verifies(&v, token, 1700000000,
                    "token header holds a NUL character"),
           "so is a header with one");
        free(token);

        token = signed_hs256("{\"alg\":\"HS256\"}",
                             "{\"exp\":2000000000,\"note\":\"a \\\\u0000 is text\"}", secret);
        ok(verifies(&v, token, 1700000000, NULL),
           "an escaped backslash before u0000 is text, not a NUL");
        free(token);
    }

    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"exp\":2000000000,\"nbf\":1700000100}", secret);
    ok(verifies(&v, token, 1700000000, "token is not valid yet"),
       "a token used before nbf is refused");
    v.leeway = 120;
    ok(verifies(&v, token, 1700000000, NULL),
       "a token 100 s before nbf passes with a leeway of 120 s");
    v.leeway = 0;
    free(token);

    v.audience = "recovery";
    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"exp\":2000000000,\"aud\":[\"other\",\"recovery\"]}",
                         secret);
    ok(verifies(&v, token, 1700000000, NULL),
       "an audience array that holds the configured audience passes");
    free(token);
    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"exp\":2000000000,\"aud\":\"other\"}", secret);
    ok(verifies(&v, token, 1700000000, "token audience is not accepted"),
       "another audience is refused");
    free(token);
    v.audience = NULL;

    token = signed_hs256("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                         "{\"exp\":2000000000}", secret);
    ok(verifies(&v, token, 1700000000,
                "token has critical header parameters"),
       "a crit header is refused");
    free(token);

    token = signed_hs256("{\"alg\":\"HS256\"}", "[1,2]", secret);
    ok(verifies(&v, token, 1700000000,
                "token claims are not a base64url JSON object"),
       "claims that are not an object are refused");
    free(token);

    ok(verifies(&v, "a.b.c.d", 1700000000,
                "token is not a compact JWS (three parts)"),
       "four parts are refused");
    ok(verifies(&v, "abc", 1700000000,
                "token is not a compact JWS (three parts)"),
       "one part is refused");

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ok(verifies(&v, big, 1700000000, "token is empty or too long"),
       "a token over the size limit is refused");

    /* HS256 keyed with the RSA public key that verifies RS256 tokens */
    rsa = EVP_RSA_gen(2048);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    pem_len = BIO_get_mem_data(bio, &pem);
    pem[pem_len - 1] = '\0';

    v.algorithms = RECOVERY_JWT_RS256;
    v.public_key = rsa;
    v.secret = NULL;
    token = signed_hs256("{\"alg\":\"HS256\"}", "{\"exp\":2000000000}", pem);
    ok(verifies(&v, token, 1700000000, "token algorithm is not allowed"),
       "HS256 signed with the RSA public key is refused (RS256 only)");

    v.algorithms = RECOVERY_JWT_RS256 | RECOVERY_JWT_HS256;
    v.secret = (const unsigned char *) secret;
    ok(verifies(&v, token, 1700000000, "token signature is invalid"),
       "and refused when HS256 is also allowed with its own secret");
    free(token);
    BIO_free(bio);

    {
        json_object  *claims;

        claims = json_object_new_object();
        json_object_object_add(claims, "sub", json_object_new_string("7"));
        json_object_object_add(claims, "exp",
                               json_object_new_int64(2000000000));

        token = recovery_jwt_sign(RECOVERY_JWT_RS256, NULL, 0, NULL, rsa,
                                  claims);
        ok(token && verifies(&v, token, 1700000000, NULL),
           "an RS256 token signed with the private key verifies");
        free(token);

        token = recovery_jwt_sign(RECOVERY_JWT_HS256,
                                  (const unsigned char *) secret,
                                  strlen(secret), NULL, NULL, claims);
        ok(token && verifies(&v, token, 1700000000, NULL),
           "an HS256 token minted by recovery_jwt_sign verifies");
        free(token);

        EVP_PKEY_free(rsa);

        v.algorithms = RECOVERY_JWT_ES256;
        v.public_key = EVP_EC_gen("prime256v1");
        token = recovery_jwt_sign(RECOVERY_JWT_ES256, NULL, 0, NULL,
                                  v.public_key, claims);
        ok(token && strlen(strrchr(token, '.') + 1) == 86
           && verifies(&v, token, 1700000000, NULL),
           "an ES256 token is signed as r || s (64 bytes) and verifies");
        free(token);
        EVP_PKEY_free(v.public_key);

        json_object_put(claims);
    }
}


/* HS256 key rotation: the current and the previous secret, told by "kid" */
static void
test_rotation(void)
{
    static const char        current[] = "the-current-secret-of-32-bytes-ok";
    static const char        previous[] = "the-previous-secret-of-32-bytes!";
    recovery_jwt_verifier_t  v;
    json_object             *claims;
    char                    *token, header[128];

    memset(&v, 0, sizeof(v));
    v.algorithms = RECOVERY_JWT_HS256;
    v.secret = (const unsigned char *) current;
    v.secret_len = strlen(current);
    recovery_jwt_key_id(v.secret, v.secret_len, v.kid);
    v.previous_secret = (const unsigned char *) previous;
    v.previous_secret_len = strlen(previous);
    recovery_jwt_key_id(v.previous_secret, v.previous_secret_len,
                        v.previous_kid);

    ok(strlen(v.kid) == RECOVERY_JWT_KID_LEN && strcmp(v.kid, v.previous_kid) != 0,
       "each secret has a key id of its own");

    claims = json_tokener_parse("{\"sub\":\"1\",\"exp\":2000000000}");
    token = recovery_jwt_sign(RECOVERY_JWT_HS256, v.secret, v.secret_len,
                              v.kid, NULL, claims);
    json_object_put(claims);
    ok(token != NULL && verifies(&v, token, 1700000000, NULL),
       "a token signed with the current secret and its kid verifies");
    free(token);

    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"sub\":\"1\",\"exp\":2000000000}", previous);
    ok(verifies(&v, token, 1700000000, NULL),
       "a token of the previous secret without kid verifies during the rotation");
    free(token);

    snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
             v.previous_kid);
    token = signed_hs256(header, "{\"sub\":\"1\",\"exp\":2000000000}",
                         previous);
    ok(verifies(&v, token, 1700000000, NULL),
       "and one that names the previous key");
    free(token);

    snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
             v.kid);
    token = signed_hs256(header, "{\"sub\":\"1\",\"exp\":2000000000}",
                         previous);
    ok(verifies(&v, token, 1700000000, "token signature is invalid"),
       "a token that names the current key but was signed with the previous is refused");
    free(token);

    token = signed_hs256("{\"alg\":\"HS256\",\"kid\":\"0000000000000000\"}",
                         "{\"sub\":\"1\",\"exp\":2000000000}", current);
    ok(verifies(&v, token, 1700000000, "token signature is invalid"),
       "a token that names an unknown key is refused");
    free(token);

    token = signed_hs256("{\"alg\":\"HS256\",\"kid\":7}",
                         "{\"sub\":\"1\",\"exp\":2000000000}", current);
    ok(verifies(&v, token, 1700000000, "token key id is not a string"),
       "a kid that is not a string is refused");
    free(token);

    v.previous_secret = NULL;
    v.previous_secret_len = 0;
    token = signed_hs256("{\"alg\":\"HS256\"}",
                         "{\"sub\":\"1\",\"exp\":2000000000}", previous);
    ok(verifies(&v, token, 1700000000, "token signature is invalid"),
       "once the rotation is over, the previous secret's tokens are refused");
    free(token);
}


int
main(void)
{
    test_base64url();
    test_rfc_examples();
    test_attacks();
    test_rotation();

    printf("1..%d\n", tests);

    return failures ? 1 : 0;
}
