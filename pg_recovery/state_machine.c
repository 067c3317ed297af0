/*
 * state_machine.c
 *		The case state machine: the one table of legal transitions, and
 *		recovery.case_transition(), the only way a case changes state by
 *		an event a person or a job picks.
 *
 * Nothing else (SQL, the gateway, the web app) repeats this table: they
 * ask recovery.case_transitions() for it.  The move to "resolved" is not
 * an event here; money.c makes it when the balance reaches zero.
 */
#include "recovery.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#define MAX_FROM_STATES 5
#define MAX_INSTALMENTS 120
#define MAX_REASON_LEN 2000

typedef struct CaseState
{
	const char *name;
	bool		terminal;
	const char *meaning;
} CaseState;

static const CaseState case_states[] = {
	{"open", false, "opened from a failed or overdue payment; nobody contacted yet"},
	{"contacted", false, "a reminder was delivered or a contact was logged"},
	{"promised", false, "the customer promised to pay an amount by a date"},
	{"plan", false, "a payment plan (instalments) is active"},
	{"disputed", false, "the customer disputes the debt; automatic reminders pause"},
	{"escalated", false, "handed to legal or an agency; automatic reminders stop"},
	{"resolved", true, "balance is zero (terminal unless reopened)"},
	{"written_off", true, "deemed unrecoverable (terminal unless reopened)"},
	{"cancelled", true, "opened in error or dispute upheld (terminal)"},
};

/* What an event needs in its details object, beyond an optional reason. */
typedef enum EventDetails
{
	DETAILS_NONE,
	DETAILS_REASON,				/* "reason" required */
	DETAILS_PROMISE,			/* "amount" and "due_date" required */
	DETAILS_PLAN,				/* "instalments" required */
} EventDetails;

typedef struct CaseTransition
{
	const char *event;
	const char *from[MAX_FROM_STATES + 1];	/* NULL-terminated */
	const char *to;
	const char *required_role;	/* NULL: any role that may call us */
	EventDetails details;
} CaseTransition;

static const CaseTransition case_transitions[] = {
	{"contact", {"open"}, "contacted", NULL, DETAILS_NONE},
	{"promise", {"open", "contacted", "promised"}, "promised", NULL, DETAILS_PROMISE},
	{"promise_broken", {"promised"}, "contacted", NULL, DETAILS_NONE},
	{"plan", {"open", "contacted", "promised"}, "plan", NULL, DETAILS_PLAN},
	{"plan_default", {"plan"}, "contacted", NULL, DETAILS_NONE},
	{"dispute", {"open", "contacted", "promised", "plan"}, "disputed", NULL, DETAILS_REASON},
	{"dispute_rejected", {"disputed"}, "contacted", NULL, DETAILS_NONE},
	{"dispute_upheld", {"disputed"}, "cancelled", NULL, DETAILS_NONE},
	{"escalate", {"open", "contacted", "promised", "plan"}, "escalated", NULL, DETAILS_NONE},
	{"write_off", {"contacted", "promised", "plan", "escalated"}, "written_off",
	RECOVERY_ROLE_MANAGER, DETAILS_REASON},
	{"cancel", {"open"}, "cancelled", RECOVERY_ROLE_ADMIN, DETAILS_NONE},
	{"reopen", {"resolved", "written_off"}, "contacted", NULL, DETAILS_NONE},
};

static const CaseState *
find_state(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(case_states); i++)
		if (strcmp(case_states[i].name, name) == 0)
			return &case_states[i];
	return NULL;
}

bool
recovery_state_is_terminal(const char *state)
{
	const CaseState *s = find_state(state);

	return s != NULL && s->terminal;
}

static const CaseTransition *
find_event(const char *event)
{
	int			i;

	for (i = 0; i < lengthof(case_transitions); i++)
		if (strcmp(case_transitions[i].event, event) == 0)
			return &case_transitions[i];
	return NULL;
}

static bool
transition_allowed_from(const CaseTransition *t, const char *state)
{
	int			i;

	for (i = 0; t->from[i] != NULL; i++)
		if (strcmp(t->from[i], state) == 0)
			return true;
	return false;
}

/* Comma-separated list of the events a case in "state" accepts. */
static char *
events_accepted_in(const char *state)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < lengthof(case_transitions); i++)
		if (transition_allowed_from(&case_transitions[i], state))
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
							 case_transitions[i].event);
	return buf.len ? buf.data : pstrdup("none");
}

static char *
all_event_names(void)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < lengthof(case_transitions); i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", case_transitions[i].event);
	return buf.data;
}

static Datum
required_details_array(EventDetails details)
{
	const char *names[2];
	int			n = 0;
	Datum		elems[2];
	int			i;

	switch (details)
	{
		case DETAILS_NONE:
			break;
		case DETAILS_REASON:
			names[n++] = "reason";
			break;
		case DETAILS_PROMISE:
			names[n++] = "amount";
			names[n++] = "due_date";
			break;
		case DETAILS_PLAN:
			names[n++] = "instalments";
			break;
	}
	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(names[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* One output row of case_transitions(): event, from, to, role, details. */
static void
put_transition_row(ReturnSetInfo *rsinfo, const CaseTransition *t,
				   const char *from)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = CStringGetTextDatum(t->event);
	values[1] = CStringGetTextDatum(from);
	values[2] = CStringGetTextDatum(t->to);
	if (t->required_role)
		values[3] = CStringGetTextDatum(t->required_role);
	else
		nulls[3] = true;
	values[4] = required_details_array(t->details);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(recovery_case_transitions);
PG_FUNCTION_INFO_V1(recovery_case_transitions_for_case);
PG_FUNCTION_INFO_V1(recovery_case_states);
PG_FUNCTION_INFO_V1(recovery_case_state_is_valid);
PG_FUNCTION_INFO_V1(recovery_case_state_is_terminal);
PG_FUNCTION_INFO_V1(recovery_case_transition);

/* recovery.case_transitions(): the whole table, one row per (event, from) */
Datum
recovery_case_transitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i,
				j;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < lengthof(case_transitions); i++)
		for (j = 0; case_transitions[i].from[j] != NULL; j++)
			put_transition_row(rsinfo, &case_transitions[i],
							   case_transitions[i].from[j]);
	return (Datum) 0;
}

/*
 * recovery.case_transitions(case_id): the events this case accepts now
 * that the caller's role may fire.
 */
Datum
recovery_case_transitions_for_case(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		case_id = PG_GETARG_INT64(0);
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	char	   *state;
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	values[0] = Int64GetDatum(case_id);
	recovery_spi_exec("SELECT state FROM recovery.recovery_cases WHERE id = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_NOT_FOUND),
				 errmsg("recovery case %lld does not exist", (long long) case_id)));
	state = recovery_spi_text(0, 1);

	for (i = 0; i < lengthof(case_transitions); i++)
	{
		const CaseTransition *t = &case_transitions[i];

		if (!transition_allowed_from(t, state))
			continue;
		if (t->required_role && !recovery_caller_has_role(t->required_role))
			continue;
		put_transition_row(rsinfo, t, state);
	}
	SPI_finish();
	return (Datum) 0;
}

Datum
recovery_case_states(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < lengthof(case_states); i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(case_states[i].name);
		values[1] = BoolGetDatum(case_states[i].terminal);
		values[2] = CStringGetTextDatum(case_states[i].meaning);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
recovery_case_state_is_valid(PG_FUNCTION_ARGS)
{
	char	   *state = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(find_state(state) != NULL);
}

Datum
recovery_case_state_is_terminal(PG_FUNCTION_ARGS)
{
	char	   *state = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(recovery_state_is_terminal(state));
}

/*
 * Parse a strict ISO date "YYYY-MM-DD"; false when it is not one.
 */
static bool
parse_iso_date(const char *s, DateADT *result)
{
	int			y,
				m,
				d;
	char		tail;

	if (s == NULL || strlen(s) != 10 ||
		sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
		s[4] != '-' || s[7] != '-')
		return false;
	if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 ||
		d > day_tab[isleap(y)][m - 1])
		return false;
	*result = date2j(y, m, d) - POSTGRES_EPOCH_JDATE;
	return true;
}

/* A JSON number holding a whole number of minor units, or false. */
static bool
parse_minor_units(const char *jsontype, const char *text, int64 *result)
{
	char	   *end;
	long long	v;

	if (jsontype == NULL || strcmp(jsontype, "number") != 0 || text == NULL)
		return false;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || end == text)
		return false;
	*result = v;
	return true;
}

static void
details_error(const char *event, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_VALIDATION),
			 errmsg("invalid details for event \"%s\"", event),
			 errdetail("%s", what),
			 errhint("%s", hint)));
}

typedef struct Instalment
{
	int64		amount;
	DateADT		due_date;
} Instalment;

typedef struct TransitionDetails
{
	char	   *reason;			/* NULL when absent */
	int64		amount;			/* promise */
	DateADT		due_date;		/* promise */
	Instalment *instalments;	/* plan */
	int			n_instalments;
} TransitionDetails;

static void
check_not_past(const char *event, const char *field, DateADT date)
{
	if (date < GetSQLCurrentDate())
		details_error(event,
					  psprintf("The %s %s is in the past.", field,
							   DatumGetCString(DirectFunctionCall1(date_out,
																   DateADTGetDatum(date)))),
					  "Give a date from today on.");
}

static void
parse_promise(const char *event, Jsonb *details, int64 balance,
			  const char *currency, TransitionDetails *out)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(details)};

	recovery_spi_exec("SELECT jsonb_typeof($1->'amount'), $1->>'amount', "
					  "jsonb_typeof($1->'due_date'), $1->>'due_date'",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (!parse_minor_units(recovery_spi_text(0, 1), recovery_spi_text(0, 2),
						   &out->amount) || out->amount <= 0)
		details_error(event, "A promise needs \"amount\": a positive whole number of minor units.",
					  "For 125.50 EUR send {\"amount\": 12550, \"due_date\": \"2026-12-31\"}.");
	if (out->amount > balance)
		details_error(event,
					  psprintf("The promised amount %s is more than the case balance %s.",
							   recovery_format_money(out->amount, currency),
							   recovery_format_money(balance, currency)),
					  "Promise at most the balance.");
	if (!parse_iso_date(recovery_spi_text(0, 4), &out->due_date))
		details_error(event, "A promise needs \"due_date\" as a date in the form YYYY-MM-DD.",
					  "For example {\"amount\": 12550, \"due_date\": \"2026-12-31\"}.");
	check_not_past(event, "due_date", out->due_date);
}

static void
parse_plan(const char *event, Jsonb *details, int64 balance,
		   const char *currency, TransitionDetails *out)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(details)};
	const char *hint = "Send {\"instalments\": [{\"amount\": 5000, \"due_date\": \"2026-12-01\"}, ...]} "
		"with amounts in minor units that add up to the balance.";
	int64		total = 0;
	uint64		i;

	recovery_spi_exec("SELECT jsonb_typeof($1->'instalments')",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (recovery_spi_text(0, 1) == NULL ||
		strcmp(recovery_spi_text(0, 1), "array") != 0)
		details_error(event, "A plan needs \"instalments\": an array of {amount, due_date}.", hint);

	recovery_spi_exec("SELECT jsonb_typeof(e->'amount'), e->>'amount', e->>'due_date' "
					  "FROM jsonb_array_elements($1->'instalments') "
					  "WITH ORDINALITY AS t(e, n) ORDER BY n",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0 || SPI_processed > MAX_INSTALMENTS)
		details_error(event,
					  psprintf("A plan has from 1 to %d instalments, not %llu.",
							   MAX_INSTALMENTS, (unsigned long long) SPI_processed),
					  hint);

	out->n_instalments = SPI_processed;
	out->instalments = palloc(sizeof(Instalment) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		Instalment *inst = &out->instalments[i];

		if (!parse_minor_units(recovery_spi_text(i, 1), recovery_spi_text(i, 2),
							   &inst->amount) || inst->amount <= 0)
			details_error(event,
						  psprintf("Instalment %llu needs \"amount\": a positive whole number of minor units.",
								   (unsigned long long) i + 1),
						  hint);
		if (!parse_iso_date(recovery_spi_text(i, 3), &inst->due_date))
			details_error(event,
						  psprintf("Instalment %llu needs \"due_date\" in the form YYYY-MM-DD.",
								   (unsigned long long) i + 1),
						  hint);
		check_not_past(event, "instalment due_date", inst->due_date);
		if (i > 0 && inst->due_date <= out->instalments[i - 1].due_date)
			details_error(event,
						  psprintf("Instalment %llu is not due after instalment %llu.",
								   (unsigned long long) i + 1,
								   (unsigned long long) i),
						  "List the instalments in order of their due dates, one per date.");
		if (pg_add_s64_overflow(total, inst->amount, &total))
			details_error(event, "The instalments add up to more than a bigint can hold.", hint);
	}
	if (total != balance)
		details_error(event,
					  psprintf("The instalments add up to %s but the case balance is %s.",
							   recovery_format_money(total, currency),
							   recovery_format_money(balance, currency)),
					  hint);
}

static void
parse_details(const CaseTransition *t, Jsonb *details, int64 balance,
			  const char *currency, TransitionDetails *out)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(details)};
	char	   *type;

	memset(out, 0, sizeof(*out));
	recovery_spi_exec("SELECT jsonb_typeof($1), jsonb_typeof($1->'reason'), "
					  "btrim($1->>'reason')",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	type = recovery_spi_text(0, 1);
	if (strcmp(type, "object") != 0)
		details_error(t->event,
					  psprintf("The details are a JSON %s, not an object.", type),
					  "Send an object such as {\"reason\": \"customer called\"}.");
	if (recovery_spi_text(0, 2) != NULL)
	{
		if (strcmp(recovery_spi_text(0, 2), "string") != 0)
			details_error(t->event, "\"reason\" must be a string.",
						  "Send the reason as text.");
		out->reason = recovery_spi_text(0, 3);
		if (out->reason[0] == '\0')
			out->reason = NULL;
		else if (strlen(out->reason) > MAX_REASON_LEN)
			details_error(t->event,
						  psprintf("The reason is %zu bytes long; the limit is %d.",
								   strlen(out->reason), MAX_REASON_LEN),
						  "Shorten the reason; attach longer text as a note.");
	}

	switch (t->details)
	{
		case DETAILS_NONE:
			break;
		case DETAILS_REASON:
			if (out->reason == NULL)
				details_error(t->event,
							  psprintf("The event \"%s\" needs a \"reason\".", t->event),
							  "Send {\"reason\": \"...\"} saying why.");
			break;
		case DETAILS_PROMISE:
			parse_promise(t->event, details, balance, currency, out);
			break;
		case DETAILS_PLAN:
			parse_plan(t->event, details, balance, currency, out);
			break;
	}
}

/* What happens to the case's pending promises and instalments. */
static void
settle_pending_promises(int64 case_id, const CaseTransition *t)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	const char *outcome;

	if (strcmp(t->event, "promise") == 0 || strcmp(t->event, "plan") == 0)
		outcome = "superseded";
		else if (strcmp(t->event, "promise_broken") == 0 ||
			 strcmp(t->event, "plan_default") == 0)
		outcome = "broken";
	else if (strcmp(t->to, "promised") != 0 && strcmp(t->to, "plan") != 0)
		outcome = "cancelled";
	else
		return;

	values[0] = Int64GetDatum(case_id);
	values[1] = CStringGetTextDatum(outcome);
	recovery_spi_exec("UPDATE recovery.promises "
					  "SET outcome = $2, resolved_at = now(), version = version + 1 "
					  "WHERE case_id = $1 AND outcome = 'pending'",
					  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

static void
insert_promise(int64 case_id, int64 customer_id, const char *currency,
			   int64 event_id, const char *kind, int seq,
			   int64 amount, DateADT due_date)
{
	Oid			argtypes[8] = {INT8OID, INT8OID, TEXTOID, INT8OID, TEXTOID,
	INT4OID, INT8OID, DATEOID};
	Datum		values[8];

	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(customer_id);
	values[2] = CStringGetTextDatum(currency);
	values[3] = Int64GetDatum(event_id);
	values[4] = CStringGetTextDatum(kind);
	values[5] = Int32GetDatum(seq);
	values[6] = Int64GetDatum(amount);
	values[7] = DateADTGetDatum(due_date);
	recovery_spi_exec("INSERT INTO recovery.promises "
					  "(case_id, customer_id, currency, case_event_id, kind, "
					  " instalment_no, amount, due_date) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
					  8, argtypes, values, NULL, SPI_OK_INSERT);
}

/* A reopened case must not make a second open case for its customer. */
static void
check_no_other_open_case(int64 case_id, int64 customer_id,
						 const char *currency)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3];

	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(customer_id);
	values[2] = CStringGetTextDatum(currency);
	recovery_spi_exec("SELECT id FROM recovery.recovery_cases "
					  "WHERE customer_id = $2 AND currency = $3 AND id <> $1 "
					  "AND NOT recovery.case_state_is_terminal(state)",
					  3, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_CONFLICT),
				 errmsg("cannot reopen recovery case %lld", (long long) case_id),
				 errdetail("Case %s is already open for this customer in %s.",
						   recovery_spi_text(0, 1), currency),
				 errhint("Work the open case instead; a customer has one open case per currency.")));
}

/*
 * Whether case_events.reason is sealed (bytea, 0.13 and later): this
 * library may run before ALTER EXTENSION UPDATE brings the schema.
 */
static bool
event_reason_sealed(void)
{
	Oid			relid = get_relname_relid("case_events",
										  get_namespace_oid("recovery", false));

	return get_atttype(relid, get_attnum(relid, "reason")) == BYTEAOID;
}

/*
 * Record one case event (a transition or a money event) and return its id.
 * Shared with money.c through recovery_insert_case_event().
 */
int64
recovery_insert_case_event(int64 case_id, int64 customer_id,
						   const char *event, const char *from_state,
						   const char *to_state, const char *reason,
						   Jsonb *details)
{
	Oid			argtypes[10] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[10];
	char		nulls[11] = "          ";
	RecoveryActor actor;

	recovery_current_actor(&actor);
	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(customer_id);
	values[2] = CStringGetTextDatum(event);
	if (from_state)
		values[3] = CStringGetTextDatum(from_state);
	else
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(to_state);
	values[5] = CStringGetTextDatum(actor.actor);
	if (actor.user_id)
		values[6] = Int64GetDatum(actor.user_id);
	else
		nulls[6] = 'n';
	if (reason)
		values[7] = CStringGetTextDatum(reason);
	else
		nulls[7] = 'n';
	values[8] = JsonbPGetDatum(details);
	if (actor.request_id)
		values[9] = CStringGetTextDatum(actor.request_id);
	else
		nulls[9] = 'n';

	recovery_spi_exec(event_reason_sealed() ?
					  "INSERT INTO recovery.case_events "
					  "(case_id, customer_id, event, from_state, to_state, actor, "
					  " actor_user_id, reason, details, request_id) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, convert_to($8, 'UTF8'), $9, $10) "
					  "RETURNING id" :
					  "INSERT INTO recovery.case_events "
					  "(case_id, customer_id, event, from_state, to_state, actor, "
					  " actor_user_id, reason, details, request_id) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
					  10, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	return recovery_spi_int64(0, 1, NULL);
}

/* Lock a case FOR UPDATE and read it; PR003 when there is none. */
void
recovery_lock_case(int64 case_id, RecoveryCase *rcase)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(case_id)};

	recovery_spi_exec("SELECT state, version, balance, currency, customer_id "
					  "FROM recovery.recovery_cases WHERE id = $1 FOR UPDATE",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_NOT_FOUND),
				 errmsg("recovery case %lld does not exist", (long long) case_id)));
	rcase->state = recovery_spi_text(0, 1);
	rcase->version = atoi(recovery_spi_text(0, 2));
	rcase->balance = recovery_spi_int64(0, 3, NULL);
	rcase->currency = recovery_spi_text(0, 4);
	rcase->customer_id = recovery_spi_int64(0, 5, NULL);
}

/* The case row as the composite recovery.recovery_cases, for returning. */
HeapTupleHeader
recovery_case_row(int64 case_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(case_id)};

	recovery_spi_exec("SELECT * FROM recovery.recovery_cases WHERE id = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	return SPI_returntuple(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc);
}

/*
 * recovery.case_transition(case_id, event, expected_version, details)
 *
 * Fires one event on one case: checks the event name, locks the case,
 * checks the version the caller saw, the state machine, the caller's role
 * and the details the event needs; then moves the case and records the
 * event.  Any failure raises before anything is written.
 */
Datum
recovery_case_transition(PG_FUNCTION_ARGS)
{
	int64		case_id;
	char	   *event;
	int32		expected_version;
	Jsonb	   *details;
	const CaseTransition *t;
	Oid			argtypes[4] = {INT8OID, TEXTOID, BOOLOID, INT4OID};
	Datum		values[4];
	int64		event_id;
	TransitionDetails parsed;
	RecoveryCase rcase;
	HeapTupleHeader result;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("case id, event and expected version are required"),
				 errhint("Call recovery.case_transition(case_id, event, expected_version, details).")));
	case_id = PG_GETARG_INT64(0);
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	expected_version = PG_GETARG_INT32(2);
	details = PG_ARGISNULL(3)
		? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(3);

	t = find_event(event);
	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("unknown case event \"%s\"", event),
				 errdetail("The events are: %s.", all_event_names()),
				 errhint("recovery.case_transitions(case_id) lists the events a case accepts now.")));

	SPI_connect();
	recovery_lock_case(case_id, &rcase);
	if (rcase.version != expected_version)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_STALE_VERSION),
				 errmsg("recovery case %lld was changed by someone else",
						(long long) case_id),
				 errdetail("You expected version %d; the case is now at version %d in state \"%s\".",
						   expected_version, rcase.version, rcase.state),
				 errhint("Reload the case and decide again.")));

	if (!transition_allowed_from(t, rcase.state))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_ILLEGAL_TRANSITION),
				 errmsg("event \"%s\" is not allowed for a case in state \"%s\"",
						event, rcase.state),
				 errdetail("A case in state \"%s\" accepts: %s.",
						   rcase.state, events_accepted_in(rcase.state)),
				 errhint("recovery.case_transitions(case_id) lists the events a case accepts now.")));

	if (t->required_role)
		recovery_require_role(t->required_role,
							  psprintf("fire event \"%s\"", event));

	parse_details(t, details, rcase.balance, rcase.currency, &parsed);

	if (strcmp(event, "reopen") == 0)
		check_no_other_open_case(case_id, rcase.customer_id, rcase.currency);

	values[0] = Int64GetDatum(case_id);
	values[1] = CStringGetTextDatum(t->to);
	values[2] = BoolGetDatum(recovery_state_is_terminal(t->to));
	recovery_spi_exec("UPDATE recovery.recovery_cases "
					  "SET state = $2, version = version + 1, updated_at = now(), "
					  "    closed_at = CASE WHEN $3 THEN now() END "
					  "WHERE id = $1",
					  3, argtypes, values, NULL, SPI_OK_UPDATE);

	event_id = recovery_insert_case_event(case_id, rcase.customer_id, event, rcase.state,
										  t->to, parsed.reason, details);

	settle_pending_promises(case_id, t);
	if (t->details == DETAILS_PROMISE)
		insert_promise(case_id, rcase.customer_id, rcase.currency, event_id, "promise", 1,
					   parsed.amount, parsed.due_date);
	for (i = 0; i < parsed.n_instalments; i++)
		insert_promise(case_id, rcase.customer_id, rcase.currency, event_id, "instalment",
					   i + 1, parsed.instalments[i].amount,
					   parsed.instalments[i].due_date);

	result = recovery_case_row(case_id);
	SPI_finish();
	PG_RETURN_HEAPTUPLEHEADER(result);
}
