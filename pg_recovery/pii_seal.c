/*
 * pii_seal.c
 *		Sealed personal values: the trigger that seals what is written, the
 *		functions that open it, and the blind indexes for equality lookups.
 *
 * A sealed value ("envelope") is a bytea:
 *
 *		0xFF 0x01			never the first byte of UTF-8 text; format 1
 *		version (4 bytes)	the customer's data key version, big-endian
 *		nonce, tag			AES-256-GCM (pii_kek.c)
 *		ciphertext			the UTF-8 text
 *
 * bound as associated data to the table, the column, the row's id and the
 * customer: a value copied to another row, column or customer does not
 * open.  A personal column holds an envelope, or plain UTF-8 text: a value
 * written before the upgrade that brought encryption (until
 * recovery.encrypt_existing() reaches it), written with
 * recovery.pii_encryption off, or an erasure's placeholder.
 *
 * The trigger recovery.pii_seal(column[:index], ...) seals, before a row is
 * written, each listed column that holds plain text, and sets its blind
 * index column (HMAC-SHA-256 of the normalized value) when one is named.
 */
#include "recovery.h"
#include "pii.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#define ENVELOPE_MAGIC		0xFF
#define ENVELOPE_FORMAT		0x01
#define ENVELOPE_HEADER		6	/* magic, format, key version */
#define ENVELOPE_OVERHEAD	(ENVELOPE_HEADER + PII_NONCE_LEN + PII_TAG_LEN)
#define BLIND_INDEX_LEN		16	/* of HMAC-SHA-256's 32 bytes */
#define AAD_BUFSIZE			128 /* longer table names: allocated */

/* What an envelope is bound to. */
typedef struct SealedPlace
{
	const char *table;
	const char *column;
	int64		row_id;
	int64		customer_id;
} SealedPlace;

bool
pii_is_envelope(const bytea *value)
{
	return VARSIZE_ANY_EXHDR(value) >= ENVELOPE_OVERHEAD &&
		((const uint8 *) VARDATA_ANY(value))[0] == ENVELOPE_MAGIC;
}

/*
 * The associated data of a place, in buf if it fits, else allocated:
 * pii_open() takes the table and column names from its caller, of any
 * length.
 */
static char *
place_aad(const SealedPlace *place, int32 version, int *len, char *buf, int bufsize)
{
	*len = snprintf(buf, bufsize, "pg_recovery v1 %s.%s %lld %lld v%d",
					place->table, place->column, (long long) place->row_id,
					(long long) place->customer_id, version);
	if (*len < bufsize)
		return buf;
	return psprintf("pg_recovery v1 %s.%s %lld %lld v%d",
					place->table, place->column, (long long) place->row_id,
					(long long) place->customer_id, version);
}

static bytea *
seal(const char *text, int len, const SealedPlace *place, int32 version,
	 const uint8 *key)
{
	bytea	   *sealed = palloc(VARHDRSZ + ENVELOPE_OVERHEAD + len);
	uint8	   *out = (uint8 *) VARDATA(sealed);
	int			aadlen;
	char		buf[AAD_BUFSIZE];
	char	   *aad = place_aad(place, version, &aadlen, buf, sizeof(buf));

	out[0] = ENVELOPE_MAGIC;
	out[1] = ENVELOPE_FORMAT;
	out[2] = (uint8) (version >> 24);
	out[3] = (uint8) (version >> 16);
	out[4] = (uint8) (version >> 8);
	out[5] = (uint8) version;
	pii_gcm_seal(key, (uint8 *) aad, aadlen, (const uint8 *) text, len,
				 out + ENVELOPE_HEADER);
	SET_VARSIZE(sealed, VARHDRSZ + ENVELOPE_OVERHEAD + len);
	return sealed;
}

static void
cannot_open(const SealedPlace *place, const char *why) pg_attribute_noreturn();

static void
cannot_open(const SealedPlace *place, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("%s.%s of row %lld (customer %lld) does not decrypt",
					place->table, place->column, (long long) place->row_id,
					(long long) place->customer_id),
			 errdetail("%s", why),
			 errhint("A sealed value opens only in the row, column and customer it was written for.")));
}

/* The bytes of a stored value: opened if sealed, else as they are. */
static bytea *
open_value(bytea *value, const SealedPlace *place)
{
	const uint8 *in = (const uint8 *) VARDATA_ANY(value);
	int			len = VARSIZE_ANY_EXHDR(value);
	uint8		key[PII_KEY_LEN];
	int32		stored_version;
	int32		version;
	char		buf[AAD_BUFSIZE];
	char	   *aad;
	int			aadlen;
	bytea	   *result;
	bool		ok;

	if (!pii_is_envelope(value))
		return value;
	if (in[1] != ENVELOPE_FORMAT)
		cannot_open(place, psprintf("Its format is %d; this version of pg_recovery reads format %d.",
									in[1], ENVELOPE_FORMAT));
	stored_version = (int32) ((uint32) in[2] << 24 | (uint32) in[3] << 16 |
							  (uint32) in[4] << 8 | in[5]);
	if (pii_customer_key(place->customer_id, false, &version, key) == PII_KEY_DESTROYED)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_KEY_UNAVAILABLE),
				 errmsg("customer %lld was erased: their personal data can no longer be decrypted",
						(long long) place->customer_id),
				 errdetail("%s.%s of row %lld was sealed with the data key the erasure destroyed.",
						   place->table, place->column, (long long) place->row_id)));
	if (stored_version != version)
	{
		/* a key this transaction rotated opens what it sealed, until commit */
		if (!pii_retired_key(place->customer_id, stored_version, key))
			cannot_open(place, psprintf("It was sealed with data key version %d; the customer's key is version %d.",
										stored_version, version));
		version = stored_version;
	}

	aad = place_aad(place, version, &aadlen, buf, sizeof(buf));
	result = palloc(VARHDRSZ + len - ENVELOPE_OVERHEAD);
	ok = pii_gcm_open(key, (uint8 *) aad, aadlen, in + ENVELOPE_HEADER,
					  len - ENVELOPE_HEADER, (uint8 *) VARDATA(result));
	explicit_bzero(key, PII_KEY_LEN);
	if (!ok)
		cannot_open(place, "Its authentication tag does not match: it was altered, or copied from another row or column.");
	SET_VARSIZE(result, VARHDRSZ + len - ENVELOPE_OVERHEAD);
	return result;
}

static void
place_of_args(FunctionCallInfo fcinfo, SealedPlace *place)
{
	place->table = text_to_cstring(PG_GETARG_TEXT_PP(1));
	place->column = text_to_cstring(PG_GETARG_TEXT_PP(2));
	place->row_id = PG_GETARG_INT64(3);
	place->customer_id = PG_GETARG_INT64(4);
}

/*
 * recovery.pii_open(value, table, column, row_id, customer_id) → text.
 * The decrypting views call it for each personal column.
 */
PG_FUNCTION_INFO_V1(recovery_pii_open);

Datum
recovery_pii_open(PG_FUNCTION_ARGS)
{
	SealedPlace place;
	bytea	   *opened;

	place_of_args(fcinfo, &place);
	opened = open_value(PG_GETARG_BYTEA_PP(0), &place);
	/* text the trigger took as UTF-8, or a plain value that must be */
	pg_verifymbstr(VARDATA_ANY(opened), VARSIZE_ANY_EXHDR(opened), false);
	PG_RETURN_TEXT_P((text *) opened);
}

/* recovery.pii_open_bytes(...) → bytea: the same for a file's bytes. */
PG_FUNCTION_INFO_V1(recovery_pii_open_bytes);

Datum
recovery_pii_open_bytes(PG_FUNCTION_ARGS)
{
	SealedPlace place;

	place_of_args(fcinfo, &place);
	PG_RETURN_BYTEA_P(open_value(PG_GETARG_BYTEA_PP(0), &place));
}

/*
 * HMAC-SHA-256 with the MAC fetched and its context made once a backend:
 * the one-shot HMAC() fetches them for every value, which cost more than
 * the MAC itself.
 */
static void
hmac_sha256(const uint8 *key, const uint8 *data, int len, uint8 *mac)
{
	static EVP_MAC_CTX *ctx = NULL;
	size_t		maclen;

	if (ctx == NULL)
	{
		EVP_MAC   *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM	params[2];

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
		EVP_MAC_free(hmac);		/* the context holds its own reference */
		if (ctx != NULL && EVP_MAC_CTX_set_params(ctx, params) != 1)
		{
			EVP_MAC_CTX_free(ctx);
			ctx = NULL;
		}
	}
	if (ctx == NULL ||
		EVP_MAC_init(ctx, key, PII_KEY_LEN, NULL) != 1 ||
		EVP_MAC_update(ctx, data, len) != 1 ||
		EVP_MAC_final(ctx, mac, &maclen, EVP_MAX_MD_SIZE) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a blind index: OpenSSL failed")));
}

/*
 * The blind index of a value: HMAC-SHA-256 of what equality compares.
 * create: make the blind-index key if there is none (sealing); else, with
 * none, an empty value that equals no index (a lookup, maybe read-only).
 */
static bytea *
blind_index(const char *kind, const char *value, int len, bool create)
{
	uint8		key[PII_KEY_LEN];
	uint8		mac[EVP_MAX_MD_SIZE];
	StringInfoData norm;
	bytea	   *index;
	bool		phone = strcmp(kind, "phone") == 0;
	bool		email = strcmp(kind, "email") == 0;
	bool		iban = strcmp(kind, "iban") == 0;

	/* emails and IBANs compare without case and spaces, phones by their digits */
	initStringInfo(&norm);
	appendStringInfo(&norm, "%s:", kind);
	enlargeStringInfo(&norm, len);
	for (int i = 0; i < len; i++)
	{
		char		c = value[i];

		if (phone ? (c >= '0' && c <= '9') || c == '+' : c != ' ')
			norm.data[norm.len++] = email ? pg_ascii_tolower(c) : iban ? pg_ascii_toupper(c) : c;
	}
	norm.data[norm.len] = '\0';
	if (!pii_blind_index_key(key, create))
	{
		pfree(norm.data);
		index = palloc(VARHDRSZ);
		SET_VARSIZE(index, VARHDRSZ);
		return index;
	}
	hmac_sha256(key, (uint8 *) norm.data, norm.len, mac);
	explicit_bzero(key, PII_KEY_LEN);
	index = palloc(VARHDRSZ + BLIND_INDEX_LEN);
	memcpy(VARDATA(index), mac, BLIND_INDEX_LEN);
	SET_VARSIZE(index, VARHDRSZ + BLIND_INDEX_LEN);
	pfree(norm.data);
	return index;
}

/*
 * recovery.pii_blind_index(kind, value): what a lookup compares the index
 * with, and what encrypt_existing() stores.  A read-only transaction (a GET,
 * a standby) makes no key.
 */
PG_FUNCTION_INFO_V1(recovery_pii_blind_index);

Datum
recovery_pii_blind_index(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BYTEA_P(blind_index(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
								  !XactReadOnly && !RecoveryInProgress()));
}

/* An erasure's own words, the only plain text an erased customer's row takes. */
static bool
is_erasure_placeholder(const char *text, int len, int64 customer_id)
{
	char		name[64];

	snprintf(name, sizeof(name), "erased customer %lld", (long long) customer_id);
	return (len == 8 && memcmp(text, "[erased]", 8) == 0) ||
		(len == 6 && memcmp(text, "erased", 6) == 0) ||
		(len == strlen(name) && memcmp(text, name, len) == 0);
}

static int64
int64_column(HeapTuple tuple, TupleDesc desc, const char *column,
			 const char *table)
{
	int			attnum = SPI_fnumber(desc, column);
	bool		isnull;
	Datum		value;

	if (attnum <= 0)
		elog(ERROR, "pii_seal: table %s has no column %s", table, column);
	value = heap_getattr(tuple, attnum, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("a row of %s with personal data needs its %s", table, column)));
	return DatumGetInt64(value);
}

/*
 * The customer a row's values are sealed for: its customer_id, or
 * PII_NO_CUSTOMER for a row that has none (a statement line no case
 * matched), whose values are sealed under the shared key of that id.
 */
static int64
row_customer(HeapTuple tuple, TupleDesc desc, const char *table, int64 row_id)
{
	int			attnum;
	bool		isnull;
	Datum		value;

	if (strcmp(table, "customers") == 0)
		return row_id;
	attnum = SPI_fnumber(desc, "customer_id");
	if (attnum <= 0)
		elog(ERROR, "pii_seal: table %s has no column customer_id", table);
	value = heap_getattr(tuple, attnum, desc, &isnull);
	return isnull ? PII_NO_CUSTOMER : DatumGetInt64(value);
}

/*
 * The trigger: BEFORE INSERT OR UPDATE, FOR EACH ROW, with the personal
 * columns as arguments, each "column" or "column:index_column" (UTF-8
 * text), or "bytes column" (a file's bytes, taken as they are).
 */
PG_FUNCTION_INFO_V1(recovery_pii_seal);

Datum
recovery_pii_seal(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	TupleDesc	desc;
	HeapTuple	tuple;
	SealedPlace place;
	SealedPlace moved_from;
	int		   *columns;
	Datum	   *values;
	bool	   *nulls;
	int			nchanged = 0;
	uint8		key[PII_KEY_LEN];
	int32		version = 0;
	PiiKeyState state = PII_KEY_LIVE;
	bool		have_key = false;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "pii_seal must be a BEFORE INSERT OR UPDATE row trigger");
	trigger = trigdata->tg_trigger;
	desc = RelationGetDescr(trigdata->tg_relation);
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;

	/* a dump brings the values as they were stored, and their keys */
	if (recovery_restoring())
		return PointerGetDatum(tuple);

	place.table = RelationGetRelationName(trigdata->tg_relation);
	place.row_id = int64_column(tuple, desc, "id", place.table);
	place.customer_id = row_customer(tuple, desc, place.table, place.row_id);
	/* a row given to another customer: its values move to their key */
	moved_from = place;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		moved_from.customer_id = row_customer(trigdata->tg_trigtuple, desc,
											  place.table, place.row_id);

	columns = palloc(sizeof(int) * trigger->tgnargs * 2);
	values = palloc(sizeof(Datum) * trigger->tgnargs * 2);
	nulls = palloc0(sizeof(bool) * trigger->tgnargs * 2);
	for (int i = 0; i < trigger->tgnargs; i++)
	{
		char	   *column = pstrdup(trigger->tgargs[i]);
		char	   *index_column = strchr(column, ':');
		bool		binary = strncmp(column, "bytes ", 6) == 0;
		int			attnum;
		bool		isnull;
		bytea	   *value;
		char	   *plain;
		int			len;

		if (index_column != NULL)
			*index_column++ = '\0';
		if (binary)
			column += 6;
		attnum = SPI_fnumber(desc, column);
		if (attnum <= 0 || TupleDescAttr(desc, attnum - 1)->atttypid != BYTEAOID)
			elog(ERROR, "pii_seal: %s.%s is not a bytea column", place.table, column);
		value = (bytea *) DatumGetPointer(heap_getattr(tuple, attnum, desc, &isnull));
		if (!isnull && moved_from.customer_id != place.customer_id &&
			pii_is_envelope(value = DatumGetByteaPP(PointerGetDatum(value))))
		{
			moved_from.column = column;
			value = open_value(value, &moved_from);
		}
		if (isnull || pii_is_envelope(value = DatumGetByteaPP(PointerGetDatum(value))))
		{
			if (isnull && index_column != NULL)
			{
				columns[nchanged] = SPI_fnumber(desc, index_column);
				nulls[nchanged++] = true;
			}
			continue;
		}

		plain = VARDATA_ANY(value);
		len = VARSIZE_ANY_EXHDR(value);
		if (!binary)
			pg_verifymbstr(plain, len, false);
		if (!have_key)
		{
			state = pii_customer_key(place.customer_id, true, &version, key);
			have_key = true;
		}
		place.column = column;
		if (state == PII_KEY_DESTROYED)
		{
			if (!is_erasure_placeholder(plain, len, place.customer_id))
				ereport(ERROR,
						(errcode(ERRCODE_RECOVERY_VALIDATION),
						 errmsg("customer %lld was erased: no personal data can be stored for them",
								(long long) place.customer_id),
						 errdetail("The value written to %s.%s of row %lld would be stored unencrypted.",
								   place.table, column, (long long) place.row_id)));
		}
		else if (pii_encryption_on())
		{
			columns[nchanged] = attnum;
			values[nchanged++] = PointerGetDatum(seal(plain, len, &place, version, key));
		}
		if (index_column != NULL)
		{
			columns[nchanged] = SPI_fnumber(desc, index_column);
			if (columns[nchanged] <= 0)
				elog(ERROR, "pii_seal: table %s has no column %s", place.table, index_column);
			if (state == PII_KEY_DESTROYED)
				nulls[nchanged++] = true;
			else
				values[nchanged++] = PointerGetDatum(blind_index(column, plain, len, true));
		}
	}
	explicit_bzero(key, PII_KEY_LEN);
	if (nchanged == 0)
		return PointerGetDatum(tuple);
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, nchanged,
													 columns, values, nulls));
}

/*
 * A value as the trigger would store it, for a writer that bypasses the
 * triggers (extraction_import.c's bulk insert): sealed for the place, the
 * erasure's placeholder for an erased customer, or plain with encryption
 * off.  index_kind: also its blind index into *index (NULL if erased).
 */
bytea *
pii_seal_text(const char *table, const char *column, int64 row_id,
			  int64 customer_id, const char *text, int len,
			  const char *index_kind, bytea **index)
{
	SealedPlace place = {table, column, row_id, customer_id};
	uint8		key[PII_KEY_LEN];
	int32		version;
	bytea	   *stored;

	if (index_kind != NULL)
		*index = NULL;
	if (pii_customer_key(customer_id, true, &version, key) == PII_KEY_DESTROYED)
		return (bytea *) cstring_to_text("[erased]");
	if (index_kind != NULL)
		*index = blind_index(index_kind, text, len, true);
	if (pii_encryption_on())
		stored = seal(text, len, &place, version, key);
	else
		stored = (bytea *) cstring_to_text_with_len(text, len);
	explicit_bzero(key, PII_KEY_LEN);
	return stored;
}

/* recovery.pii_is_sealed(value): whether a stored value is an envelope */
PG_FUNCTION_INFO_V1(recovery_pii_is_sealed);

Datum
recovery_pii_is_sealed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(pii_is_envelope(PG_GETARG_BYTEA_PP(0)));
}

/*
 * recovery.pii_reseal(value, table, column, row_id, customer_id) → bytea:
 * a value sealed under the customer's current key: a plain one sealed, a
 * sealed one opened (with the key this transaction retired, if that is the
 * one) and sealed again.  An erased customer's value stays as it is.
 * encrypt_existing() and customer_rotate_key() store what it returns
 * without the triggers, so it checks nothing the trigger checks.
 */
PG_FUNCTION_INFO_V1(recovery_pii_reseal);

Datum
recovery_pii_reseal(PG_FUNCTION_ARGS)
{
	bytea	   *value = PG_GETARG_BYTEA_PP(0);
	SealedPlace place;
	bytea	   *plain;
	uint8		key[PII_KEY_LEN];
	int32		version;
	bytea	   *sealed;

	place_of_args(fcinfo, &place);
	plain = pii_is_envelope(value) ? open_value(value, &place) : value;
	if (pii_customer_key(place.customer_id, true, &version, key) == PII_KEY_DESTROYED)
		PG_RETURN_BYTEA_P(value);	/* an erasure's placeholder */
	sealed = seal(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain), &place, version, key);
	explicit_bzero(key, PII_KEY_LEN);
	if (plain != value)
		explicit_bzero(VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain));
	PG_RETURN_BYTEA_P(sealed);
}
