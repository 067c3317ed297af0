/*
 * recovery_parse.c
 *		recovery-parse: reads one statement file on stdin (CAMT, MT940/942,
 *		xlsx, xls or PDF) inside a sandbox and writes what it found on
 *		stdout as CSV (or, for a PDF without a table, as text); its last
 *		line on stderr is a JSON summary, or "error: ..." when the file
 *		cannot be read.  The extension starts it per file
 *		(pg_recovery/parse_sandbox.c); a crash here never reaches a backend.
 *
 *	  recovery-parse [--format F] [--cpu-seconds N] [--memory-mb N]
 *		  [--output-mb N] [--column field=header]... [--no-sandbox]
 *	  recovery-parse --check-sandbox
 *
 * --check-sandbox enters the sandbox and tries what it forbids: opening a
 * file (refused with EACCES), then a socket (which stops it with status 3),
 * so that an administrator can see that this kernel enforces the filter.
 *
 * Exit status: 0 read, 1 the file cannot be read (the reason on stderr),
 * 2 wrong usage, 3 refused by the sandbox; killed by SIGXCPU or SIGKILL
 * past its CPU time.
 */
#define _GNU_SOURCE
#include "parse.h"
#include "sandbox.h"
#include "statement_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libxml/parser.h>

static void
usage(const char *problem)
{
	fprintf(stderr, "error: %s\n"
			"usage: recovery-parse [--format camt|mt940|xlsx|xls|pdf] [--cpu-seconds N]\n"
			"       [--memory-mb N] [--output-mb N] [--column field=header]... < file\n",
			problem);
	exit(2);
}

static int
check_sandbox(void)
{
	int			fd;

	if (!sandbox_enter())
	{
		fprintf(stderr, "error: cannot enter the sandbox (seccomp): %s\n", strerror(errno));
		return 1;
	}
	fd = open("/etc/hostname", O_RDONLY);
	printf("open: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fflush(stdout);
	if (fd >= 0)
		return 1;
	/* the filter stops the process here (status 3, "refused system call") */
	(void) socket(AF_INET, SOCK_STREAM, 0);
	printf("socket: ALLOWED\n");
	return 1;
}

static int
number_argument(const char *value, int max)
{
	char	   *end;
	long		n = value ? strtol(value, &end, 10) : 0;

	if (value == NULL || *end || n < 1 || n > max)
		usage("a limit must be a whole number from 1");
	return (int) n;
}

static void
column_argument(char *value)
{
	char	   *equals = strchr(value, '=');
	int			f;

	if (equals == NULL)
		usage("--column takes field=header");
	*equals = '\0';
	for (f = 0; f < CSV_FIELD_COUNT; f++)
		if (strcmp(value, csv_field_names[f]) == 0)
		{
			parse_mapping.columns[f] = equals + 1;
			return;
		}
	usage("--column names date, amount, currency, reference, payer or iban");
}

int
main(int argc, char **argv)
{
	SandboxLimits limits = {30, 256, 512};
	const char *format = NULL;
	bool		sandboxed = true;
	static char head[STATEMENT_FORMAT_HEAD];
	ParseInput	in = {STDIN_FILENO, head, 0, 0, 0};
	StatementSink sink;
	ExtractError error;
	ExtractBuf	summary;
	const void *workbook = NULL;
	void	   *document = NULL;
	char	   *whole = NULL;
	size_t		whole_len = 0;
	ssize_t		n;
	int			i;
	bool		ok;

	for (i = 1; i < argc; i++)
	{
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--format") == 0 && value)
			format = value, i++;
		else if (strcmp(argv[i], "--cpu-seconds") == 0)
			limits.cpu_seconds = number_argument(value, 3600), i++;
		else if (strcmp(argv[i], "--memory-mb") == 0)
			limits.memory_mb = number_argument(value, 65536), i++;
		else if (strcmp(argv[i], "--output-mb") == 0)
			limits.output_mb = number_argument(value, 65536), i++;
		else if (strcmp(argv[i], "--column") == 0 && value)
			column_argument(argv[++i]);
		else if (strcmp(argv[i], "--check-sandbox") == 0)
			return check_sandbox();
		else if (strcmp(argv[i], "--no-sandbox") == 0)
			sandboxed = false;	/* for the benchmark's profile only */
		else
			usage("unknown argument");
	}
	if (format && (format = statement_format_known(format)) == NULL)
		usage("--format is camt, mt940, xlsx, xls or pdf");

	/* nothing the backend left open is ours; then the limits */
	close_range(3, ~0U, 0);
	if (!sandbox_limit(&limits))
	{
		fprintf(stderr, "error: cannot set the resource limits: %s\n", strerror(errno));
		return 1;
	}

	/* the first bytes tell the format */
	while (in.head_len < sizeof(head) &&
		   (n = read(STDIN_FILENO, head + in.head_len, sizeof(head) - in.head_len)) != 0)
	{
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			fprintf(stderr, "error: cannot read the file: %s\n", strerror(errno));
			return 1;
		}
		in.head_len += (size_t) n;
	}
	if (format == NULL)
		format = statement_format(head, in.head_len);
	memset(&error, 0, sizeof(error));

	/* what must be opened before the sandbox closes */
	xmlInitParser();
	if (strcmp(format, "xlsx") == 0 || strcmp(format, "xls") == 0 || strcmp(format, "pdf") == 0)
		whole = input_read_all(&in, PARSE_MAX_WHOLE, &whole_len, &error);
	if (whole && strcmp(format, "xls") == 0)
		(void) xls_open(whole, whole_len, &workbook, &error);
	else if (whole && strcmp(format, "pdf") == 0)
		(void) pdf_open(whole, whole_len, &document, &error);
	if (sandboxed && !sandbox_enter())
	{
		fprintf(stderr, "error: cannot enter the sandbox (seccomp): %s\n", strerror(errno));
		return 1;
	}

	sink_init(&sink, STDOUT_FILENO, format);
	if (error.failed)
		ok = false;
	else if (strcmp(format, "camt") == 0)
		ok = camt_parse(&in, &sink, &error);
	else if (strcmp(format, "mt940") == 0)
		ok = mt940_parse(&in, &sink, &error);
	else if (strcmp(format, "xlsx") == 0)
		ok = xlsx_parse(whole, whole_len, &sink, &error);
	else if (strcmp(format, "xls") == 0)
		ok = xls_parse(workbook, &sink, &error);
	else if (strcmp(format, "pdf") == 0)
		ok = pdf_parse(document, &sink, &error);
	else
	{
		extract_fail(&error, 0, strcmp(format, "xml") == 0
					 ? "an XML file that is not a CAMT.052, .053 or .054 statement"
					 : "not a CAMT, MT940, xlsx, xls or PDF file");
		ok = false;
	}
	xbuf_init(&summary);
	if (ok && !sink_finish(&sink, &summary))
	{
		fprintf(stderr, "error: cannot write what was read (more than --output-mb %d?)\n",
				limits.output_mb);
		return 1;
	}
	if (!ok)
	{
		if (error.line > 0)
			fprintf(stderr, "\nerror: %s (line %ld)\n", error.message, error.line);
		else
			fprintf(stderr, "\nerror: %s\n", error.message);
		return 1;
	}
	fprintf(stderr, "\n%s\n", summary.data);
	xbuf_free(&summary);
	sink_free(&sink);
	extract_free(whole);
	return 0;
}
