/*
 * parse_sandbox.c
 *		Statement formats that need a third-party library (CAMT through
 *		libxml2, xlsx, xls through FreeXL, PDF through poppler) are read by
 *		recovery-parse, a separate program started per file: a crash there
 *		ends that process, never this backend (a crashed backend makes the
 *		postmaster restart every connection).
 *
 * The program gets the bytes on a pipe and answers on two: CSV (or text)
 * on stdout, and a JSON summary or "error: ..." as the last line of
 * stderr.  It limits its own CPU time, memory and output and closes a
 * seccomp filter behind itself; this side adds a wall-clock deadline,
 * kills it on any error or cancel, and says why it stopped.
 */
#include "recovery.h"
#include "statement_format.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

extern char **environ;

static char *parse_program = NULL;
static int	parse_cpu_time = 30;
static int	parse_memory = 256;
static int	parse_timeout = 60;

#define PARSE_MAX_STDERR	(64 * 1024)

void
recovery_define_parse_gucs(void)
{
	DefineCustomStringVariable("recovery.parse_program",
							   "The statement parser program (recovery-parse); empty: the one installed with the extension.",
							   NULL, &parse_program, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.parse_cpu_time",
							"The CPU time a statement parser may use for one file.",
							NULL, &parse_cpu_time, 30, 1, 3600, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.parse_memory",
							"The memory (address space) a statement parser may use for one file.",
							NULL, &parse_memory, 256, 64, 65536, PGC_SUSET, GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("recovery.parse_timeout",
							"The wall-clock time a statement parser may take for one file.",
							NULL, &parse_timeout, 60, 1, 3600, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

typedef struct Parser
{
	pid_t		pid;
	int			in;				/* its stdin, our end */
	int			out;
	int			err;
} Parser;

static void
parser_stop(Parser *parser)
{
	int			status;

	if (parser->pid > 0)
	{
		kill(parser->pid, SIGKILL);
		while (waitpid(parser->pid, &status, 0) < 0 && errno == EINTR)
			;
		parser->pid = 0;
	}
	if (parser->in >= 0)
		close(parser->in);
	if (parser->out >= 0)
		close(parser->out);
	if (parser->err >= 0)
		close(parser->err);
	parser->in = parser->out = parser->err = -1;
}

static void
parser_start(Parser *parser, char **argv)
{
	int			in[2] = {-1, -1},
				out[2] = {-1, -1},
				err[2] = {-1, -1};
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t	none,
				all;
	int			rc;

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
	{
		int			saved = errno;
		int			i;

		for (i = 0; i < 2; i++)
		{
			if (in[i] >= 0)
				close(in[i]);
			if (out[i] >= 0)
				close(out[i]);
		}
		errno = saved;
		ereport(ERROR, (errcode_for_file_access(), errmsg("cannot create pipes for the statement parser: %m")));
	}
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, in[0], 0);
	posix_spawn_file_actions_adddup2(&actions, out[1], 1);
	posix_spawn_file_actions_adddup2(&actions, err[1], 2);
	/* the backend's signal handlers and mask are not the parser's */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&parser->pid, argv[0], &actions, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	parser->in = in[1];
	parser->out = out[0];
	parser->err = err[0];
	if (rc != 0)
	{
		parser->pid = 0;
		parser_stop(parser);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("cannot start the statement parser \"%s\": %s", argv[0], strerror(rc)),
				 errhint("It is installed with the extension (make install); recovery.parse_program names another.")));
	}
	fcntl(parser->in, F_SETFL, O_NONBLOCK);
	fcntl(parser->out, F_SETFL, O_NONBLOCK);
	fcntl(parser->err, F_SETFL, O_NONBLOCK);
}

/* reads what fd has into buf (up to max, the rest dropped); false at its end */
static bool
drain(int fd, StringInfo buf, Size max, bool *over)
{
	char		chunk[65536];

	for (;;)
	{
		ssize_t		n = read(fd, chunk, sizeof(chunk));

		if (n > 0)
		{
			if (buf->len + (Size) n > max)
				*over = true;
			else
				appendBinaryStringInfo(buf, chunk, (int) n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
}

/*
 * Feeds input to the parser and collects its output until both its pipes
 * end; the deadline and the output bound kill it.  Returns its wait status.
 */
static int
parser_exchange(Parser *parser, const char *input, Size len, StringInfo out, StringInfo err,
				const char **killed_why)
{
	Size		sent = 0;
	bool		out_open = true,
				err_open = true,
				over = false,
				err_over = false;
	TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz) parse_timeout * USECS_PER_SEC;
	int			status = 0;

	while (out_open || err_open)
	{
		struct pollfd fds[3];
		int			n = 0;

		CHECK_FOR_INTERRUPTS();
		if (GetCurrentTimestamp() > deadline)
		{
			*killed_why = "it took longer than recovery.parse_timeout";
			break;
		}
		if (over)
		{
			*killed_why = "it wrote more than the largest import (1 GB)";
			break;
		}
		if (parser->in >= 0)
			fds[n++] = (struct pollfd) {parser->in, POLLOUT, 0};
		if (out_open)
			fds[n++] = (struct pollfd) {parser->out, POLLIN, 0};
		if (err_open)
			fds[n++] = (struct pollfd) {parser->err, POLLIN, 0};
		if (poll(fds, n, 100) < 0 && errno != EINTR)
			ereport(ERROR, (errmsg("cannot wait for the statement parser: %m")));
		if (parser->in >= 0)
		{
			ssize_t		w = sent < len ? write(parser->in, input + sent, Min(len - sent, 1 << 20)) : 0;

			if (w > 0)
				sent += (Size) w;
			/* all sent, or the parser stopped reading (it has its answer) */
			if (sent == len || (w < 0 && errno != EAGAIN && errno != EINTR))
			{
				close(parser->in);
				parser->in = -1;
			}
		}
		if (out_open)
			out_open = drain(parser->out, out, MaxAllocSize - 1, &over);
		if (err_open)
			err_open = drain(parser->err, err, PARSE_MAX_STDERR, &err_over);
	}
	if (*killed_why)
		kill(parser->pid, SIGKILL);
	while (waitpid(parser->pid, &status, 0) < 0)
		if (errno != EINTR)
			ereport(ERROR, (errmsg("cannot wait for the statement parser: %m")));
	parser->pid = 0;
	return status;
}

/* the last non-empty line of the parser's stderr */
static char *
last_line(StringInfo err)
{
	int			end = err->len;
	int			start;

	while (end > 0 && (err->data[end - 1] == '\n' || err->data[end - 1] == '\r'))
		end--;
	for (start = end; start > 0 && err->data[start - 1] != '\n'; start--)
		;
	return pnstrdup(err->data + start, end - start);
}

static void
report_stopped(int status, const char *killed_why, StringInfo err, const char *format)
{
	char	   *line = last_line(err);

	if (killed_why)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("cannot read the %s statement: the parser was stopped: %s", format, killed_why),
				 errhint("Nothing was imported. A file this slow or large is likely damaged or hostile; send it again if it is not.")));
	if (WIFEXITED(status) && strncmp(line, "error: ", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("cannot read the %s statement: %s", format, line + 7),
				 errhint("Nothing was imported; correct the file and send it again.")));
	if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("cannot read the %s statement: the parser used up its CPU time (recovery.parse_cpu_time, %d s)",
						format, parse_cpu_time),
				 errhint("Nothing was imported. A file this slow to read is likely damaged or hostile.")));
	if (WIFSIGNALED(status))
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg("cannot read the %s statement: the parser crashed (signal %d: %s)",
						format, WTERMSIG(status), strsignal(WTERMSIG(status))),
				 errdetail("The parser runs in a process of its own; the database was not affected."),
				 errhint("Nothing was imported. Report the file to the developers if it is a real statement.")));
	ereport(ERROR,
			(errcode(ERRCODE_RECOVERY_VALIDATION),
			 errmsg("cannot read the %s statement: the parser stopped with status %d", format,
					WIFEXITED(status) ? WEXITSTATUS(status) : -1),
			 line[0] ? errdetail("It said: %s", line) : 0));
}

static int64
json_int(JsonbContainer *object, const char *key)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(object, key, strlen(key), &v) || v.type != jbvNumeric)
		elog(ERROR, "the statement parser's summary has no %s", key);
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
}

/* where the last field of a CSV line of the parser starts */
static int
last_field(const char *line, int len)
{
	int			p;

	if (len > 0 && line[len - 1] == ',')
		return len;				/* empty */
	for (p = len - 2; p > 0; p--)
	{
		if (line[p] != '"')
			continue;
		if (line[p - 1] == '"')
			p--;				/* a doubled quote inside */
		else if (line[p - 1] == ',')
			return p;
	}
	return len;
}

/*
 * The parser writes lines as it reads them and says at the end which
 * statements do not add up ("held": their lines and why); their lines get
 * the reason in their hold column (the last) here, before the import.
 */
static void
hold_lines(StringInfo out, Jsonb *summary)
{
	JsonbValue	held;
	StringInfoData copy;
	int			range = 0,
				n_ranges,
				at = 0;
	int64		line_no = 0;

	if (!getKeyJsonValueFromContainer(&summary->root, "held", 4, &held) || held.type != jbvBinary)
		return;
	n_ranges = JsonContainerSize(held.val.binary.data);
	initStringInfo(&copy);
	while (at < out->len)
	{
		char	   *end = memchr(out->data + at, '\n', out->len - at);
		int			len = end ? (int) (end - (out->data + at)) : out->len - at;
		JsonbValue *item = NULL;
		int64		first = 0,
					last = -1;

		line_no++;
		while (range < n_ranges)
		{
			item = getIthJsonbValueFromContainer(held.val.binary.data, range);
			first = json_int(item->val.binary.data, "first_line");
			last = json_int(item->val.binary.data, "last_line");
			if (line_no <= last)
				break;
			range++;
		}
		if (range < n_ranges && line_no >= first && line_no <= last)
		{
			JsonbValue	reason;
			const char *r;
			int			i;

			getKeyJsonValueFromContainer(item->val.binary.data, "reason", 6, &reason);
			appendBinaryStringInfo(&copy, out->data + at, last_field(out->data + at, len));
			appendStringInfoChar(&copy, '"');
			for (i = 0, r = reason.val.string.val; i < reason.val.string.len; i++)
			{
				if (r[i] == '"')
					appendStringInfoChar(&copy, '"');
				appendStringInfoChar(&copy, r[i]);
			}
			appendStringInfoString(&copy, "\"\n");
		}
		else
		{
			appendBinaryStringInfo(&copy, out->data + at, len);
			appendStringInfoChar(&copy, '\n');
		}
		at += len + 1;
	}
	pfree(out->data);
	*out = copy;
}

/* argv for recovery-parse: limits, the format, the mapping's columns */
static char **
parser_argv(const char *format, Jsonb *mapping)
{
	char	  **argv = palloc0(sizeof(char *) * (8 + 2 * 6));
	int			n = 0;
	int			f;
	static const char *const fields[] = {"date", "amount", "currency", "reference", "payer", "iban"};

	argv[n++] = parse_program && parse_program[0] ? parse_program
		: psprintf("%s/recovery-parse", pkglib_path);
	argv[n++] = "--format";
	argv[n++] = pstrdup(format);
	argv[n++] = "--cpu-seconds";
	argv[n++] = psprintf("%d", parse_cpu_time);
	argv[n++] = "--memory-mb";
	argv[n++] = psprintf("%d", parse_memory);
	for (f = 0; mapping && f < lengthof(fields); f++)
	{
		JsonbValue	value;

		if (getKeyJsonValueFromContainer(&mapping->root, fields[f], strlen(fields[f]), &value) &&
			value.type == jbvString)
		{
			argv[n++] = "--column";
			argv[n++] = psprintf("%s=%.*s", fields[f], value.val.string.len, value.val.string.val);
		}
	}
	return argv;
}

/*
 * recovery.parse_statement_file(content bytea, format text, mapping jsonb)
 *		RETURNS (format text, columns text, content bytea, summary jsonb)
 *
 * columns says what content is: "canonical" (the parser's own CSV, see
 * parse/statement.c), "own" (a spreadsheet's rows as CSV with its own
 * header) or "text" (a PDF's text).
 */
PG_FUNCTION_INFO_V1(recovery_parse_statement_file);
Datum
recovery_parse_statement_file(PG_FUNCTION_ARGS)
{
	bytea	   *content;
	const char *format;
	Jsonb	   *mapping = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	Parser		parser = {0, -1, -1, -1};
	StringInfoData out,
				err;
	const char *killed_why = NULL;
	int			status = 0;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	char	   *summary;
	Jsonb	   *summary_json;
	JsonbValue	v;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_RECOVERY_VALIDATION), errmsg("there is nothing to read")));
	content = PG_GETARG_BYTEA_PP(0);
	format = PG_ARGISNULL(1) ? statement_format(VARDATA_ANY(content),
												Min(VARSIZE_ANY_EXHDR(content), STATEMENT_FORMAT_HEAD))
		: statement_format_known(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (format == NULL || strcmp(format, "csv") == 0 || strcmp(format, "xml") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RECOVERY_VALIDATION),
				 errmsg(format && strcmp(format, "xml") == 0
						? "the XML file is not a CAMT.052, .053 or .054 statement"
						: "the statement parser reads camt, mt940, xlsx, xls and pdf"),
				 errhint("CSV is read by recovery.parse_csv().")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "parse_statement_file must return a composite");

	initStringInfo(&out);
	initStringInfo(&err);
	PG_TRY();
	{
		parser_start(&parser, parser_argv(format, mapping));
		status = parser_exchange(&parser, VARDATA_ANY(content), VARSIZE_ANY_EXHDR(content),
								 &out, &err, &killed_why);
	}
	PG_FINALLY();
	{
		parser_stop(&parser);
	}
	PG_END_TRY();
	if (killed_why || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		report_stopped(status, killed_why, &err, format);

	summary = last_line(&err);
	summary_json = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(summary)));
	if (getKeyJsonValueFromContainer(&summary_json->root, "format", 6, &v) && v.type == jbvString)
		values[0] = PointerGetDatum(cstring_to_text_with_len(v.val.string.val, v.val.string.len));
	else
		values[0] = CStringGetTextDatum(format);
	if (getKeyJsonValueFromContainer(&summary_json->root, "columns", 7, &v) && v.type == jbvString)
		values[1] = PointerGetDatum(cstring_to_text_with_len(v.val.string.val, v.val.string.len));
	else
		values[1] = CStringGetTextDatum("canonical");
	hold_lines(&out, summary_json);
	{
		bytea	   *result = palloc(VARHDRSZ + out.len);

		SET_VARSIZE(result, VARHDRSZ + out.len);
		memcpy(VARDATA(result), out.data, out.len);
		pfree(out.data);
		values[2] = PointerGetDatum(result);
	}
	values[3] = JsonbPGetDatum(summary_json);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* recovery.statement_format(content bytea) RETURNS text */
PG_FUNCTION_INFO_V1(recovery_statement_format);
Datum
recovery_statement_format(PG_FUNCTION_ARGS)
{
	bytea	   *content = PG_GETARG_BYTEA_P_SLICE(0, 0, STATEMENT_FORMAT_HEAD);

	PG_RETURN_TEXT_P(cstring_to_text(statement_format(VARDATA_ANY(content),
													  VARSIZE_ANY_EXHDR(content))));
}
