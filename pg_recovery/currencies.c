/*
 * currencies.c
 *		The currencies amounts may be in (recovery.currencies), amounts
 *		checked before they are stored, and amounts written for the people
 *		who read error messages ("1234.50 EUR").  The locale's way of
 *		writing them in reminders is render.c's.
 */
#include "recovery.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

/* "1234.50 EUR" from 123450 and "EUR"; needs an SPI connection. */
char *
recovery_format_money(int64 amount, const char *currency)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(currency)};
	int			minor_units = 2;
	uint64		magnitude;
	uint64		scale = 1;
	int			i;

	recovery_spi_exec("SELECT minor_units FROM recovery.currencies WHERE code = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		minor_units = atoi(recovery_spi_text(0, 1));
	if (minor_units == 0)
		return psprintf(INT64_FORMAT " %s", amount, currency);

	for (i = 0; i < minor_units; i++)
		scale *= 10;
	magnitude = amount < 0 ? -(uint64) amount : (uint64) amount;
	return psprintf("%s%llu.%0*llu %s",
					amount < 0 ? "-" : "",
					(unsigned long long) (magnitude / scale), minor_units,
					(unsigned long long) (magnitude % scale), currency);
}

void
recovery_check_amount(int64 amount, const char *what)
{
	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("%s must be positive", what),
				 errdetail("The amount given is " INT64_FORMAT " minor units.", amount),
				 errhint("Amounts are whole numbers of minor units: 12550 for 125.50 EUR.")));
}

/* An ISO 4217 code that recovery.currencies knows; needs SPI. */
void
recovery_check_currency(const char *currency)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(currency)};

	recovery_spi_exec("SELECT 1 FROM recovery.currencies WHERE code = $1",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("unknown currency \"%s\"", currency),
				 errdetail("Currencies are ISO 4217 codes listed in recovery.currencies."),
				 errhint("Use an upper-case three-letter code such as EUR, USD or GBP.")));
}
