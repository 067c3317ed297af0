
/*
 * JWT verification and signing: the only place that decides whether a
 * bearer token is genuine.  Algorithms come from an explicit allowlist and
 * each has its own kind of key, so a token cannot choose how it is checked
 * ("alg": "none", or HS256 keyed with an RSA public key, both fail).
 */

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/bn.h>

#include "ngx_http_recovery_jwt.h"


#define RECOVERY_JWT_MAX_DEPTH  16
#define RECOVERY_ES256_SIZE     32


static json_object *recovery_jwt_decode_json(const char *in, size_t len,
    int *nul);
static int recovery_jwt_escapes_nul(const unsigned char *json, size_t n);
static int recovery_jwt_check_signature(const recovery_jwt_verifier_t *v,
    unsigned alg, const char *kid, const char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len);
static int recovery_jwt_check_claims(const recovery_jwt_verifier_t *v,
    json_object *claims, time_t now, const char **error);
static int recovery_jwt_number(json_object *claims, const char *name,
    double *value);


static const signed char  recovery_base64url_alphabet[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64
};


long
recovery_base64url_decode(const char *in, size_t len, unsigned char *out)
{
    size_t    i, n;
    unsigned  bits, value;
    int       nbits;

    /* a single character left over can never encode a whole byte */
    if (len % 4 == 1) {
        return -1;
    }

    n = 0;
    bits = 0;
    nbits = 0;

    for (i = 0; i < len; i++) {
        value = (unsigned) recovery_base64url_alphabet[(unsigned char) in[i]];
        if (value == 0) {
            return -1;
        }

        bits = (bits << 6) | (value - 1);
        nbits += 6;

        if (nbits >= 8) {
            nbits -= 8;
            out[n++] = (unsigned char) (bits >> nbits);
            bits &= (1u << nbits) - 1;
        }
    }

    /* the unused low bits of the last character must be zero (canonical) */
    if (bits != 0) {
        return -1;
    }

    return (long) n;
}


size_t
recovery_base64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t    i, n;
    unsigned  bits;
    int       nbits;

    n = 0;
    bits = 0;
    nbits = 0;

    for (i = 0; i < len; i++) {
        bits = (bits << 8) | in[i];
        nbits += 8;

        while (nbits >= 6) {
            nbits -= 6;
            out[n++] = alphabet[(bits >> nbits) & 0x3f];
        }
    }

    if (nbits > 0) {
        out[n++] = alphabet[(bits << (6 - nbits)) & 0x3f];
    }

    out[n] = '\0';

    return n;
}


unsigned
recovery_jwt_algorithm(const char *name)
{
    if (strcmp(name, "HS256") == 0) {
        return RECOVERY_JWT_HS256;
    }

    if (strcmp(name, "RS256") == 0) {
        return RECOVERY_JWT_RS256;
    }

    if (strcmp(name, "ES256") == 0) {
        return RECOVERY_JWT_ES256;
    }

    return 0;
}


json_object *
recovery_jwt_verify(const recovery_jwt_verifier_t *v, const char *token,
    size_t len, time_t now, const char **error)
{
    const char     *dot1, *dot2, *end;
    unsigned char   sig[512];
    long            sig_len;
    unsigned        alg;
    json_object    *header, *claims, *field;
    const char     *typ, *kid;
    int             nul;

    header = NULL;
    claims = NULL;
    end = token + len;

    if (len == 0 || len > RECOVERY_JWT_MAX_LEN) {
        *error = "token is empty or too long";
        return NULL;
    }

    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', end - dot1 - 1) : NULL;

    if (dot2 == NULL || memchr(dot2 + 1, '.', end - dot2 - 1) != NULL) {
        *error = "token is not a compact JWS (three parts)";
        return NULL;
    }

    header = recovery_jwt_decode_json(token, dot1 - token, &nul);
    if (header == NULL) {
        *error = nul ? "token header holds a NUL character"
                     : "token header is not base64url JSON";
        goto failed;
    }

    if (!json_object_object_get_ex(header, "alg", &field)
        || !json_object_is_type(field, json_type_string))
    {
        *error = "token header has no alg";
        goto failed;
    }

    alg = recovery_jwt_algorithm(json_object_get_string(field));
    if (alg == 0 || (v->algorithms & alg) == 0) {
        *error = "token algorithm is not allowed";
        goto failed;
    }

    if (json_object_object_get_ex(header, "typ", &field)) {
        typ = json_object_get_string(field);
        if (typ == NULL || strcasecmp(typ, "JWT") != 0) {
            *error = "token type is not JWT";
            goto failed;
        }
    }

    /* extensions we do not understand must not be ignored (RFC 7515 4.1.11) */
    if (json_object_object_get_ex(header, "crit", NULL)) {
        *error = "token has critical header parameters";
        goto failed;
    }

    if ((size_t) (end - dot2 - 1) > sizeof(sig) * 4 / 3) {
        *error = "token signature is too long";
        goto failed;
    }

    sig_len = recovery_base64url_decode(dot2 + 1, end - dot2 - 1, sig);
    if (sig_len <= 0) {
        *error = "token signature is not base64url";
        goto failed;
    }

    kid = NULL;
    if (json_object_object_get_ex(header, "kid", &field)) {
        kid = json_object_get_string(field);
        if (!json_object_is_type(field, json_type_string)) {
            *error = "token key id is not a string";
            goto failed;
        }
    }

    if (recovery_jwt_check_signature(v, alg, kid, token, dot2 - token,
                                     sig, (size_t) sig_len)
        != 0)
    {
        *error = "token signature is invalid";
        goto failed;
    }

    claims = recovery_jwt_decode_json(dot1 + 1, dot2 - dot1 - 1, &nul);
    if (claims == NULL) {
        *error = nul ? "token claims hold a NUL character"
                     : "token claims are not a base64url JSON object";
        goto failed;
    }

    if (recovery_jwt_check_claims(v, claims, now, error) != 0) {
        goto failed;
    }

    json_object_put(header);

    return claims;

failed:

    json_object_put(header);
    json_object_put(claims);

    return NULL;
}


static json_object *
recovery_jwt_decode_json(const char *in, size_t len, int *nul)
{
    unsigned char  *decoded;
    long            n;
    json_tokener   *tok;
    json_object    *obj;

    decoded = malloc(len * 3 / 4 + 1);
    if (decoded == NULL) {
        return NULL;
    }

    obj = NULL;
    tok = NULL;

    *nul = 0;

    n = recovery_base64url_decode(in, len, decoded);
    if (n <= 0) {
        goto done;
    }

    if (recovery_jwt_escapes_nul(decoded, (size_t) n)) {
        *nul = 1;
        goto done;
    }

    tok = json_tokener_new_ex(RECOVERY_JWT_MAX_DEPTH);
    if (tok == NULL) {
        goto done;
    }

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    obj = json_tokener_parse_ex(tok, (char *) decoded, (int) n);

    if (json_tokener_get_error(tok) != json_tokener_success
        || json_tokener_get_parse_end(tok) != (size_t) n
        || !json_object_is_type(obj, json_type_object))
    {
        json_object_put(obj);
        obj = NULL;
    }

done:

    if (tok) {
        json_tokener_free(tok);
    }

    free(decoded);

    return obj;
}


/*
 * Whether the JSON text escapes a NUL (\u0000) in a string or a key.  Claims
 * are used as C strings, and json-c keeps keys as C strings:
 * "recovery_admin\u0000-readonly" would be read as "recovery_admin", "5\u00001"
 * as user 5, and a key "role\u0000" would replace "role".  A backslash
 * escapes a NUL only when it is not itself escaped.
 */
static int
recovery_jwt_escapes_nul(const unsigned char *json, size_t n)
{
    size_t  i, backslashes;

    backslashes = 0;

    for (i = 0; i < n; i++) {
        if (json[i] == '\\') {
            backslashes++;
            continue;
        }

        if (backslashes % 2 == 1 && json[i] == 'u' && i + 4 < n
            && json[i + 1] == '0' && json[i + 2] == '0'
            && json[i + 3] == '0' && json[i + 4] == '0')
        {
            return 1;
        }

        backslashes = 0;
    }

    return 0;
}


/* HS256: whether sig is the MAC of input under secret */
static int
recovery_jwt_check_hmac(const unsigned char *secret, size_t secret_len,
    const char *input, size_t input_len, const unsigned char *sig,
    size_t sig_len)
{
    unsigned char   mac[EVP_MAX_MD_SIZE];
    unsigned int    mac_len;

    if (secret == NULL
        || HMAC(EVP_sha256(), secret, (int) secret_len,
                (const unsigned char *) input, input_len, mac, &mac_len)
           == NULL)
    {
        return -1;
    }

    return (sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0)
           ? 0 : -1;
}


static int
recovery_jwt_check_signature(const recovery_jwt_verifier_t *v, unsigned alg,
    const char *kid, const char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len)
{
    int             rc;
    unsigned char   der[128], *p;
    int             der_len;
    EVP_MD_CTX     *md;
    ECDSA_SIG      *ecdsa;
    BIGNUM         *r, *s;
    char            group[64];

    if (alg == RECOVERY_JWT_HS256) {
        /*
         * During a rotation the previous secret verifies too: the key the
         * token names, or, for a token that names none, either.
         */
        if (kid == NULL || strcmp(kid, v->kid) == 0) {
            if (recovery_jwt_check_hmac(v->secret, v->secret_len, input,
                                        input_len, sig, sig_len)
                == 0)
            {
                return 0;
            }
        }

        if (v->previous_secret != NULL
            && (kid == NULL || strcmp(kid, v->previous_kid) == 0))
        {
            return recovery_jwt_check_hmac(v->previous_secret,
                                           v->previous_secret_len, input,
                                           input_len, sig, sig_len);
        }

        return -1;
    }

    if (v->public_key == NULL) {
        return -1;
    }

    if (alg == RECOVERY_JWT_RS256) {
        if (EVP_PKEY_base_id(v->public_key) != EVP_PKEY_RSA) {
            return -1;
        }

        p = (unsigned char *) sig;
        der_len = (int) sig_len;

    } else {
        /* ES256 signs with P-256 and sends r || s, not DER */
        if (EVP_PKEY_base_id(v->public_key) != EVP_PKEY_EC
            || EVP_PKEY_get_group_name(v->public_key, group, sizeof(group),
                                       NULL) != 1
            || strcmp(group, "prime256v1") != 0
            || sig_len != 2 * RECOVERY_ES256_SIZE)
        {
            return -1;
        }

        ecdsa = ECDSA_SIG_new();
        r = BN_bin2bn(sig, RECOVERY_ES256_SIZE, NULL);
        s = BN_bin2bn(sig + RECOVERY_ES256_SIZE, RECOVERY_ES256_SIZE, NULL);

        if (ecdsa == NULL || r == NULL || s == NULL
            || ECDSA_SIG_set0(ecdsa, r, s) != 1)
        {
            ECDSA_SIG_free(ecdsa);
            BN_free(r);
            BN_free(s);
            return -1;
        }

        p = der;
        der_len = i2d_ECDSA_SIG(ecdsa, &p);
        ECDSA_SIG_free(ecdsa);

        if (der_len <= 0 || der_len > (int) sizeof(der)) {
            return -1;
        }

        p = der;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return -1;
    }

    rc = (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, v->public_key)
          == 1
          && EVP_DigestVerify(md, p, der_len, (const unsigned char *) input,
                              input_len) == 1)
         ? 0 : -1;

    EVP_MD_CTX_free(md);

    return rc;
}


static int
recovery_jwt_check_claims(const recovery_jwt_verifier_t *v,
    json_object *claims, time_t now, const char **error)
{
    double        exp, nbf;
    json_object  *field, *item;
    size_t        i, n;
    int           found;

    /* a token without an expiry would be valid for ever */
    if (recovery_jwt_number(claims, "exp", &exp) != 0) {
        *error = "token has no numeric exp claim";
        return -1;
    }

    if ((double) now > exp + (double) v->leeway) {
        *error = "token has expired";
        return -1;
    }

    if (json_object_object_get_ex(claims, "nbf", NULL)) {
        if (recovery_jwt_number(claims, "nbf", &nbf) != 0) {
            *error = "token nbf claim is not a number";
            return -1;
        }

        if ((double) now + (double) v->leeway < nbf) {
            *error = "token is not valid yet";
            return -1;
        }
    }

    if (v->issuer) {
        if (!json_object_object_get_ex(claims, "iss", &field)
            || !json_object_is_type(field, json_type_string)
            || strcmp(json_object_get_string(field), v->issuer) != 0)
        {
            *error = "token issuer is not accepted";
            return -1;
        }
    }

    if (v->audience) {
        found = 0;

        if (json_object_object_get_ex(claims, "aud", &field)) {
            if (json_object_is_type(field, json_type_string)) {
                found = strcmp(json_object_get_string(field), v->audience)
                        == 0;

            } else if (json_object_is_type(field, json_type_array)) {
                n = json_object_array_length(field);

                for (i = 0; i < n && !found; i++) {
                    item = json_object_array_get_idx(field, i);
                    found = json_object_is_type(item, json_type_string)
                            && strcmp(json_object_get_string(item),
                                      v->audience) == 0;
                }
            }
        }

        if (!found) {
            *error = "token audience is not accepted";
            return -1;
        }
    }

    return 0;
}


static int
recovery_jwt_number(json_object *claims, const char *name, double *value)
{
    json_object  *field;

    if (!json_object_object_get_ex(claims, name, &field)) {
        return -1;
    }

    if (json_object_is_type(field, json_type_int)) {
        *value = (double) json_object_get_int64(field);
        return 0;
    }

    /* json-c reads NaN, Infinity and 1e400, which JSON has not: no expiry */
    if (json_object_is_type(field, json_type_double)) {
        *value = json_object_get_double(field);
        return isfinite(*value) ? 0 : -1;
    }

    return -1;
}


void
recovery_jwt_key_id(const unsigned char *secret, size_t len, char *kid)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      digest[32];
    int                i;

    SHA256(secret, len, digest);

    for (i = 0; i < RECOVERY_JWT_KID_LEN / 2; i++) {
        kid[2 * i] = hex[digest[i] >> 4];
        kid[2 * i + 1] = hex[digest[i] & 0x0f];
    }

    kid[RECOVERY_JWT_KID_LEN] = '\0';
}


char *
recovery_jwt_sign(unsigned algorithm, const unsigned char *secret,
    size_t secret_len, const char *kid, EVP_PKEY *private_key,
    json_object *claims)
{
    const char     *header, *payload;
    char            with_kid[128];
    char           *token;
    size_t          header_len, payload_len, n, sig_len, room;
    unsigned char   sig[1024], *der;
    unsigned int    mac_len;
    EVP_MD_CTX     *md;
    ECDSA_SIG      *ecdsa;
    const BIGNUM   *r, *s;
    const unsigned char  *p;

    switch (algorithm) {
    case RECOVERY_JWT_HS256:
        header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        break;
    case RECOVERY_JWT_RS256:
        header = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
        break;
    case RECOVERY_JWT_ES256:
        header = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
        break;
    default:
        return NULL;
    }

    if (kid != NULL) {
        /* {"alg":...,"typ":"JWT","kid":"..."}: kid is hex, nothing to escape */
        if (snprintf(with_kid, sizeof(with_kid), "%.*s,\"kid\":\"%s\"}",
                     (int) strlen(header) - 1, header, kid)
            >= (int) sizeof(with_kid))
        {
            return NULL;
        }

        header = with_kid;
    }

    payload = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN);
    header_len = strlen(header);
    payload_len = strlen(payload);

    room = (header_len + payload_len + sizeof(sig)) * 4 / 3 + 8;
    token = malloc(room);
    if (token == NULL) {
        return NULL;
    }

    n = recovery_base64url_encode((const unsigned char *) header, header_len,
                                  token);
    token[n++] = '.';
    n += recovery_base64url_encode((const unsigned char *) payload,
                                   payload_len, token + n);

    if (algorithm == RECOVERY_JWT_HS256) {
        if (secret == NULL
            || HMAC(EVP_sha256(), secret, (int) secret_len,
                    (unsigned char *) token, n, sig, &mac_len) == NULL)
        {
            goto failed;
        }

        sig_len = mac_len;

    } else {
        if (private_key == NULL) {
            goto failed;
        }

        md = EVP_MD_CTX_new();
        sig_len = sizeof(sig);

        if (md == NULL
            || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, private_key)
               != 1
            || EVP_DigestSign(md, sig, &sig_len, (unsigned char *) token, n)
               != 1)
        {
            EVP_MD_CTX_free(md);
            goto failed;
        }

        EVP_MD_CTX_free(md);

        if (algorithm == RECOVERY_JWT_ES256) {
            /* OpenSSL returns DER; JWS wants r || s, each 32 bytes */
            p = sig;
            ecdsa = d2i_ECDSA_SIG(NULL, &p, (long) sig_len);
            if (ecdsa == NULL) {
                goto failed;
            }

            ECDSA_SIG_get0(ecdsa, &r, &s);
            der = sig;
            if (BN_bn2binpad(r, der, RECOVERY_ES256_SIZE) < 0
                || BN_bn2binpad(s, der + RECOVERY_ES256_SIZE,
                                RECOVERY_ES256_SIZE) < 0)
            {
                ECDSA_SIG_free(ecdsa);
                goto failed;
            }

            ECDSA_SIG_free(ecdsa);
            sig_len = 2 * RECOVERY_ES256_SIZE;
        }
    }

    token[n++] = '.';
    recovery_base64url_encode(sig, sig_len, token + n);

    return token;

failed:

    free(token);

    return NULL;
}
