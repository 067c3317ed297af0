/*
 * pii_kek.c
 *		The key-encryption keys (KEKs), and AES-256-GCM for everything the
 *		extension encrypts.
 *
 * The KEKs never enter the database: recovery.key_command prints them, as
 * ssl_passphrase_command prints a passphrase.  By default it reads a file
 * only the postgres user may read; HashiCorp Vault, a cloud KMS or a
 * hardware module answer through the same command (README, "Personal data
 * encryption").  It prints one KEK a line, "ID HEX" (64 hex digits): the
 * first line is the KEK new data keys are wrapped with, the others are
 * still accepted for unwrapping, which is how a KEK is rotated online
 * (recovery.rotate_kek()).
 *
 * A backend runs the command once, at the first key it needs, and again
 * after a reload changes recovery.key_command.  The KEKs live in this
 * backend's memory only and are wiped when replaced.
 */
#include "recovery.h"
#include "pii.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#define PII_MAX_KEKS	8

typedef struct Kek
{
	char		id[PII_KEK_ID_MAX + 1];
	uint8		key[PII_KEY_LEN];
} Kek;

/* recovery.key_command; recovery.pii_encryption */
static char *key_command = NULL;
static bool encryption_on = true;

/* the KEKs the command printed; kek_count 0: not read yet */
static Kek	keks[PII_MAX_KEKS];
static int	kek_count = 0;

/* bumped when the KEKs are forgotten: the data keys they unwrapped go too */
static uint32 kek_generation = 0;

static void
forget_keks(void)
{
	explicit_bzero(keks, sizeof(keks));
	kek_count = 0;
	kek_generation++;
}

uint32
pii_kek_generation(void)
{
	return kek_generation;
}

static void
key_command_assign(const char *newval, void *extra)
{
	forget_keks();
}

void
recovery_define_pii_gucs(void)
{
	DefineCustomStringVariable("recovery.key_command",
							   "Command that prints the key-encryption keys of personal data, one \"ID HEX\" a line, the current one first.",
							   "Run by the server as the postgres user; see README, \"Personal data encryption\".",
							   &key_command, "", PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, key_command_assign, NULL);
	DefineCustomBoolVariable("recovery.pii_encryption",
							 "Whether personal data written from now on is encrypted.",
							 "Off only to measure what encryption costs (bench/pii.sh): values are then stored as written.",
							 &encryption_on, true, PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

bool
pii_encryption_on(void)
{
	return encryption_on;
}

static void
kek_command_failed(const char *detail) pg_attribute_noreturn();

static void
kek_command_failed(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_KEY_UNAVAILABLE),
			 errmsg("the key-encryption key of personal data is not available"),
			 errdetail_internal("%s", detail),
			 errhint("Set recovery.key_command to a command that prints \"ID HEX\" "
					 "(64 hex digits) and reload; see README, \"Personal data encryption\".")));
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One line of the command's output into keks[kek_count]; false: malformed. */
static bool
parse_kek_line(char *line, Kek *kek)
{
	char	   *hex = strchr(line, ' ');
	size_t		idlen;

	if (hex == NULL)
		return false;
	idlen = hex - line;
	while (*hex == ' ')
		hex++;
	if (idlen == 0 || idlen > PII_KEK_ID_MAX ||
		strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != idlen ||
		strlen(hex) != 2 * PII_KEY_LEN)
		return false;
	memcpy(kek->id, line, idlen);
	kek->id[idlen] = '\0';
	for (int i = 0; i < PII_KEY_LEN; i++)
	{
		int			hi = hex_value(hex[2 * i]);
		int			lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		kek->key[i] = (uint8) (hi << 4 | lo);
	}
	return true;
}

static void
load_keks(void)
{
	FILE	   *pipe;
	char		line[256];
	int			lineno = 0;
	int			rc;

	if (kek_count > 0)
		return;
	if (key_command == NULL || key_command[0] == '\0')
		kek_command_failed("recovery.key_command is empty.");

	pipe = OpenPipeStream(key_command, "r");
	if (pipe == NULL)
		kek_command_failed(psprintf("recovery.key_command could not be started: %m."));
	while (fgets(line, sizeof(line), pipe) != NULL)
	{
		size_t		len = strcspn(line, "\r\n");

		lineno++;
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (kek_count == PII_MAX_KEKS || !parse_kek_line(line, &keks[kek_count]))
		{
			explicit_bzero(line, sizeof(line));
			ClosePipeStream(pipe);
			forget_keks();
			kek_command_failed(kek_count == PII_MAX_KEKS ?
							   psprintf("recovery.key_command printed more than %d keys.", PII_MAX_KEKS) :
							   psprintf("Line %d of recovery.key_command's output is not \"ID HEX\" "
										"(an id of letters, digits, _ . -, then 64 hex digits).", lineno));
		}
		kek_count++;
	}
	explicit_bzero(line, sizeof(line));
	rc = ClosePipeStream(pipe);
	if (rc != 0 || kek_count == 0)
	{
		forget_keks();
		kek_command_failed(rc != 0 ?
						   psprintf("recovery.key_command failed: %s.", wait_result_to_str(rc)) :
						   "recovery.key_command printed no key.");
	}
}

const char *
pii_current_kek_id(void)
{
	load_keks();
	return keks[0].id;
}

static const Kek *
find_kek(const char *kek_id)
{
	load_keks();
	for (int i = 0; i < kek_count; i++)
		if (strcmp(keks[i].id, kek_id) == 0)
			return &keks[i];
	return NULL;
}

void
pii_random(uint8 *buf, int len)
{
	if (RAND_bytes(buf, len) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a key or nonce")));
}

/*
 * Nonces: random bytes drawn a few hundred nonces at a time.  RAND_bytes()
 * takes locks and checks for a fork on every call, which cost as much as
 * the encryption of a name; the pool belongs to the process that drew it.
 */
#define NONCE_POOL_SIZE (PII_NONCE_LEN * 256)

static uint8 nonce_pool[NONCE_POOL_SIZE];
static int	nonce_pool_used = NONCE_POOL_SIZE;
static int	nonce_pool_pid = 0;

static void
next_nonce(uint8 *nonce)
{
	if (nonce_pool_used == NONCE_POOL_SIZE || nonce_pool_pid != MyProcPid)
	{
		pii_random(nonce_pool, NONCE_POOL_SIZE);
		nonce_pool_used = 0;
		nonce_pool_pid = MyProcPid;
	}
	memcpy(nonce, nonce_pool + nonce_pool_used, PII_NONCE_LEN);
	explicit_bzero(nonce_pool + nonce_pool_used, PII_NONCE_LEN);
	nonce_pool_used += PII_NONCE_LEN;
}

/*
 * The cipher, fetched once, and two contexts a backend (one a direction),
 * set up with the cipher once and given only a key and a nonce for each
 * value: OpenSSL 3 fetches the algorithm and sets the context up again
 * otherwise, which cost more than decrypting a name.
 */
static EVP_CIPHER *gcm = NULL;
static EVP_CIPHER_CTX *seal_ctx = NULL;
static EVP_CIPHER_CTX *open_ctx = NULL;

/*
 * The key each context was last given: the next value under the same key
 * (a statement line's payer, then its IBAN) keeps its schedule.
 */
static uint8 seal_key[PII_KEY_LEN];
static uint8 open_key[PII_KEY_LEN];
static bool seal_keyed = false;
static bool open_keyed = false;

/* The key to give a context: NULL when it holds this one already. */
static const uint8 *
key_to_set(const uint8 *key, uint8 *held, bool *keyed)
{
	if (*keyed && memcmp(held, key, PII_KEY_LEN) == 0)
		return NULL;
	memcpy(held, key, PII_KEY_LEN);
	*keyed = true;
	return key;
}

static EVP_CIPHER_CTX *
gcm_context(bool encrypt)
{
	EVP_CIPHER_CTX **ctx = encrypt ? &seal_ctx : &open_ctx;

	if (gcm == NULL)
		gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (gcm != NULL && *ctx == NULL)
	{
		EVP_CIPHER_CTX *fresh = EVP_CIPHER_CTX_new();

		if (fresh != NULL &&
			EVP_CipherInit_ex2(fresh, gcm, NULL, NULL, encrypt ? 1 : 0, NULL) != 1)
		{
			EVP_CIPHER_CTX_free(fresh);
			fresh = NULL;
		}
		*ctx = fresh;
	}
	if (gcm == NULL || *ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenSSL has no AES-256-GCM")));
	return *ctx;
}

/* The contexts hold the last key's schedule: wiped with the keys. */
void
pii_gcm_wipe(void)
{
	if (seal_ctx != NULL)
		EVP_CIPHER_CTX_free(seal_ctx);
	if (open_ctx != NULL)
		EVP_CIPHER_CTX_free(open_ctx);
	seal_ctx = open_ctx = NULL;
	explicit_bzero(seal_key, PII_KEY_LEN);
	explicit_bzero(open_key, PII_KEY_LEN);
	seal_keyed = open_keyed = false;
}

/*
 * AES-256-GCM: out gets nonce, tag and inlen bytes of ciphertext.  The
 * nonce is random: 96 bits, a few million values a key at most.
 */
void
pii_gcm_seal(const uint8 *key, const uint8 *aad, int aadlen,
			 const uint8 *in, int inlen, uint8 *out)
{
	EVP_CIPHER_CTX *ctx = gcm_context(true);
	uint8	   *nonce = out;
	uint8	   *tag = out + PII_NONCE_LEN;
	uint8	   *ct = out + PII_NONCE_LEN + PII_TAG_LEN;
	int			len;
	bool		ok;

	next_nonce(nonce);
	ok = EVP_EncryptInit_ex2(ctx, NULL, key_to_set(key, seal_key, &seal_keyed),
							 nonce, NULL) == 1 &&
		EVP_EncryptUpdate(ctx, NULL, &len, aad, aadlen) == 1 &&
		EVP_EncryptUpdate(ctx, ct, &len, in, inlen) == 1 &&
		EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PII_TAG_LEN, tag) == 1;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt personal data: OpenSSL failed")));
}

/* The reverse; false when the tag does not match (wrong key, AAD or bytes). */
bool
pii_gcm_open(const uint8 *key, const uint8 *aad, int aadlen,
			 const uint8 *in, int inlen, uint8 *out)
{
	EVP_CIPHER_CTX *ctx;
	int			len;
	bool		ok;

	if (inlen < PII_NONCE_LEN + PII_TAG_LEN)
		return false;
	ctx = gcm_context(false);
	ok = EVP_DecryptInit_ex2(ctx, NULL, key_to_set(key, open_key, &open_keyed),
							 in, NULL) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &len, aad, aadlen) == 1 &&
		EVP_DecryptUpdate(ctx, out, &len, in + PII_NONCE_LEN + PII_TAG_LEN,
						  inlen - PII_NONCE_LEN - PII_TAG_LEN) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PII_TAG_LEN,
							(void *) (in + PII_NONCE_LEN)) == 1 &&
		EVP_DecryptFinal_ex(ctx, out + len, &len) == 1;
	return ok;
}

/* What a wrapped key is bound to: its purpose, owner and version. */
static int
wrap_aad(uint8 *aad, const char *purpose, int64 id, int32 version)
{
	return snprintf((char *) aad, 96, "pg_recovery key %s %lld v%d",
					purpose, (long long) id, version);
}

/* A data key wrapped by the current KEK; *kek_id says which. */
bytea *
pii_wrap_key(const uint8 *key, const char *purpose, int64 id, int32 version,
			 char **kek_id)
{
	const Kek  *kek;
	bytea	   *wrapped = palloc(VARHDRSZ + PII_WRAPPED_LEN);
	uint8		aad[96];
	int			aadlen = wrap_aad(aad, purpose, id, version);

	load_keks();
	kek = &keks[0];
	pii_gcm_seal(kek->key, aad, aadlen, key, PII_KEY_LEN,
				 (uint8 *) VARDATA(wrapped));
	SET_VARSIZE(wrapped, VARHDRSZ + PII_WRAPPED_LEN);
	*kek_id = pstrdup(kek->id);
	return wrapped;
}

void
pii_unwrap_key(const bytea *wrapped, const char *kek_id, const char *purpose,
			   int64 id, int32 version, uint8 *key)
{
	const Kek  *kek = find_kek(kek_id);
	uint8		aad[96];
	int			aadlen = wrap_aad(aad, purpose, id, version);

	if (kek == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_KEY_UNAVAILABLE),
				 errmsg("the %s key %lld is wrapped by key-encryption key \"%s\", which recovery.key_command does not print",
						purpose, (long long) id, kek_id),
				 errhint("Print that KEK too (a second line) until recovery.rotate_kek() has re-wrapped every key.")));
	if (VARSIZE_ANY_EXHDR(wrapped) != PII_WRAPPED_LEN ||
		!pii_gcm_open(kek->key, aad, aadlen, (const uint8 *) VARDATA_ANY(wrapped),
					  PII_WRAPPED_LEN, key))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_KEY_UNAVAILABLE),
				 errmsg("key-encryption key \"%s\" does not unwrap the %s key %lld",
						kek_id, purpose, (long long) id),
				 errdetail("Either recovery.key_command prints a wrong key under the id \"%s\", or the wrapped key was altered.",
						   kek_id),
				 errhint("Check the key that recovery.key_command prints.")));
}
