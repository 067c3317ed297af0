/*
 * money.c
 *		Money in and out of recovery cases, exact to the minor unit.
 *
 * A failed or overdue payment opens its customer's case in that currency
 * (or joins the one already open); money received is allocated to the
 * case's payments oldest first, and the case resolves itself when its
 * balance reaches zero.  Amounts are bigint minor units, never floats.
 */
#include "recovery.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"

/* Case event details built from our own numbers and fixed words only. */
static Jsonb *
jsonb_printf(const char *fmt,...) pg_attribute_printf(1, 2);

static Jsonb *
jsonb_printf(const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(recovery_payment_create);
PG_FUNCTION_INFO_V1(recovery_payment_fail);
PG_FUNCTION_INFO_V1(recovery_case_record_payment);

/*
 * recovery.payment_create(customer_id, external_ref, amount, currency,
 *						   due_date) returns recovery.payments
 */
Datum
recovery_payment_create(PG_FUNCTION_ARGS)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, INT8OID, TEXTOID, DATEOID};
	Datum		values[5];
	char	   *reference;
	char	   *currency;
	HeapTupleHeader result;
	int			i;

	for (i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_RECOVERY_VALIDATION),
					 errmsg("customer, reference, amount, currency and due date are required"),
					 errhint("Call recovery.payment_create(customer_id, external_ref, amount, currency, due_date).")));
	reference = text_to_cstring(PG_GETARG_TEXT_PP(1));
	currency = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (reference[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a payment needs an external reference"),
				 errhint("Use the invoice or order number the customer knows.")));
	recovery_check_amount(PG_GETARG_INT64(2), "a payment amount");

	SPI_connect();
	recovery_check_currency(currency);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = CStringGetTextDatum(currency);
	values[4] = PG_GETARG_DATUM(4);

	recovery_spi_exec("SELECT 1 FROM recovery.customers WHERE id = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_NOT_FOUND),
				 errmsg("customer " INT64_FORMAT " does not exist",
						PG_GETARG_INT64(0))));

	recovery_spi_exec("SELECT id FROM recovery.payments "
					  "WHERE customer_id = $1 AND external_ref = $2",
					  2, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_CONFLICT),
				 errmsg("customer " INT64_FORMAT " already has a payment with reference \"%s\"",
						PG_GETARG_INT64(0), reference),
				 errdetail("It is payment %s.", recovery_spi_text(0, 1)),
				 errhint("References are unique per customer; use the existing payment.")));

	recovery_spi_exec("INSERT INTO recovery.payments "
					  "(customer_id, external_ref, amount, outstanding, currency, due_date) "
					  "VALUES ($1, $2, $3, $3, $4, $5) RETURNING *",
					  5, argtypes, values, NULL, SPI_OK_INSERT_RETURNING);
	result = SPI_returntuple(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc);
	SPI_finish();
	PG_RETURN_HEAPTUPLEHEADER(result);
}

/*
 * The open case of this customer in this currency, created when there is
 * none; returns its id and whether we created it.  ON CONFLICT makes two
 * payments failing at once for one customer meet in one case.
 */
static int64
open_case_for(int64 customer_id, const char *currency, bool *created)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(customer_id);
	values[1] = CStringGetTextDatum(currency);
	recovery_spi_exec("INSERT INTO recovery.recovery_cases "
					  "(customer_id, currency, balance, state) "
					  "VALUES ($1, $2, 0, 'open') "
					  "ON CONFLICT (customer_id, currency) "
					  "WHERE NOT recovery.case_state_is_terminal(state) DO NOTHING "
					  "RETURNING id",
					  2, argtypes, values, NULL, SPI_OK_INSERT_RETURNING);
	*created = SPI_processed > 0;
	if (*created)
		return recovery_spi_int64(0, 1, NULL);

	recovery_spi_exec("SELECT id FROM recovery.recovery_cases "
					  "WHERE customer_id = $1 AND currency = $2 "
					  "AND NOT recovery.case_state_is_terminal(state) FOR UPDATE",
					  2, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the open case of customer " INT64_FORMAT " closed while a payment was joining it",
						customer_id),
				 errhint("Retry the transaction.")));
	return recovery_spi_int64(0, 1, NULL);
}

/*
 * recovery.payment_fail(payment_id, reason, status) returns the case
 *
 * Marks the payment failed (or overdue) and puts its outstanding amount
 * on the customer's open case in its currency.  Failing a payment that is
 * already in an open case changes nothing and returns that case, so that
 * a retried call is harmless.
 */
Datum
recovery_payment_fail(PG_FUNCTION_ARGS)
{
	int64		payment_id;
	char	   *reason;
	char	   *status;
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[4];
	char	   *payment_status;
	char	   *currency;
	int64		customer_id;
	int64		outstanding;
	int64		case_id;
	bool		no_case;
	bool		in_case;
	bool		created;
	char	   *from_state;
	HeapTupleHeader result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("payment id is required")));
	payment_id = PG_GETARG_INT64(0);
	reason = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	status = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(status, "failed") != 0 && strcmp(status, "overdue") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("a payment enters recovery as \"failed\" or \"overdue\", not \"%s\"",
						status)));

	SPI_connect();
	values[0] = Int64GetDatum(payment_id);
	recovery_spi_exec("SELECT p.status, p.currency, p.customer_id, p.outstanding, "
					  "       p.case_id, c.state "
					  "FROM recovery.payments p "
					  "LEFT JOIN recovery.recovery_cases c ON c.id = p.case_id "
					  "WHERE p.id = $1 FOR UPDATE OF p",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_NOT_FOUND),
				 errmsg("payment " INT64_FORMAT " does not exist", payment_id)));
	payment_status = recovery_spi_text(0, 1);
	currency = recovery_spi_text(0, 2);
	customer_id = recovery_spi_int64(0, 3, NULL);
	outstanding = recovery_spi_int64(0, 4, NULL);
	case_id = recovery_spi_int64(0, 5, &no_case);
	in_case = !no_case;

	if (in_case && !recovery_state_is_terminal(recovery_spi_text(0, 6)))
	{
		result = recovery_case_row(case_id);
		SPI_finish();
		PG_RETURN_HEAPTUPLEHEADER(result);
	}
	if (strcmp(payment_status, "paid") == 0 || outstanding == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("payment " INT64_FORMAT " is paid", payment_id),
				 errdetail("Nothing is outstanding on it."),
				 errhint("Only unpaid payments can be recovered.")));
	if (in_case)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_CONFLICT),
				 errmsg("payment " INT64_FORMAT " belongs to closed recovery case " INT64_FORMAT,
						payment_id, case_id),
				 errhint("Reopen that case to recover the payment again.")));

	case_id = open_case_for(customer_id, currency, &created);

	values[0] = Int64GetDatum(payment_id);
	values[1] = Int64GetDatum(case_id);
	values[2] = CStringGetTextDatum(status);
	if (reason)
		values[3] = CStringGetTextDatum(reason);
	recovery_spi_exec("UPDATE recovery.payments "
					  "SET status = $3, failure_reason = $4, case_id = $2, "
					  "    version = version + 1, updated_at = now() "
					  "WHERE id = $1",
					  4, argtypes, values, reason ? NULL : "   n",
					  SPI_OK_UPDATE);

	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(outstanding);
	recovery_spi_exec("UPDATE recovery.recovery_cases "
					  "SET balance = balance + $2, version = version + 1, "
					  "    updated_at = now() "
					  "WHERE id = $1 RETURNING state",
					  2, argtypes, values, NULL, SPI_OK_UPDATE_RETURNING);
	from_state = recovery_spi_text(0, 1);

	recovery_insert_case_event(case_id, customer_id,
							   created ? "open" : "payment_added",
							   created ? NULL : from_state, from_state, reason,
							   jsonb_printf("{\"payment_id\": " INT64_FORMAT
											", \"amount\": " INT64_FORMAT
											", \"status\": \"%s\"}",
											payment_id, outstanding, status));

	result = recovery_case_row(case_id);
	SPI_finish();
	PG_RETURN_HEAPTUPLEHEADER(result);
}

/*
 * Allocate "amount" to the case's payments, oldest due first; returns
 * what was allocated.  Each allocation is a row of receipt_allocations.
 */
static int64
allocate_to_payments(int64 case_id, int64 customer_id, int64 receipt_id,
					 int64 amount)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		values[4];
	SPITupleTable *payments;
	uint64		n;
	uint64		i;
	int64		allocated = 0;

	values[0] = Int64GetDatum(case_id);
	recovery_spi_exec("SELECT id, outstanding FROM recovery.payments "
					  "WHERE case_id = $1 AND outstanding > 0 "
					  "ORDER BY due_date, id FOR UPDATE",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	payments = SPI_tuptable;
	n = SPI_processed;

	for (i = 0; i < n && allocated < amount; i++)
	{
		bool		isnull;
		int64		payment_id;
		int64		outstanding;
		int64		share;

		payment_id = DatumGetInt64(SPI_getbinval(payments->vals[i],
												 payments->tupdesc, 1, &isnull));
		outstanding = DatumGetInt64(SPI_getbinval(payments->vals[i],
												  payments->tupdesc, 2, &isnull));
		share = Min(outstanding, amount - allocated);

		values[0] = Int64GetDatum(receipt_id);
		values[1] = Int64GetDatum(payment_id);
		values[2] = Int64GetDatum(share);
		values[3] = Int64GetDatum(customer_id);
		recovery_spi_exec("INSERT INTO recovery.receipt_allocations "
						  "(receipt_id, payment_id, amount, customer_id) "
						  "VALUES ($1, $2, $3, $4)",
						  4, argtypes, values, NULL, SPI_OK_INSERT);
		recovery_spi_exec("UPDATE recovery.payments "
						  "SET outstanding = outstanding - $3, "
						  "    status = CASE WHEN outstanding = $3 THEN 'paid' ELSE status END, "
						  "    version = version + 1, updated_at = now() "
						  "WHERE id = $2",
						  3, argtypes, values, NULL, SPI_OK_UPDATE);
		allocated += share;
	}
	return allocated;
}

/*
 * Money received counts towards pending promises and instalments, oldest
 * due first; one fully paid is kept.  When the case resolves, whatever
 * is still pending is kept too: the debt is paid.
 */
static void
credit_promises(int64 case_id, int64 amount, bool resolved)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, BOOLOID};
	Datum		values[3];

	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(amount);
	values[2] = BoolGetDatum(resolved);
	recovery_spi_exec("WITH pending AS ("
					  "  SELECT id, amount - paid_amount AS due, "
					  "         sum(amount - paid_amount) OVER (ORDER BY due_date, instalment_no, id) "
					  "           - (amount - paid_amount) AS before "
					  "  FROM recovery.promises "
					  "  WHERE case_id = $1 AND outcome = 'pending'), "
					  "credited AS ("
					  "  SELECT id, LEAST(due, GREATEST($2 - before, 0)) AS credit "
					  "  FROM pending) "
					  "UPDATE recovery.promises p "
					  "SET paid_amount = p.paid_amount + c.credit, "
					  "    outcome = CASE WHEN $3 OR p.paid_amount + c.credit >= p.amount "
					  "                   THEN 'kept' ELSE 'pending' END, "
					  "    resolved_at = CASE WHEN $3 OR p.paid_amount + c.credit >= p.amount "
					  "                       THEN now() END, "
					  "    version = p.version + 1 "
					  "FROM credited c "
					  "WHERE p.id = c.id AND (c.credit > 0 OR $3)",
					  3, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * recovery.case_record_payment(case_id, amount, currency, reference,
 *								received_at, allow_overpayment)
 *		returns recovery.receipts
 *
 * Records money received against a case.  More than the balance is
 * refused unless allow_overpayment is true; then the case is paid in full
 * and the excess is kept on the receipt as "unallocated", to be refunded
 * or credited by a person: it is never silently put on another debt.
 */
Datum
recovery_case_record_payment(PG_FUNCTION_ARGS)
{
	int64		case_id;
	int64		amount;
	char	   *currency;
	bool		allow_overpayment;
	Oid			argtypes[7] = {INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID,
	TEXTOID, TIMESTAMPTZOID};
	Oid			case_update_types[3] = {INT8OID, INT8OID, BOOLOID};
	Datum		values[7];
	char		nulls[8] = "       ";
	int64		receipt_id;
	int64		allocated;
	int64		new_balance;
	bool		resolves;
	RecoveryCase rcase;
	HeapTupleHeader result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("case id, amount and currency are required"),
				 errhint("Call recovery.case_record_payment(case_id, amount, currency).")));
	case_id = PG_GETARG_INT64(0);
	amount = PG_GETARG_INT64(1);
	currency = text_to_cstring(PG_GETARG_TEXT_PP(2));
	allow_overpayment = !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	recovery_check_amount(amount, "money received");

	SPI_connect();
	recovery_check_currency(currency);

	recovery_lock_case(case_id, &rcase);
	if (recovery_state_is_terminal(rcase.state))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_ILLEGAL_TRANSITION),
				 errmsg("recovery case " INT64_FORMAT " is %s and takes no money",
						case_id, rcase.state),
				 errhint("Fire \"reopen\" first if the money belongs to this case.")));
	if (strcmp(rcase.currency, currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_CURRENCY_MISMATCH),
				 errmsg("recovery case " INT64_FORMAT " is in %s, not %s",
						case_id, rcase.currency, currency),
				 errdetail("Money is recorded in the currency of the case."),
				 errhint("Convert the amount into %s as your bank credited it, and record that.",
						 rcase.currency)));
	if (amount > rcase.balance && !allow_overpayment)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_OVERPAYMENT),
				 errmsg("%s is more than the balance of recovery case " INT64_FORMAT,
						recovery_format_money(amount, currency), case_id),
				 errdetail("The balance is %s; the excess would be %s.",
						   recovery_format_money(rcase.balance, currency),
						   recovery_format_money(amount - rcase.balance, currency)),
				 errhint("Record at most the balance, or pass allow_overpayment => true "
						 "to keep the excess as an unallocated credit on the receipt.")));

	values[0] = Int64GetDatum(case_id);
	values[1] = Int64GetDatum(rcase.customer_id);
	values[2] = CStringGetTextDatum(currency);
	values[3] = Int64GetDatum(amount);
	values[4] = Int64GetDatum(Min(amount, rcase.balance));
	if (PG_ARGISNULL(3))
		nulls[5] = 'n';
	else
		values[5] = PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(4))
		values[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	else
		values[6] = PG_GETARG_DATUM(4);
	recovery_spi_exec("INSERT INTO recovery.receipts "
					  "(case_id, customer_id, currency, amount, allocated, "
					  " unallocated, reference, received_at) "
					  "VALUES ($1, $2, $3, $4, $5, $4 - $5, $6, $7) RETURNING id",
					  7, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	receipt_id = recovery_spi_int64(0, 1, NULL);

	allocated = allocate_to_payments(case_id, rcase.customer_id, receipt_id,
									 Min(amount, rcase.balance));
	if (allocated != Min(amount, rcase.balance))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("recovery case " INT64_FORMAT " balance does not match its payments",
						case_id),
				 errdetail("The balance is " INT64_FORMAT " but only " INT64_FORMAT
						   " is outstanding on its payments.", rcase.balance, allocated),
				 errhint("Report this: the case needs to be repaired by an administrator.")));

	new_balance = rcase.balance - allocated;
	resolves = new_balance == 0;
	values[1] = Int64GetDatum(new_balance);
	values[2] = BoolGetDatum(resolves);
	recovery_spi_exec("UPDATE recovery.recovery_cases "
					  "SET balance = $2, version = version + 1, updated_at = now(), "
					  "    state = CASE WHEN $3 THEN 'resolved' ELSE state END, "
					  "    closed_at = CASE WHEN $3 THEN now() END "
					  "WHERE id = $1",
					  3, case_update_types, values, NULL, SPI_OK_UPDATE);

	recovery_insert_case_event(case_id, rcase.customer_id, "payment_received",
							   rcase.state, rcase.state, NULL,
							   jsonb_printf("{\"receipt_id\": " INT64_FORMAT
											", \"amount\": " INT64_FORMAT
											", \"allocated\": " INT64_FORMAT
											", \"balance\": " INT64_FORMAT "}",
											receipt_id, amount, allocated,
											new_balance));
	credit_promises(case_id, allocated, resolves);
	if (resolves)
		recovery_insert_case_event(case_id, rcase.customer_id, "resolve", rcase.state,
								   "resolved", NULL,
								   jsonb_printf("{\"receipt_id\": " INT64_FORMAT "}",
												receipt_id));

	values[0] = Int64GetDatum(receipt_id);
	recovery_spi_exec("SELECT * FROM recovery.receipts WHERE id = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	result = SPI_returntuple(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc);
	SPI_finish();
	PG_RETURN_HEAPTUPLEHEADER(result);
}
