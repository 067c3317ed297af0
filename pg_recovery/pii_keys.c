/*
 * pii_keys.c
 *		Customers' data keys and the blind-index key: stored wrapped in
 *		recovery.customer_keys and recovery.pii_keyring, unwrapped into this
 *		backend's memory only, in a bounded cache.
 *
 * A customer's key is made by the first value sealed for them, and
 * destroyed by their erasure (recovery.pii_destroy_key()): its wrapped
 * copy is overwritten, and every backend drops its unwrapped copy.  The
 * drop travels as a relcache invalidation of customer_keys, sent when the
 * erasing transaction commits and taken by every backend before its next
 * statement; it needs no shared memory, so it works without preloading.
 * recovery.rewrap_keys() re-wraps keys under the current KEK (KEK
 * rotation); the keys themselves do not change, so nothing is re-encrypted.
 * recovery.rotate_data_key() replaces one customer's key, keeping the old
 * one for its transaction, which seals the customer's values again.
 */
#include "recovery.h"
#include "pii.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* unwrapped keys kept at most; past it the cache starts over */
#define PII_CACHE_MAX	4096

typedef struct CachedKey
{
	int64		customer_id;	/* hash key */
	int32		version;
	bool		destroyed;
	uint8		key[PII_KEY_LEN];
} CachedKey;

static HTAB *key_cache = NULL;
static uint8 blind_key[PII_KEY_LEN];
static bool blind_key_loaded = false;

/* the KEKs' generation the cached keys were unwrapped under */
static uint32 cache_generation = 0;

/* customer_keys' OID, for its invalidations; found at the first key read */
static Oid	customer_keys_relid = InvalidOid;

/*
 * Keys made by this transaction, and the subtransaction that made each: a
 * rollback takes the key row away, so the cached key must go with it.
 */
typedef struct MadeKey
{
	int64		customer_id;
	SubTransactionId subid;
} MadeKey;

static List *made_keys = NIL;	/* in TopTransactionContext */

/*
 * The key recovery.rotate_data_key() retired in this transaction: values
 * sealed with it still open until the transaction ends, so that they can
 * be sealed again under the new key.
 */
typedef struct RetiredKey
{
	bool		valid;
	int64		customer_id;
	int32		version;
	uint8		key[PII_KEY_LEN];
} RetiredKey;

static RetiredKey retired;

/* Wipes every unwrapped key of this backend. */
void
pii_forget_keys(void)
{
	if (key_cache != NULL)
	{
		HASH_SEQ_STATUS scan;
		CachedKey  *entry;

		hash_seq_init(&scan, key_cache);
		while ((entry = hash_seq_search(&scan)) != NULL)
			explicit_bzero(entry->key, PII_KEY_LEN);
		hash_destroy(key_cache);
		key_cache = NULL;
	}
	explicit_bzero(blind_key, sizeof(blind_key));
	blind_key_loaded = false;
	pii_gcm_wipe();
}

static void
customer_keys_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == customer_keys_relid)
		pii_forget_keys();
}

/* customer 0 stands for the blind-index key */
static void
forget_key(int64 customer_id)
{
	CachedKey  *entry;
	bool		found;

	if (customer_id == 0)
	{
		explicit_bzero(blind_key, sizeof(blind_key));
		blind_key_loaded = false;
	}
	if (key_cache == NULL)
		return;
	entry = hash_search(key_cache, &customer_id, HASH_FIND, &found);
	if (found)
	{
		explicit_bzero(entry->key, PII_KEY_LEN);
		hash_search(key_cache, &customer_id, HASH_REMOVE, NULL);
	}
}

static void
made_keys_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		foreach(lc, made_keys)
			forget_key(((MadeKey *) lfirst(lc))->customer_id);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		made_keys = NIL;		/* its memory goes with the transaction */
		explicit_bzero(&retired, sizeof(retired));
	}
}

static void
made_keys_subxact_callback(SubXactEvent event, SubTransactionId subid,
						   SubTransactionId parent, void *arg)
{
	ListCell   *lc;

	foreach(lc, made_keys)
	{
		MadeKey    *made = lfirst(lc);

		if (made->subid != subid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			made->subid = parent;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			forget_key(made->customer_id);
			made_keys = foreach_delete_current(made_keys, lc);
		}
	}
}

static void
remember_made_key(int64 customer_id)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	MadeKey    *made = palloc(sizeof(MadeKey));

	made->customer_id = customer_id;
	made->subid = GetCurrentSubTransactionId();
	made_keys = lappend(made_keys, made);
	MemoryContextSwitchTo(old);
}

void
recovery_pii_keys_init(void)
{
	CacheRegisterRelcacheCallback(customer_keys_changed, (Datum) 0);
	RegisterXactCallback(made_keys_xact_callback, NULL);
	RegisterSubXactCallback(made_keys_subxact_callback, NULL);
}

/* recovery.key_command changed: keys are unwrapped again under what it prints */
static void
check_generation(void)
{
	if (cache_generation != pii_kek_generation())
	{
		pii_forget_keys();
		cache_generation = pii_kek_generation();
	}
}

static CachedKey *
cache_entry(int64 customer_id, bool *found)
{
	if (key_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(CachedKey);
		key_cache = hash_create("pg_recovery data keys", 256, &ctl,
								HASH_ELEM | HASH_BLOBS);
	}
	if (hash_get_num_entries(key_cache) >= PII_CACHE_MAX)
	{
		pii_forget_keys();
		return cache_entry(customer_id, found);
	}
	return hash_search(key_cache, &customer_id, HASH_ENTER, found);
}

/*
 * The key tables are the extension's alone: a reader of a decrypting view
 * reaches them as the bootstrap superuser, as the RI triggers reach a
 * referenced table as its owner, and with a search_path of pg_catalog
 * only, so that no operator or function of the caller's runs as that user.
 */
typedef struct KeysSession
{
	Oid			userid;
	int			sec_context;
	int			guc_level;
} KeysSession;

static void
keys_connect(KeysSession *session)
{
	GetUserIdAndSecContext(&session->userid, &session->sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   session->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	session->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
}

static void
keys_finish(KeysSession *session)
{
	SPI_finish();
	AtEOXact_GUC(true, session->guc_level);
	SetUserIdAndSecContext(session->userid, session->sec_context);
}

/* looked up each time: the extension may have been dropped and made again */
static void
remember_relid(void)
{
	customer_keys_relid = get_relname_relid("customer_keys",
											get_namespace_oid("recovery", false));
}

/*
 * Reads (and with create, makes) a customer's key row.  Returns false when
 * there is none.  The caller is connected to SPI.
 */
static bool
read_customer_key(int64 customer_id, bool create, CachedKey *entry)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, BYTEAOID};
	Datum		values[4];
	bool		isnull;

	values[0] = Int64GetDatum(customer_id);
	recovery_spi_exec("SELECT version, kek_id, wrapped FROM recovery.customer_keys WHERE customer_id = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0 && create)
	{
		uint8		key[PII_KEY_LEN];
		char	   *kek_id;

		pii_random(key, PII_KEY_LEN);
		values[1] = Int32GetDatum(1);
		values[3] = PointerGetDatum(pii_wrap_key(key, "customer", customer_id, 1, &kek_id));
		values[2] = CStringGetTextDatum(kek_id);
		recovery_spi_exec("INSERT INTO recovery.customer_keys (customer_id, version, kek_id, wrapped) "
						  "VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO NOTHING",
						  4, argtypes, values, NULL, SPI_OK_INSERT);
		if (SPI_processed == 1)
		{
			remember_made_key(customer_id);
			entry->version = 1;
			entry->destroyed = false;
			memcpy(entry->key, key, PII_KEY_LEN);
			explicit_bzero(key, PII_KEY_LEN);
			return true;
		}
		explicit_bzero(key, PII_KEY_LEN);
		/* another transaction made it first */
		recovery_spi_exec("SELECT version, kek_id, wrapped FROM recovery.customer_keys WHERE customer_id = $1",
						  1, argtypes, values, NULL, SPI_OK_SELECT);
	}
	if (SPI_processed == 0)
		return false;
	entry->version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	entry->destroyed = isnull;
	if (!entry->destroyed)
	{
		bytea	   *wrapped = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 3, &isnull));

		pii_unwrap_key(wrapped, recovery_spi_text(0, 2), "customer", customer_id,
					   entry->version, entry->key);
	}
	return true;
}

/*
 * The customer's data key into key (PII_KEY_LEN bytes) and its version.
 * create: make it if the customer has none yet (sealing); else a customer
 * without one is an error (opening: their key row was removed).
 */
PiiKeyState
pii_customer_key(int64 customer_id, bool create, int32 *version, uint8 *key)
{
	KeysSession session;
	CachedKey  *entry;
	CachedKey	fresh;
	bool		found;

	check_generation();

	if (key_cache != NULL)
	{
		entry = hash_search(key_cache, &customer_id, HASH_FIND, &found);
		if (found)
		{
			*version = entry->version;
			if (entry->destroyed)
				return PII_KEY_DESTROYED;
			memcpy(key, entry->key, PII_KEY_LEN);
			return PII_KEY_LIVE;
		}
	}

	remember_relid();
	keys_connect(&session);
	if (!read_customer_key(customer_id, create, &fresh))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_KEY_UNAVAILABLE),
				 errmsg("customer %lld has no data key", (long long) customer_id),
				 errdetail("recovery.customer_keys has no row for the customer, so their personal data cannot be decrypted."),
				 errhint("A key row is never deleted by the extension; restore it from a backup.")));
	keys_finish(&session);

	entry = cache_entry(customer_id, &found);
	memcpy(entry, &fresh, sizeof(CachedKey));
	entry->customer_id = customer_id;
	explicit_bzero(fresh.key, PII_KEY_LEN);
	*version = entry->version;
	if (entry->destroyed)
		return PII_KEY_DESTROYED;
	memcpy(key, entry->key, PII_KEY_LEN);
	return PII_KEY_LIVE;
}

/*
 * The key of the blind indexes (HMAC-SHA-256), made at its first use when
 * create; false when there is none yet (then no value has a blind index).
 */
bool
pii_blind_index_key(uint8 *key, bool create)
{
	KeysSession session;
	Oid			argtypes[2] = {TEXTOID, BYTEAOID};
	Datum		values[2];
	bool		isnull;

	check_generation();
	if (blind_key_loaded)
	{
		memcpy(key, blind_key, PII_KEY_LEN);
		return true;
	}
	keys_connect(&session);
	recovery_spi_exec("SELECT kek_id, wrapped FROM recovery.pii_keyring WHERE purpose = 'blind-index'",
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0 && !create)
	{
		keys_finish(&session);
		return false;
	}
	if (SPI_processed == 0)
	{
		char	   *kek_id;

		pii_random(blind_key, PII_KEY_LEN);
		values[1] = PointerGetDatum(pii_wrap_key(blind_key, "blind-index", 0, 1, &kek_id));
		values[0] = CStringGetTextDatum(kek_id);
		recovery_spi_exec("INSERT INTO recovery.pii_keyring (purpose, kek_id, wrapped) "
						  "VALUES ('blind-index', $1, $2) ON CONFLICT (purpose) DO NOTHING",
						  2, argtypes, values, NULL, SPI_OK_INSERT);
		if (SPI_processed == 1)
			remember_made_key(0);
		else					/* another transaction made it first */
			recovery_spi_exec("SELECT kek_id, wrapped FROM recovery.pii_keyring WHERE purpose = 'blind-index'",
							  0, NULL, NULL, NULL, SPI_OK_SELECT);
	}
	if (SPI_tuptable != NULL && SPI_processed > 0)
		pii_unwrap_key(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
					   recovery_spi_text(0, 1), "blind-index", 0, 1, blind_key);
	keys_finish(&session);
	blind_key_loaded = true;
	memcpy(key, blind_key, PII_KEY_LEN);
	return true;
}

/*
 * recovery.pii_destroy_key(customer_id): the erasure.  The wrapped key is
 * overwritten (a row is made if the customer never had a key, so nothing
 * personal can be sealed for them again) and every backend forgets it when
 * this transaction commits.
 */
PG_FUNCTION_INFO_V1(recovery_pii_destroy_key);

Datum
recovery_pii_destroy_key(PG_FUNCTION_ARGS)
{
	KeysSession session;
	int64		customer_id = PG_GETARG_INT64(0);
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(customer_id)};
	bool		found;

	remember_relid();
	keys_connect(&session);
	recovery_spi_exec("INSERT INTO recovery.customer_keys AS k (customer_id, version, kek_id, wrapped, destroyed_at) "
					  "VALUES ($1, 1, NULL, NULL, now()) "
					  "ON CONFLICT (customer_id) DO UPDATE SET wrapped = NULL, kek_id = NULL, "
					  "       destroyed_at = coalesce(k.destroyed_at, now())",
					  1, argtypes, values, NULL, SPI_OK_INSERT);
	keys_finish(&session);

	if (key_cache != NULL)
	{
		CachedKey  *entry = hash_search(key_cache, &customer_id, HASH_FIND, &found);

		if (found)
		{
			explicit_bzero(entry->key, PII_KEY_LEN);
			entry->destroyed = true;
		}
	}
	CacheInvalidateRelcacheByRelid(customer_keys_relid);
	PG_RETURN_VOID();
}

/*
 * recovery.rewrap_keys(batch): re-wraps up to batch keys that are not under
 * the current KEK; returns how many.  recovery.rotate_kek() calls it until
 * it returns 0, a transaction a batch, so a rotation stopped anywhere goes
 * on where it stopped.
 */
PG_FUNCTION_INFO_V1(recovery_rewrap_keys);

Datum
recovery_rewrap_keys(PG_FUNCTION_ARGS)
{
	KeysSession session;
	int32		batch = PG_GETARG_INT32(0);
	const char *current = pii_current_kek_id();
	Oid			argtypes[3] = {TEXTOID, INT4OID, INT8OID};
	Datum		values[3];
	int64		done = 0;
	SPITupleTable *rows;
	uint64		nrows;

	remember_relid();
	keys_connect(&session);
	values[0] = CStringGetTextDatum(current);
	values[1] = Int32GetDatum(batch);
	/* SKIP LOCKED: a key being erased or made is left to the next batch */
	recovery_spi_exec("SELECT customer_id, version, kek_id, wrapped FROM recovery.customer_keys "
					  "WHERE wrapped IS NOT NULL AND kek_id <> $1 "
					  "ORDER BY customer_id LIMIT $2 FOR UPDATE SKIP LOCKED",
					  2, argtypes, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	row = rows->vals[i];
		bool		isnull;
		int64		customer_id = DatumGetInt64(SPI_getbinval(row, rows->tupdesc, 1, &isnull));
		int32		version = DatumGetInt32(SPI_getbinval(row, rows->tupdesc, 2, &isnull));
		char	   *kek_id = SPI_getvalue(row, rows->tupdesc, 3);
		bytea	   *wrapped = DatumGetByteaPP(SPI_getbinval(row, rows->tupdesc, 4, &isnull));
		uint8		key[PII_KEY_LEN];
		char	   *new_kek;
		Datum		update[3];
		Oid			types[3] = {INT8OID, TEXTOID, BYTEAOID};

		pii_unwrap_key(wrapped, kek_id, "customer", customer_id, version, key);
		update[0] = Int64GetDatum(customer_id);
		update[2] = PointerGetDatum(pii_wrap_key(key, "customer", customer_id, version, &new_kek));
		update[1] = CStringGetTextDatum(new_kek);
		explicit_bzero(key, PII_KEY_LEN);
		recovery_spi_exec("UPDATE recovery.customer_keys SET kek_id = $2, wrapped = $3, rewrapped_at = now() "
						  "WHERE customer_id = $1",
						  3, types, update, NULL, SPI_OK_UPDATE);
		done++;
	}

	/* the blind-index key goes with the first batch */
	recovery_spi_exec("SELECT kek_id, wrapped FROM recovery.pii_keyring WHERE kek_id <> $1 FOR UPDATE",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		bool		isnull;
		uint8		key[PII_KEY_LEN];
		char	   *new_kek;
		Oid			types[2] = {TEXTOID, BYTEAOID};
		Datum		update[2];

		pii_unwrap_key(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
					   recovery_spi_text(0, 1), "blind-index", 0, 1, key);
		update[1] = PointerGetDatum(pii_wrap_key(key, "blind-index", 0, 1, &new_kek));
		update[0] = CStringGetTextDatum(new_kek);
		explicit_bzero(key, PII_KEY_LEN);
		recovery_spi_exec("UPDATE recovery.pii_keyring SET kek_id = $1, wrapped = $2 WHERE purpose = 'blind-index'",
						  2, types, update, NULL, SPI_OK_UPDATE);
		done++;
	}
	keys_finish(&session);
	/* every backend drops the keys it unwrapped under the old KEK */
	if (done > 0)
		CacheInvalidateRelcacheByRelid(customer_keys_relid);
	PG_RETURN_INT64(done);
}

/* The key of version that this transaction retired for the customer, if any. */
bool
pii_retired_key(int64 customer_id, int32 version, uint8 *key)
{
	if (!retired.valid || retired.customer_id != customer_id || retired.version != version)
		return false;
	memcpy(key, retired.key, PII_KEY_LEN);
	return true;
}

/*
 * recovery.rotate_data_key(customer_id) → the new version: a new random
 * data key for the customer.  The old one opens this transaction's reads
 * still (pii_retired_key), and nothing after: recovery.customer_rotate_key()
 * seals the customer's values again under the new one in the same
 * transaction.
 */
PG_FUNCTION_INFO_V1(recovery_rotate_data_key);

Datum
recovery_rotate_data_key(PG_FUNCTION_ARGS)
{
	int64		customer_id = PG_GETARG_INT64(0);
	KeysSession session;
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, BYTEAOID};
	Datum		values[4];
	int32		version;
	uint8		key[PII_KEY_LEN];
	char	   *kek_id;
	bool		isnull;

	remember_relid();
	keys_connect(&session);
	values[0] = Int64GetDatum(customer_id);
	recovery_spi_exec("SELECT version, kek_id, wrapped FROM recovery.customer_keys "
					  "WHERE customer_id = $1 FOR UPDATE",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		/* nothing sealed for the customer yet: the first key is new anyway */
		keys_finish(&session);
		(void) pii_customer_key(customer_id, true, &version, key);
		explicit_bzero(key, PII_KEY_LEN);
		PG_RETURN_INT32(version);
	}
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("customer %lld was erased: their data key is destroyed, not rotated",
						(long long) customer_id)));
	pii_unwrap_key(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)),
				   recovery_spi_text(0, 2), "customer", customer_id, version, retired.key);
	retired.customer_id = customer_id;
	retired.version = version;
	retired.valid = true;

	pii_random(key, PII_KEY_LEN);
	values[1] = Int32GetDatum(version + 1);
	values[3] = PointerGetDatum(pii_wrap_key(key, "customer", customer_id, version + 1, &kek_id));
	values[2] = CStringGetTextDatum(kek_id);
	explicit_bzero(key, PII_KEY_LEN);
	recovery_spi_exec("UPDATE recovery.customer_keys SET version = $2, kek_id = $3, wrapped = $4, "
					  "rewrapped_at = now() WHERE customer_id = $1",
					  4, argtypes, values, NULL, SPI_OK_UPDATE);
	keys_finish(&session);

	/* this backend reads the new key from now on, the others at commit */
	forget_key(customer_id);
	CacheInvalidateRelcacheByRelid(customer_keys_relid);
	PG_RETURN_INT32(version + 1);
}

/* recovery.pii_current_kek(): the id of the KEK keys are wrapped with now */
PG_FUNCTION_INFO_V1(recovery_pii_current_kek);

Datum
recovery_pii_current_kek(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(pii_current_kek_id()));
}
