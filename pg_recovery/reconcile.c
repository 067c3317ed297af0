/*
 * reconcile.c
 *		Payments found, matched to cases and applied.
 *
 * The rules, best first; a candidate is always in the payment's currency:
 *		1. the case reference the system issues (RC-000042)		1.00
 *		2. an invoice that is in a case (INV-2026-000123)			0.95
 *		3. the customer's number (CUST-17) with an open case:		0.90 when the
 *		   amount is its balance, else 0.70
 *		4. the payer's name, when one open case has it:			0.80 with the
 *		   balance, else 0.60
 * Lines scored at least recovery.reconcile_auto_apply are applied through
 * case_record_payment(), as money a person records is; the others with a
 * candidate wait for review, and so does a line the case cannot take.
 *
 * Each rule reads the smaller side, decided at the first batch of lines
 * that need it: when the database has fewer rows for the rule than the
 * batch has lines waiting, it reads them all once for the whole import;
 * otherwise it asks for each batch's distinct tokens.  A million-line
 * statement against a few cases, and a few lines against a million cases,
 * both cost what they should.  Candidates read once are not read again
 * after lines are applied: a case closed or paid meanwhile refuses the money
 * in case_record_payment(), and the line waits for review.
 */
#include "recovery.h"
#include "payment_tokens.h"
#include "reconcile.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/date.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

typedef struct Candidate
{
	int64		case_id;
	int64		customer_id;
	bool		has_balance;
	int64		balance;
	char		currency[4];
	struct Candidate *next;		/* other cases under the same token */
} Candidate;

typedef struct TokenEntry
{
	const char *key;
	Candidate  *candidates;
	uint32		hash;
	char		status;
} TokenEntry;

#define SH_PREFIX tokens
#define SH_ELEMENT_TYPE TokenEntry
#define SH_KEY_TYPE const char *
#define SH_KEY key
#define SH_HASH_KEY(tb, key) payment_token_hash(key)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, entry) ((entry)->hash)
#define SH_EQUAL(tb, a, b) (strcmp((a), (b)) == 0)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* One rule: how a line's token is read, and how the database is asked. */
typedef struct Rule
{
	const char *name;			/* how a match's reason begins */
	int			score;			/* hundredths; with the balance */
	int			score_without_balance;	/* -1: the rule needs no balance */
	MatchToken	token;			/* what it looks up */
	const char *count_sql;		/* $1: the most rows worth counting */
	const char *all_sql;		/* every candidate */
	const char *some_sql;		/* the candidates of $1 */
	Oid			array_type;		/* of $1 in some_sql */
} Rule;

/* How a rule reads the database in this import, decided at its first batch. */
typedef enum RuleMode
{
	RULE_UNDECIDED,
	RULE_EMPTY,					/* the database has nothing for it */
	RULE_ALL,					/* read whole, once */
	RULE_TOKENS					/* asked for each batch's tokens */
} RuleMode;

/* the payer's name lowered as SQL lowers it, for a name that is not ASCII */
static const char *
lowered_payer(PaymentLine *line, MemoryContext context)
{
	const char *s = line->payer;
	size_t		len;
	char	   *lowered;

	while (*s == ' ')
		s++;
	len = strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		len--;
	lowered = str_tolower(s, len, DEFAULT_COLLATION_OID);
	line->tokens[TOKEN_PAYER] = MemoryContextStrdup(context, lowered);
	line->token_hashes[TOKEN_PAYER] = payment_token_hash(lowered);
	line->payer_unlowered = false;
	pfree(lowered);
	return line->tokens[TOKEN_PAYER];
}

#define OPEN_CASES_OF_CUSTOMERS \
	" FROM recovery.customers cu JOIN recovery.recovery_cases c ON c.customer_id = cu.id" \
	" WHERE NOT recovery.case_state_is_terminal(c.state)"

/* names are sealed: read through the decrypting view */
#define OPEN_CASES_OF_NAMED_CUSTOMERS \
	" FROM recovery.customers_decrypted cu JOIN recovery.recovery_cases c ON c.customer_id = cu.id" \
	" WHERE NOT recovery.case_state_is_terminal(c.state)"

static const Rule rules[] = {
	{"case reference", 100, -1, TOKEN_CASE,
		"SELECT count(*) FROM (SELECT 1 FROM recovery.recovery_cases LIMIT $1) s",
		"SELECT c.id::text, c.currency::text, c.id, c.customer_id, NULL::bigint FROM recovery.recovery_cases c",
		"SELECT c.id::text, c.currency::text, c.id, c.customer_id, NULL::bigint FROM recovery.recovery_cases c"
		" WHERE c.id = ANY ($1)", INT8ARRAYOID},
	{"invoice", 95, -1, TOKEN_INVOICE,
		"SELECT count(*) FROM (SELECT 1 FROM recovery.payments p"
		" WHERE p.case_id IS NOT NULL AND p.external_ref IS NOT NULL LIMIT $1) s",
		"SELECT p.external_ref, p.currency::text, p.case_id, p.customer_id, NULL::bigint FROM recovery.payments p"
		" WHERE p.case_id IS NOT NULL AND p.external_ref IS NOT NULL ORDER BY p.case_id",
		"SELECT p.external_ref, p.currency::text, p.case_id, p.customer_id, NULL::bigint FROM recovery.payments p"
		" WHERE p.case_id IS NOT NULL AND p.external_ref = ANY ($1) ORDER BY p.case_id", TEXTARRAYOID},
	{"customer", 90, 70, TOKEN_CUSTOMER,
		"SELECT count(*) FROM (SELECT 1" OPEN_CASES_OF_CUSTOMERS " AND cu.external_ref IS NOT NULL LIMIT $1) s",
		"SELECT cu.external_ref, c.currency::text, c.id, c.customer_id, c.balance" OPEN_CASES_OF_CUSTOMERS
		" AND cu.external_ref IS NOT NULL ORDER BY c.id",
		"SELECT cu.external_ref, c.currency::text, c.id, c.customer_id, c.balance" OPEN_CASES_OF_CUSTOMERS
		" AND cu.external_ref = ANY ($1) ORDER BY c.id", TEXTARRAYOID},
	{"payer name", 80, 60, TOKEN_PAYER,
		"SELECT count(*) FROM (SELECT 1" OPEN_CASES_OF_CUSTOMERS " AND cu.erased_at IS NULL LIMIT $1) s",
		"SELECT lower(cu.name), c.currency::text, min(c.id), min(cu.id), min(c.balance)" OPEN_CASES_OF_NAMED_CUSTOMERS
		" AND cu.erased_at IS NULL GROUP BY lower(cu.name), c.currency HAVING count(*) = 1",
		"SELECT lower(cu.name), c.currency::text, min(c.id), min(cu.id), min(c.balance)" OPEN_CASES_OF_NAMED_CUSTOMERS
		" AND cu.erased_at IS NULL AND lower(cu.name) = ANY ($1)"
		" GROUP BY lower(cu.name), c.currency HAVING count(*) = 1", TEXTARRAYOID},
};

#define N_RULES lengthof(rules)

struct ReconcileState
{
	RuleMode	mode[N_RULES];
	tokens_hash *table[N_RULES];
	MemoryContext all;			/* the tables read whole */
	MemoryContext batch;		/* those of one batch's tokens */
};

static const char *
token_of(PaymentLine *line, MatchToken kind, MemoryContext context)
{
	if (kind == TOKEN_PAYER && line->payer_unlowered)
		return lowered_payer(line, context);
	return line->tokens[kind];
}

static bool
payable(const PaymentLine *line)
{
	return line->has_amount && line->amount > 0 && line->problem == NULL;
}

/* the rows of the last SPI query into the rule's table */
static void
remember_candidates(tokens_hash *table, MemoryContext context)
{
	uint64		i;
	MemoryContext old = MemoryContextSwitchTo(context);

	for (i = 0; i < SPI_processed; i++)
	{
		char	   *key = recovery_spi_text(i, 1);
		char	   *currency = recovery_spi_text(i, 2);
		Candidate  *candidate = palloc0(sizeof(Candidate));
		Candidate **last;
		TokenEntry *entry;
		bool		found;

		if (key == NULL || currency == NULL)
			continue;
		candidate->case_id = recovery_spi_int64(i, 3, NULL);
		candidate->customer_id = recovery_spi_int64(i, 4, NULL);
		candidate->balance = recovery_spi_int64(i, 5, &candidate->has_balance);
		candidate->has_balance = !candidate->has_balance;
		strlcpy(candidate->currency, currency, sizeof(candidate->currency));
		entry = tokens_insert(table, key, &found);
		if (!found)
			entry->candidates = NULL;
		/* in the order the query gave: the oldest case first */
		for (last = &entry->candidates; *last; last = &(*last)->next)
			;
		*last = candidate;
	}
	MemoryContextSwitchTo(old);
}

/*
 * Reads what the database has for the tokens the batch quotes; false when
 * it has nothing for this rule, and the lines need not be read for it.
 */
static bool
load_rule(ReconcileState *state, int r, PaymentLine *lines, int n_lines)
{
	const Rule *rule = &rules[r];
	int64		waiting = 0,
				quoting = 0;
	int			i;

	for (i = 0; i < n_lines; i++)
		waiting += payable(&lines[i]) && lines[i].score < 0;
	if (waiting == 0 || state->mode[r] == RULE_EMPTY)
		return false;
	if (state->mode[r] == RULE_ALL)
		return true;

	/* a schema not yet updated to 0.12 (the new library before ALTER
	 * EXTENSION UPDATE) has no decrypting view: no names are matched */
	if (state->mode[r] == RULE_UNDECIDED && rule->token == TOKEN_PAYER &&
		!OidIsValid(get_relname_relid("customers_decrypted",
									  get_namespace_oid("recovery", false))))
	{
		state->mode[r] = RULE_EMPTY;
		return false;
	}
	if (state->mode[r] == RULE_UNDECIDED)
	{
		/* how many rows the rule has, up to the lines waiting */
		Datum		limit = Int64GetDatum(waiting);
		Oid			int8oid = INT8OID;
		int64		in_database;

		recovery_spi_exec(rule->count_sql, 1, &int8oid, &limit, NULL, SPI_OK_SELECT);
		in_database = recovery_spi_int64(0, 1, NULL);
		state->mode[r] = in_database == 0 ? RULE_EMPTY
			: in_database < waiting ? RULE_ALL : RULE_TOKENS;
		if (state->mode[r] == RULE_EMPTY)
			return false;
		if (state->mode[r] == RULE_ALL)
		{
			state->table[r] = tokens_create(state->all, 256, NULL);
			recovery_spi_exec(rule->all_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
			remember_candidates(state->table[r], state->all);
			return true;
		}
	}

	/* more rows than lines: ask for the distinct tokens of the batch only */
	{
		tokens_hash *distinct = tokens_create(state->batch, (uint32) waiting, NULL);
		MemoryContext old = MemoryContextSwitchTo(state->batch);
		Datum	   *values;
		int			n = 0;
		Datum		array;
		tokens_iterator it;
		TokenEntry *entry;
		bool		found;

		for (i = 0; i < n_lines; i++)
		{
			const char *token;

			if (!payable(&lines[i]) || lines[i].score >= 0 ||
				(token = token_of(&lines[i], rule->token, state->batch)) == NULL)
				continue;
			entry = tokens_insert_hash(distinct, token, lines[i].token_hashes[rule->token], &found);
			if (!found)
				quoting++;
		}
		state->table[r] = tokens_create(state->batch, 256, NULL);
		if (quoting > 0)
		{
			values = palloc(sizeof(Datum) * quoting);
			tokens_start_iterate(distinct, &it);
			while ((entry = tokens_iterate(distinct, &it)) != NULL)
				values[n++] = rule->array_type == INT8ARRAYOID
					? Int64GetDatum(strtoll(entry->key, NULL, 10)) : CStringGetTextDatum(entry->key);
			array = rule->array_type == INT8ARRAYOID
				? PointerGetDatum(construct_array(values, n, INT8OID, 8, true, TYPALIGN_DOUBLE))
				: PointerGetDatum(construct_array(values, n, TEXTOID, -1, false, TYPALIGN_INT));
			recovery_spi_exec(rule->some_sql, 1, (Oid *) &rule->array_type, &array, NULL, SPI_OK_SELECT);
			remember_candidates(state->table[r], state->batch);
		}
		MemoryContextSwitchTo(old);
		return quoting > 0;
	}
}

static char *
case_reference(int64 case_id)
{
	return psprintf("RC-%06lld", (long long) case_id);
}

static void
match_line(ReconcileState *state, PaymentLine *line, int r)
{
	const Rule *rule = &rules[r];
	const char *token = token_of(line, rule->token, state->batch);
	TokenEntry *entry;
	Candidate  *candidate,
			   *chosen = NULL;
	bool		balance;
	const char *named;
	MemoryContext old;

	if (token == NULL ||
		(entry = tokens_lookup_hash(state->table[r], token, line->token_hashes[rule->token])) == NULL)
		return;
	for (candidate = entry->candidates; candidate; candidate = candidate->next)
		if (strcmp(candidate->currency, line->currency) == 0 &&
			(chosen == NULL ||
			 (candidate->has_balance && candidate->balance == line->amount && chosen->balance != line->amount)))
			chosen = candidate;
	if (chosen == NULL)
		return;
	balance = chosen->has_balance && chosen->balance == line->amount;
	line->case_id = chosen->case_id;
	line->customer_id = chosen->customer_id;
	line->score = rule->score_without_balance < 0 || balance ? rule->score : rule->score_without_balance;

	/* "<rule> <what it found>[ and the balance]": the payer's name is not repeated */
	named = rule->token == TOKEN_CASE ? case_reference(chosen->case_id)
		: rule->token == TOKEN_PAYER ? NULL : token;
	old = MemoryContextSwitchTo(state->batch);
	line->reason = psprintf("%s%s%s%s", rule->name, named ? " " : "", named ? named : "",
							balance ? " and the balance" : "");
	MemoryContextSwitchTo(old);
}

ReconcileState *
reconcile_begin(void)
{
	ReconcileState *state = palloc0(sizeof(ReconcileState));

	state->all = AllocSetContextCreate(CurrentMemoryContext, "reconcile candidates",
									   ALLOCSET_DEFAULT_SIZES);
	state->batch = AllocSetContextCreate(CurrentMemoryContext, "reconcile batch",
										 ALLOCSET_DEFAULT_SIZES);
	return state;
}

/*
 * Each payable line's best candidate (case_id, customer_id, score, reason),
 * by the rules in order.  A case given with the text (case_id) stands for
 * the reference of the lines that quote none.  The reasons live until the
 * next batch.
 */
void
reconcile_match(ReconcileState *state, PaymentLine *lines, int n_lines, int64 case_id)
{
	int			i,
				r;

	MemoryContextReset(state->batch);
	if (case_id > 0)
	{
		const char *reference = MemoryContextStrdup(state->batch, case_reference(case_id));
		const char *number = MemoryContextStrdup(state->batch, psprintf("%lld", (long long) case_id));

		for (i = 0; i < n_lines; i++)
			if (lines[i].reference == NULL)
			{
				lines[i].reference = reference;
				lines[i].tokens[TOKEN_CASE] = number;
				lines[i].token_hashes[TOKEN_CASE] = payment_token_hash(number);
			}
	}

	SPI_connect();
	/* each rule reads only for the lines the rules before it left */
	for (r = 0; r < (int) N_RULES; r++)
	{
		if (!load_rule(state, r, lines, n_lines))
			continue;
		for (i = 0; i < n_lines; i++)
			if (payable(&lines[i]) && lines[i].score < 0)
				match_line(state, &lines[i], r);
	}
	SPI_finish();
}

void
reconcile_end(ReconcileState *state)
{
	MemoryContextDelete(state->batch);
	MemoryContextDelete(state->all);
	pfree(state);
}

/* An error a case gives for money it cannot take: the line waits for review. */
static bool
refused_by_case(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_RECOVERY_ILLEGAL_TRANSITION ||
		sqlerrcode == ERRCODE_RECOVERY_VALIDATION ||
		sqlerrcode == ERRCODE_RECOVERY_CURRENCY_MISMATCH ||
		sqlerrcode == ERRCODE_RECOVERY_OVERPAYMENT;
}

/*
 * case_record_payment() in a subtransaction, as PL/pgSQL's EXCEPTION does:
 * the receipt's id, or 0 with why the case refused.
 */
static int64
record_payment(const PaymentLine *line, int64 extraction_id, char **refused)
{
	static const char *sql =
		"SELECT r.id FROM recovery.case_record_payment($1, $2, $3, $4, $5) r";
	Oid			types[5] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[5];
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	/* the receipt's reference is in clear: the payer's name stays out of it */
	char	   *note = psprintf("extraction %lld line %d: %s", (long long) extraction_id,
								line->line_no > 0 ? line->line_no : 1,
								line->reference ? line->reference : "");
	int64		receipt = 0;

	/* left(note, 200), as characters */
	note[pg_mbcharcliplen(note, strlen(note), 200)] = '\0';
	values[0] = Int64GetDatum(line->case_id);
	values[1] = Int64GetDatum(line->amount);
	values[2] = CStringGetTextDatum(line->currency);
	values[3] = CStringGetTextDatum(note);
	values[4] = line->has_date ? TimestampTzGetDatum(date2timestamptz_opt_overflow(line->booked_on, NULL))
		: TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		recovery_spi_exec(sql, 5, types, values, NULL, SPI_OK_SELECT);
		receipt = recovery_spi_int64(0, 1, NULL);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(old);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
		if (!refused_by_case(error->sqlerrcode))
			ReThrowError(error);
		*refused = pstrdup(error->message);
		FreeErrorData(error);
	}
	PG_END_TRY();
	return receipt;
}

/*
 * What becomes of each line: ignored (not money received), unmatched (no
 * candidate), applied (scored at least threshold, and the case took it) or
 * review.
 */
void
reconcile_apply(ReconcileState *state, PaymentLine *lines, int n_lines, int64 extraction_id,
				double threshold)
{
	int			i;

	SPI_connect();
	for (i = 0; i < n_lines; i++)
	{
		PaymentLine *line = &lines[i];
		char	   *refused = NULL;

		if (!payable(line))
		{
			line->status = PAYMENT_IGNORED;
			line->reason = line->problem ? line->problem : "money paid out, not received";
			continue;
		}
		if (line->score < 0)
		{
			line->status = PAYMENT_UNMATCHED;
			if (line->hold)
				line->reason = line->hold;
			continue;
		}
		line->status = PAYMENT_REVIEW;
		if (line->hold)
		{
			/* the statement does not add up, say: a person decides */
			MemoryContext old = MemoryContextSwitchTo(state->batch);

			line->reason = psprintf("%s; held: %s", line->reason, line->hold);
			MemoryContextSwitchTo(old);
			continue;
		}
		if (line->score < threshold * 100 - 1e-9)
			continue;
		line->receipt_id = record_payment(line, extraction_id, &refused);
		if (line->receipt_id > 0)
			line->status = PAYMENT_APPLIED;
		else
			line->reason = MemoryContextStrdup(state->batch,
											   psprintf("%s; not applied: %s", line->reason, refused));
	}
	SPI_finish();
}
