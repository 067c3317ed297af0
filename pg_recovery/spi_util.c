/*
 * spi_util.c
 *		SPI with bound parameters and plans prepared once per backend.
 *
 * Every statement of the extension is a string literal, so the literal's
 * address identifies its saved plan; values are always parameters, never
 * pasted into SQL.
 */
#include "recovery.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#define MAX_SAVED_PLANS 128

typedef struct SavedPlan
{
	const char *sql;
	SPIPlanPtr	plan;
} SavedPlan;

static SavedPlan saved_plans[MAX_SAVED_PLANS];
static int	n_saved_plans = 0;

static SPIPlanPtr
plan_for(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < n_saved_plans; i++)
		if (saved_plans[i].sql == sql)
			return saved_plans[i].plan;

	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));

	if (n_saved_plans < MAX_SAVED_PLANS)
	{
		SPI_keepplan(plan);
		saved_plans[n_saved_plans].sql = sql;
		saved_plans[n_saved_plans].plan = plan;
		n_saved_plans++;
	}
	return plan;
}

/*
 * Run one statement; "expected" is the SPI_OK_* code it must return.
 * The caller must be connected to SPI.
 */
void
recovery_spi_exec(const char *sql, int nargs, Oid *argtypes,
				  Datum *values, const char *nulls, int expected)
{
	SPIPlanPtr	plan = plan_for(sql, nargs, argtypes);
	int			rc;

	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "unexpected SPI result %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
}

/* Column "col" (1-based) of result row "row" as text, NULL when null. */
char *
recovery_spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

int64
recovery_spi_int64(int row, int col, bool *isnull)
{
	bool		null;
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
					  &null);
	if (isnull)
		*isnull = null;
	return null ? 0 : DatumGetInt64(d);
}
