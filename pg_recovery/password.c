/*
 * password.c
 *		Passwords of recovery.users and API keys, with OpenSSL.
 *
 * Passwords are stored as "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>"
 * (PBKDF2-HMAC-SHA256, 16-byte random salt per user) and compared in
 * constant time.  API keys are 256 random bits, so a plain SHA-256 of the
 * key is enough to store; only its first characters are kept in clear to
 * tell keys apart.
 */
#include "recovery.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#define SALT_LEN		16
#define KEY_LEN			32
#define API_KEY_BYTES	32
#define API_KEY_PREFIX	"rk_"
#define MIN_PASSWORD_LEN 10
#define MAX_PASSWORD_LEN 1024

static int	password_iterations = 600000;

void
recovery_define_password_gucs(void)
{
	DefineCustomIntVariable("recovery.password_iterations",
							"PBKDF2-HMAC-SHA256 iterations for new password hashes.",
							"Existing hashes keep the count they were made with.",
							&password_iterations, 600000, 1000, 10000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

static void
pbkdf2(const char *password, const uint8 *salt, int iterations, uint8 *out)
{
	if (PKCS5_PBKDF2_HMAC(password, strlen(password), salt, SALT_LEN,
						  iterations, EVP_sha256(), KEY_LEN, out) != 1)
		elog(ERROR, "PBKDF2 failed");
}

static void
random_bytes(uint8 *buf, int len)
{
	if (RAND_bytes(buf, len) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
}

static char *
to_hex(const uint8 *bytes, int len)
{
	char	   *hex = palloc(len * 2 + 1);

	hex_encode((const char *) bytes, len, hex);
	hex[len * 2] = '\0';
	return hex;
}

static bool
from_hex(const char *hex, uint8 *out, int len)
{
	int			i;

	if (strlen(hex) != (size_t) len * 2)
		return false;
	for (i = 0; i < len * 2; i++)
		if (!isxdigit((unsigned char) hex[i]))
			return false;
	hex_decode(hex, len * 2, (char *) out);
	return true;
}

static void
check_password_acceptable(const char *password)
{
	size_t		len = strlen(password);

	if (len < MIN_PASSWORD_LEN || len > MAX_PASSWORD_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a password has from %d to %d bytes", MIN_PASSWORD_LEN,
						MAX_PASSWORD_LEN),
				 errdetail("The password given has %zu bytes.", len),
				 errhint("A passphrase of several words is long enough and easy to type.")));
}

/* The stored form of a password; see the file header. */
static char *
hash_password(const char *password)
{
	uint8		salt[SALT_LEN];
	uint8		key[KEY_LEN];

	random_bytes(salt, SALT_LEN);
	pbkdf2(password, salt, password_iterations, key);
	return psprintf("pbkdf2-sha256$%d$%s$%s", password_iterations,
					to_hex(salt, SALT_LEN), to_hex(key, KEY_LEN));
}

/*
 * Whether "password" matches "stored".  A malformed stored hash matches
 * nothing; the work is done even then so that timing tells nothing.
 */
static bool
check_password(const char *password, const char *stored)
{
	uint8		salt[SALT_LEN] = {0};
	uint8		expected[KEY_LEN] = {0};
	uint8		key[KEY_LEN];
	char		salt_hex[SALT_LEN * 2 + 1];
	char		key_hex[KEY_LEN * 2 + 1];
	int			iterations = 0;
	bool		well_formed;

	well_formed = stored != NULL &&
		sscanf(stored, "pbkdf2-sha256$%d$%32[0-9a-f]$%64[0-9a-f]",
			   &iterations, salt_hex, key_hex) == 3 &&
		iterations >= 1000 && iterations <= 10000000 &&
		from_hex(salt_hex, salt, SALT_LEN) &&
		from_hex(key_hex, expected, KEY_LEN);
	if (!well_formed)
		iterations = password_iterations;

	pbkdf2(password, salt, iterations, key);
	return CRYPTO_memcmp(key, expected, KEY_LEN) == 0 && well_formed;
}

PG_FUNCTION_INFO_V1(recovery_password_hash);
PG_FUNCTION_INFO_V1(recovery_password_check);
PG_FUNCTION_INFO_V1(recovery_login);
PG_FUNCTION_INFO_V1(recovery_api_key_create);
PG_FUNCTION_INFO_V1(recovery_api_key_authenticate);

/* recovery.password_hash(password) returns text */
Datum
recovery_password_hash(PG_FUNCTION_ARGS)
{
	char	   *password = text_to_cstring(PG_GETARG_TEXT_PP(0));

	check_password_acceptable(password);
	PG_RETURN_TEXT_P(cstring_to_text(hash_password(password)));
}

/* recovery.password_check(password, stored_hash) returns boolean */
Datum
recovery_password_check(PG_FUNCTION_ARGS)
{
	char	   *password = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *stored = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_BOOL(check_password(password, stored));
}

static void
authentication_failed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_AUTH_FAILED),
			 errmsg("invalid email or password"),
			 errhint("Check both, or ask an administrator to reset the password.")));
}

/*
 * recovery.login(email, password)
 *		returns (user_id, email, display_name, role)
 *
 * The same error for an unknown email, a wrong password and a disabled
 * user, and the same work for each, so that a caller learns nothing.
 */
Datum
recovery_login(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	TupleDesc	result_desc;
	HeapTuple	result;
	char	   *password;
	char	   *stored = NULL;
	bool		usable;
	Datum		out[4];
	bool		nulls[4] = {false, false, false, false};
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		authentication_failed();
	password = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "login must return a composite type");
	result_desc = BlessTupleDesc(result_desc);

	SPI_connect();
	values[0] = PG_GETARG_DATUM(0);
	recovery_spi_exec("SELECT id, email, display_name, role, password_hash, "
					  "       NOT disabled "
					  "FROM recovery.users WHERE lower(email) = lower($1)",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	usable = SPI_processed == 1;
	if (usable)
	{
		stored = recovery_spi_text(0, 5);
		usable = strcmp(recovery_spi_text(0, 6), "t") == 0;
	}
	if (!check_password(password, stored) || !usable)
		authentication_failed();

	for (i = 0; i < 4; i++)
		out[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							   i + 1, &nulls[i]);
	out[1] = CStringGetTextDatum(recovery_spi_text(0, 2));
	out[2] = nulls[2] ? (Datum) 0 : CStringGetTextDatum(recovery_spi_text(0, 3));
	out[3] = CStringGetTextDatum(recovery_spi_text(0, 4));
	result = heap_form_tuple(result_desc, out, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

static bytea *
api_key_digest(const char *key)
{
	bytea	   *digest = palloc(VARHDRSZ + KEY_LEN);

	SET_VARSIZE(digest, VARHDRSZ + KEY_LEN);
	if (EVP_Digest(key, strlen(key), (unsigned char *) VARDATA(digest), NULL,
				   EVP_sha256(), NULL) != 1)
		elog(ERROR, "SHA-256 failed");
	return digest;
}

/*
 * recovery.api_key_create(name, role) returns text
 *
 * The key itself is returned once and never stored.
 */
Datum
recovery_api_key_create(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, BYTEAOID};
	Datum		values[4];
	uint8		secret[API_KEY_BYTES];
	char	   *key;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("an API key needs a name and a role")));
	random_bytes(secret, API_KEY_BYTES);
	key = psprintf(API_KEY_PREFIX "%s", to_hex(secret, API_KEY_BYTES));

	SPI_connect();
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = CStringGetTextDatum(pnstrdup(key, strlen(API_KEY_PREFIX) + 8));
	values[3] = PointerGetDatum(api_key_digest(key));
	recovery_spi_exec("INSERT INTO recovery.api_keys (name, role, key_prefix, key_hash) "
					  "VALUES ($1, $2, $3, $4)",
					  4, argtypes, values, NULL, SPI_OK_INSERT);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(key));
}

/*
 * recovery.api_key_authenticate(key) returns (api_key_id, name, role)
 */
Datum
recovery_api_key_authenticate(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {BYTEAOID};
	Datum		values[1];
	TupleDesc	result_desc;
	HeapTuple	result;
	Datum		out[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "api_key_authenticate must return a composite type");
	result_desc = BlessTupleDesc(result_desc);

	SPI_connect();
	values[0] = PointerGetDatum(api_key_digest(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	recovery_spi_exec("SELECT id, name, role FROM recovery.api_keys "
					  "WHERE key_hash = $1 AND revoked_at IS NULL",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_AUTH_FAILED),
				 errmsg("invalid or revoked API key"),
				 errhint("Ask an administrator for a new key.")));
	out[0] = Int64GetDatum(recovery_spi_int64(0, 1, NULL));
	out[1] = CStringGetTextDatum(recovery_spi_text(0, 2));
	out[2] = CStringGetTextDatum(recovery_spi_text(0, 3));
	result = heap_form_tuple(result_desc, out, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}
