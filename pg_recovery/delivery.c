/*
 * delivery.c
 *		The delivery worker: a background worker of the extension that
 *		sends the notification outbox, one message at a time.
 *
 * Each message takes three steps: a short transaction claims it
 * (recovery.delivery_next() checks the contact rules again, renders it
 * and marks it "sending"), the transport sends it outside any
 * transaction, and a second short transaction records the outcome
 * (recovery.delivery_record(): sent, retried with backoff, dead-lettered,
 * and the circuit breaker of the channel).  A crash between sending and
 * recording leaves the message "sending"; the next start puts it back in
 * the queue, and the resend carries the same Message-ID or
 * Idempotency-Key.  The worker wakes on NOTIFY recovery_outbox (sent when
 * a notification is queued) and on a timer.
 */
#include "delivery.h"
#include "recovery.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void recovery_delivery_main(Datum main_arg);

static char *delivery_database = NULL;
static char *smtp_url = NULL;
static char *smtp_from = NULL;
static char *sms_webhook_url = NULL;
static char *letter_webhook_url = NULL;
static char *webhook_url = NULL;
static char *webhook_secret = NULL;
static char *smtp_url_file = NULL;
static char *webhook_secret_file = NULL;
static int	delivery_poll_interval = 5000;
static int	delivery_rate = 0;
static int	delivery_max_attempts = 8;
static int	delivery_retry_base = 60;
static int	delivery_retry_max = 6 * 3600;
static int	circuit_failure_threshold = 5;
static int	circuit_cooldown = 60;
static char *message_id_domain = NULL;
int			delivery_connect_timeout = 5000;
int			delivery_timeout = 15000;

/*
 * Set in the postmaster when the library is loaded from
 * shared_preload_libraries; every backend it forks inherits it.
 */
static bool delivery_worker_registered = false;

void
recovery_define_delivery_gucs(void)
{
	/*
	 * Only the postmaster may define a PGC_POSTMASTER setting: defining it
	 * when a session loads the library (CREATE EXTENSION without the
	 * preload) is a FATAL error.  Without the preload there is no worker
	 * to read it anyway.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("recovery.delivery_database",
								   "The database whose outbox the delivery worker sends.",
								   NULL, &delivery_database, "recovery", PGC_POSTMASTER, 0,
								   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.smtp_url",
							   "SMTP server for email, as smtp://host:port or smtps://user:password@host:port.",
							   "Empty: email stays in the outbox until it is set.",
							   &smtp_url, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.smtp_from",
							   "The From of reminder emails, as \"Name <address>\".",
							   NULL, &smtp_from, "Payment Recovery <recovery@example.com>",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.sms_webhook_url",
							   "The SMS provider's webhook; empty: SMS stay in the outbox.",
							   NULL, &sms_webhook_url, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.letter_webhook_url",
							   "The letter (print and post) provider's webhook; empty: letters stay in the outbox.",
							   NULL, &letter_webhook_url, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.webhook_url",
							   "Where messages of the webhook channel go; empty: they stay in the outbox.",
							   NULL, &webhook_url, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.webhook_secret",
							   "Shared secret of the X-Recovery-Signature HMAC-SHA256 on every webhook.",
							   NULL, &webhook_secret, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.smtp_url_file",
							   "A file holding recovery.smtp_url (credentials included), read at each send; wins over recovery.smtp_url.",
							   NULL, &smtp_url_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.webhook_secret_file",
							   "A file holding recovery.webhook_secret, read at each send; wins over recovery.webhook_secret.",
							   NULL, &webhook_secret_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.message_id_domain",
							   "The domain of the stable Message-ID of each notification.",
							   NULL, &message_id_domain, "recovery.invalid", PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_poll_interval",
							"How often the delivery worker looks at the outbox without a NOTIFY.",
							NULL, &delivery_poll_interval, 5000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_rate",
							"Most messages the worker sends per second; 0 for no limit.",
							NULL, &delivery_rate, 0, 0, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_connect_timeout",
							"Connection timeout of a delivery.",
							NULL, &delivery_connect_timeout, 5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_timeout",
							"Total timeout of a delivery.",
							NULL, &delivery_timeout, 15000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_max_attempts",
							"Attempts before a message is dead-lettered.",
							NULL, &delivery_max_attempts, 8, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_retry_base",
							"Wait before the first retry; it doubles with each attempt, with 25% jitter.",
							NULL, &delivery_retry_base, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.delivery_retry_max",
							"Longest wait between two attempts.",
							NULL, &delivery_retry_max, 6 * 3600, 1, 7 * 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.circuit_failure_threshold",
							"Consecutive failures of a channel that open its circuit.",
							NULL, &circuit_failure_threshold, 5, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.circuit_cooldown",
							"How long an open circuit waits before one probe message.",
							NULL, &circuit_cooldown, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

void
recovery_register_delivery_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_recovery");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "recovery_delivery_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_recovery delivery worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_recovery delivery");
	RegisterBackgroundWorker(&worker);
	delivery_worker_registered = true;
}

/*
 * recovery.delivery_worker_preloaded(): whether this server started with
 * pg_recovery in shared_preload_libraries, and so runs the delivery worker.
 * Without it everything works but delivery: reminders wait in the outbox.
 */
PG_FUNCTION_INFO_V1(recovery_delivery_worker_preloaded);

Datum
recovery_delivery_worker_preloaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(delivery_worker_registered);
}

static bool
email_configured(void)
{
	return smtp_url[0] || smtp_url_file[0];
}

/*
 * A secret from its *_file setting when that is set, else the setting
 * itself; NULL, with outcome->error saying why, when the file cannot be
 * read.  Read at each send, so that a secret rotated in its file is used
 * at once, and kept only in the message's memory.
 */
static char *
secret_of(const char *value, const char *file, const char *setting,
		  DeliveryOutcome *outcome)
{
	FILE	   *f;
	char		buf[4096];
	size_t		len;

	if (file == NULL || file[0] == '\0')
		return pstrdup(value);
	f = AllocateFile(file, "r");
	if (f == NULL)
	{
		outcome->error = psprintf("could not open %s \"%s\": %m", setting, file);
		return NULL;
	}
	len = fread(buf, 1, sizeof(buf) - 1, f);
	FreeFile(f);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	if (len == 0)
	{
		outcome->error = psprintf("%s \"%s\" is empty", setting, file);
		return NULL;
	}
	value = pstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return (char *) value;
}

/* The channels that have somewhere to go; the others wait in the outbox. */
static Datum
configured_channels(void)
{
	Datum		channels[4];
	int			n = 0;

	if (email_configured())
		channels[n++] = CStringGetTextDatum("email");
	if (sms_webhook_url[0])
		channels[n++] = CStringGetTextDatum("sms");
	if (letter_webhook_url[0])
		channels[n++] = CStringGetTextDatum("letter");
	if (webhook_url[0])
		channels[n++] = CStringGetTextDatum("webhook");
	return PointerGetDatum(construct_array(channels, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static char *
channels_description(void)
{
	char	   *list = psprintf("%s%s%s%s",
								email_configured() ? " email" : "", sms_webhook_url[0] ? " sms" : "",
								letter_webhook_url[0] ? " letter" : "", webhook_url[0] ? " webhook" : "");

	return list[0] ? list + 1 : "none (set recovery.smtp_url and the webhook URLs)";
}

static void
begin_step(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_step(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Claim the next message that may be sent now, in memory that outlives
 * the transaction.  False when there is none.
 */
static bool
claim_next(MemoryContext message_context, OutboxMessage *message)
{
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		values[1];
	bool		found;

	begin_step("claiming the next message");
	values[0] = configured_channels();
	recovery_spi_exec("SELECT id, channel, recipient, recipient_name, subject, body, "
					  "       html_body, message_id, webhook_payload "
					  "FROM recovery.delivery_next($1)",
					  1, argtypes, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found)
	{
		MemoryContext spi_context = MemoryContextSwitchTo(message_context);

		message->id = recovery_spi_int64(0, 1, NULL);
		message->channel = recovery_spi_text(0, 2);
		message->recipient = recovery_spi_text(0, 3);
		message->recipient_name = recovery_spi_text(0, 4);
		message->subject = recovery_spi_text(0, 5);
		message->body = recovery_spi_text(0, 6);
		message->html_body = recovery_spi_text(0, 7);
		message->message_id = recovery_spi_text(0, 8);
		message->webhook_payload = recovery_spi_text(0, 9);
		MemoryContextSwitchTo(spi_context);
	}
	end_step();
	return found;
}

/* text from a provider is stored as text: invalid UTF-8 becomes '?' */
static char *
storable_text(char *text)
{
	char	   *p;

	if (text == NULL || pg_verifymbstr(text, strlen(text), true))
		return text;
	for (p = text; *p; p++)
		if ((unsigned char) *p >= 0x80)
			*p = '?';
	return text;
}

/*
 * A provider's error as the outbox and the log keep it: an SMTP server or
 * an SMS gateway may quote the recipient, so addresses and E.164 numbers
 * are replaced; at most 2000 characters.
 */
static char *
error_redacted(const char *error)
{
	static const char *const patterns[][2] = {
		{"[^\\s<>\"',;:()\\[\\]]+@[^\\s<>\"',;:()\\[\\]]+", "[address]"},
		{"\\+[0-9]([ ().-]?[0-9]){5,}", "[number]"},
	};
	Datum		value = CStringGetTextDatum(error);
	char	   *redacted;

	for (int i = 0; i < lengthof(patterns); i++)
		value = DirectFunctionCall4Coll(textregexreplace, C_COLLATION_OID, value,
									   CStringGetTextDatum(patterns[i][0]),
									   CStringGetTextDatum(patterns[i][1]),
									   CStringGetTextDatum("g"));
	redacted = TextDatumGetCString(value);
	redacted[pg_mbcharcliplen(redacted, strlen(redacted), 2000)] = '\0';
	return redacted;
}

/* recovery.delivery_error_redacted(error) → text: what last_error keeps */
PG_FUNCTION_INFO_V1(recovery_delivery_error_redacted);

Datum
recovery_delivery_error_redacted(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(error_redacted(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

static void
record_outcome(const OutboxMessage *message, DeliveryOutcome *outcome)
{
	Oid			argtypes[5] = {INT8OID, BOOLOID, BOOLOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = "     ";

	begin_step("recording a delivery");
	values[0] = Int64GetDatum(message->id);
	values[1] = BoolGetDatum(outcome->sent);
	values[2] = BoolGetDatum(outcome->permanent);
	if (outcome->response)
		values[3] = CStringGetTextDatum(storable_text(outcome->response));
	else
		nulls[3] = 'n';
	if (outcome->error)
		values[4] = CStringGetTextDatum(error_redacted(storable_text(outcome->error)));
	else
		nulls[4] = 'n';
	if (!outcome->sent)
		ereport(LOG,
				(errmsg("delivery of notification " INT64_FORMAT " by %s failed: %s",
						message->id, message->channel,
						outcome->error ? TextDatumGetCString(values[4]) : "no reason given")));
	recovery_spi_exec("SELECT recovery.delivery_record($1, $2, $3, $4, $5)",
					  5, argtypes, values, nulls, SPI_OK_SELECT);
	end_step();
}

static void
send_message(const OutboxMessage *message, DeliveryOutcome *outcome)
{
	bool		email = strcmp(message->channel, "email") == 0;
	char	   *secret;

	pgstat_report_activity(STATE_RUNNING, psprintf("sending notification " INT64_FORMAT, message->id));
	secret = email ? secret_of(smtp_url, smtp_url_file, "recovery.smtp_url_file", outcome)
		: secret_of(webhook_secret, webhook_secret_file, "recovery.webhook_secret_file", outcome);
	if (secret == NULL)
	{
		/* a file the administrator will fix: retried as any failure */
		outcome->sent = false;
		outcome->permanent = false;
		return;
	}
	if (email)
		recovery_send_email(message, secret, smtp_from, outcome);
	else if (strcmp(message->channel, "sms") == 0)
		recovery_send_webhook(message, sms_webhook_url, secret, outcome);
	else if (strcmp(message->channel, "letter") == 0)
		recovery_send_webhook(message, letter_webhook_url, secret, outcome);
	else
		recovery_send_webhook(message, webhook_url, secret, outcome);
	explicit_bzero(secret, strlen(secret));
}

static void
process_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		ereport(LOG,
				(errmsg("pg_recovery delivery worker reloaded its settings"),
				 errdetail("Channels with somewhere to go: %s.", channels_description())));
	}
	/* read the NOTIFYs so that the queue moves on; waking was their point */
	if (notifyInterruptPending)
		ProcessNotifyInterrupt(false);
}

/* Waits a while, waking early for a NOTIFY, a reload or a shutdown. */
static void
pause_for(long milliseconds)
{
	int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							   milliseconds, PG_WAIT_EXTENSION);

	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	process_interrupts();
}

/* Sends whatever is ready, one message at a time. */
static void
deliver_ready_messages(MemoryContext message_context)
{
	OutboxMessage message;
	DeliveryOutcome outcome;

	/* nothing has anywhere to go: leave the outbox alone */
	if (!email_configured() && !sms_webhook_url[0] && !letter_webhook_url[0] && !webhook_url[0])
		return;
	while (!ShutdownRequestPending)
	{
		MemoryContextReset(message_context);
		if (!claim_next(message_context, &message))
			return;
		{
			MemoryContext previous = MemoryContextSwitchTo(message_context);

			send_message(&message, &outcome);
			MemoryContextSwitchTo(previous);
		}
		record_outcome(&message, &outcome);
		if (delivery_rate > 0)
			pause_for(1000 / delivery_rate);
		else
			process_interrupts();
	}
}

/* The extension (0.3 or later) may not be installed yet in a new cluster. */
static bool
outbox_installed(void)
{
	bool		installed;

	begin_step("looking for the outbox");
	recovery_spi_exec("SELECT to_regproc('recovery.delivery_recover') IS NOT NULL",
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
	installed = strcmp(recovery_spi_text(0, 1), "t") == 0;
	end_step();
	return installed;
}

/* After a crash or a restart: what was being sent goes back in the queue. */
static void
recover_interrupted(void)
{
	begin_step("recovering interrupted deliveries");
	recovery_spi_exec("SELECT recovery.delivery_recover()", 0, NULL, NULL, NULL,
					  SPI_OK_SELECT);
	end_step();

	StartTransactionCommand();
	Async_Listen("recovery_outbox");
	CommitTransactionCommand();
}

void
recovery_delivery_main(Datum main_arg)
{
	MemoryContext message_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(delivery_database, NULL, 0);
	SetConfigOption("recovery.actor", "delivery-worker", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("application_name", "pg_recovery delivery", PGC_USERSET, PGC_S_SESSION);
	recovery_transport_init();
	message_context = AllocSetContextCreate(TopMemoryContext, "delivery message",
											ALLOCSET_DEFAULT_SIZES);

	if (!outbox_installed())
	{
		ereport(LOG,
				(errmsg("pg_recovery delivery worker waits for the extension in database \"%s\"",
						delivery_database),
				 errhint("CREATE EXTENSION pg_recovery (or ALTER EXTENSION pg_recovery UPDATE) there.")));
		while (!ShutdownRequestPending && !outbox_installed())
			pause_for(10000);
	}
	recover_interrupted();
	ereport(LOG,
			(errmsg("pg_recovery delivery worker started on database \"%s\"", delivery_database),
			 errdetail("Channels with somewhere to go: %s.", channels_description())));

	while (!ShutdownRequestPending)
	{
		deliver_ready_messages(message_context);
		if (ShutdownRequestPending)
			break;
		pause_for(delivery_poll_interval);
	}
	/* not 0: the postmaster restarts a worker stopped by pg_terminate_backend() */
	proc_exit(1);
}
