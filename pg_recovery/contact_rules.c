/*
 * contact_rules.c
 *		When a customer may be contacted: the quiet hours in the customer's
 *		own time zone, and the settings of the other contact rules (the
 *		rolling 7-day cap, the grace before a promise counts as broken),
 *		which the SQL of the reminders reads.
 *
 * A message that falls into the quiet hours is not dropped: it waits for
 * the moment the window opens again, which contact_window_opens() finds.
 */
#include "recovery.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#define MINUTES_PER_DAY 1440

static char *quiet_hours_start = NULL;
static char *quiet_hours_end = NULL;
static int	quiet_start_minute = 21 * 60;
static int	quiet_end_minute = 8 * 60;
static int	contact_cap = 3;
static int	promise_grace_days = 3;

/* "HH:MM" as minutes after midnight, or -1 */
static int
parse_clock(const char *value)
{
	int			hour,
				minute;
	char		rest;

	if (value == NULL ||
		sscanf(value, "%d:%d%c", &hour, &minute, &rest) != 2 ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59)
		return -1;
	return hour * 60 + minute;
}

static bool
check_clock(char **newval, void **extra, GucSource source)
{
	if (parse_clock(*newval) < 0)
	{
		GUC_check_errdetail("A time of day is written HH:MM, for example 21:00.");
		return false;
	}
	return true;
}

static void
assign_quiet_start(const char *newval, void *extra)
{
	quiet_start_minute = parse_clock(newval);
}

static void
assign_quiet_end(const char *newval, void *extra)
{
	quiet_end_minute = parse_clock(newval);
}

void
recovery_define_contact_gucs(void)
{
	DefineCustomStringVariable("recovery.quiet_hours_start",
							   "Local time (HH:MM) in the customer's time zone from which no message is sent.",
							   "Equal start and end mean no quiet hours.",
							   &quiet_hours_start, "21:00", PGC_SIGHUP, 0,
							   check_clock, assign_quiet_start, NULL);
	DefineCustomStringVariable("recovery.quiet_hours_end",
							   "Local time (HH:MM) in the customer's time zone from which messages are sent again.",
							   NULL,
							   &quiet_hours_end, "08:00", PGC_SIGHUP, 0,
							   check_clock, assign_quiet_end, NULL);
	DefineCustomIntVariable("recovery.contact_cap",
							"Most messages sent to one customer in any 7 days, over all channels.",
							NULL,
							&contact_cap, 3, 1, 100, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.promise_grace_days",
							"Days after a promise's or instalment's date before unpaid counts as broken.",
							NULL,
							&promise_grace_days, 3, 0, 60, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}

static bool
in_quiet_hours(int minute)
{
	if (quiet_start_minute == quiet_end_minute)
		return false;
	if (quiet_start_minute < quiet_end_minute)
		return minute >= quiet_start_minute && minute < quiet_end_minute;
	/* across midnight, 21:00 to 08:00 */
	return minute >= quiet_start_minute || minute < quiet_end_minute;
}

/* The local time of day at "at", with the seconds into that minute. */
static int
local_minute(TimestampTz at, pg_tz *zone, int64 *usec_into_minute)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (timestamp2tm(at, &offset, &tm, &fsec, NULL, zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (usec_into_minute)
		*usec_into_minute = (int64) tm.tm_sec * USECS_PER_SEC + fsec;
	return tm.tm_hour * 60 + tm.tm_min;
}

static pg_tz *
zone_or_utc(text *zone_name)
{
	pg_tz	   *zone = pg_tzset(text_to_cstring(zone_name));

	return zone ? zone : pg_tzset("UTC");
}

PG_FUNCTION_INFO_V1(recovery_contact_window_opens);
PG_FUNCTION_INFO_V1(recovery_local_date);

/*
 * recovery.local_date(time_zone text, at timestamptz) returns date
 *
 * The customer's calendar date at "at"; an unknown zone counts as UTC.
 */
Datum
recovery_local_date(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (TIMESTAMP_NOT_FINITE(at) ||
		timestamp2tm(at, &offset, &tm, &fsec, NULL, zone_or_utc(PG_GETARG_TEXT_PP(0))) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	PG_RETURN_DATEADT(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - POSTGRES_EPOCH_JDATE);
}

/*
 * recovery.contact_window_opens(time_zone text, at timestamptz)
 *		returns timestamptz
 *
 * "at" itself when it is outside the quiet hours of that time zone, else
 * the end of the quiet hours.  An unknown time zone counts as UTC rather
 * than stopping every reminder of the batch.
 */
Datum
recovery_contact_window_opens(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	pg_tz	   *zone = zone_or_utc(PG_GETARG_TEXT_PP(0));
	int64		usec_into_minute;
	int			minute;
	int			wait;
	TimestampTz opens;
	int			landed;

	if (TIMESTAMP_NOT_FINITE(at))
		PG_RETURN_TIMESTAMPTZ(at);

	minute = local_minute(at, zone, &usec_into_minute);
	if (!in_quiet_hours(minute))
		PG_RETURN_TIMESTAMPTZ(at);

	wait = (quiet_end_minute - minute + MINUTES_PER_DAY) % MINUTES_PER_DAY;
	opens = at + (int64) wait * 60 * USECS_PER_SEC - usec_into_minute;

	/* a daylight saving change in the night moves the local clock */
	landed = local_minute(opens, zone, NULL);
	if (landed != quiet_end_minute)
	{
		int			shift = quiet_end_minute - landed;

		if (shift > MINUTES_PER_DAY / 2)
			shift -= MINUTES_PER_DAY;
		else if (shift < -MINUTES_PER_DAY / 2)
			shift += MINUTES_PER_DAY;
		opens += (int64) shift * 60 * USECS_PER_SEC;
	}
	PG_RETURN_TIMESTAMPTZ(opens);
}
