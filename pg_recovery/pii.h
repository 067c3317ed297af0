/*
 * pii.h
 *		Personal data encrypted at rest: a data key per customer, wrapped by
 *		a key-encryption key (KEK) that never enters the database.
 *
 * pii_kek.c	the KEKs from recovery.key_command, AES-256-GCM, wrapping;
 *				a generation counter tells pii_keys.c when they change
 * pii_keys.c	customers' data keys and the blind-index key, cached per
 *				backend, created, destroyed (erasure) and re-wrapped
 * pii_seal.c	the sealed values ("envelopes"), the trigger that seals
 *				what is written and the functions that open it
 */
#ifndef PII_H
#define PII_H

#include "postgres.h"

#define PII_KEY_LEN		32		/* AES-256 */
#define PII_NONCE_LEN	12		/* GCM's own size */
#define PII_TAG_LEN		16
#define PII_KEK_ID_MAX	64

/* a wrapped key: nonce, tag, then the key itself encrypted */
#define PII_WRAPPED_LEN	(PII_NONCE_LEN + PII_TAG_LEN + PII_KEY_LEN)

/* Class PR: the key that would decrypt is not there (KEK missing or wrong). */
#define ERRCODE_RECOVERY_KEY_UNAVAILABLE	MAKE_SQLSTATE('P','R','0','1','2')

/* pii_kek.c */
extern void recovery_define_pii_gucs(void);
extern bool pii_encryption_on(void);
extern const char *pii_current_kek_id(void);
extern uint32 pii_kek_generation(void);
extern void pii_gcm_seal(const uint8 *key, const uint8 *aad, int aadlen,
						 const uint8 *in, int inlen, uint8 *out);
extern bool pii_gcm_open(const uint8 *key, const uint8 *aad, int aadlen,
						 const uint8 *in, int inlen, uint8 *out);
extern bytea *pii_wrap_key(const uint8 *key, const char *purpose, int64 id,
						   int32 version, char **kek_id);
extern void pii_unwrap_key(const bytea *wrapped, const char *kek_id,
						   const char *purpose, int64 id, int32 version,
						   uint8 *key);
extern void pii_random(uint8 *buf, int len);
extern void pii_gcm_wipe(void);

/* pii_keys.c */
typedef enum PiiKeyState
{
	PII_KEY_LIVE,				/* key filled in */
	PII_KEY_DESTROYED			/* the customer was erased */
} PiiKeyState;

extern void recovery_pii_keys_init(void);
extern PiiKeyState pii_customer_key(int64 customer_id, bool create,
									int32 *version, uint8 *key);
extern bool pii_blind_index_key(uint8 *key, bool create);
extern void pii_forget_keys(void);
extern bool pii_retired_key(int64 customer_id, int32 version, uint8 *key);

/* pii_seal.c */

/* whose key seals what no customer's is (a statement line no case matched) */
#define PII_NO_CUSTOMER		0

extern bool pii_is_envelope(const bytea *value);
extern bytea *pii_seal_text(const char *table, const char *column, int64 row_id,
							int64 customer_id, const char *text, int len,
							const char *index_kind, bytea **index);

#endif							/* PII_H */
