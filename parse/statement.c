/*
 * statement.c
 *		The canonical CSV that recovery-parse writes, and the balance check
 *		of each statement (statement.h).
 */
#include "statement.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define OUT_BLOCK (256 * 1024)

static const char csv_header[] = "date,amount,currency,reference,payer,iban,problem,hold\n";

static void
write_all(StatementSink *sink, const char *data, size_t len)
{
	while (len > 0 && !sink->write_failed)
	{
		ssize_t		n = write(sink->out_fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			sink->write_failed = true;
			return;
		}
		data += n;
		len -= (size_t) n;
	}
}

static void
out_flush(StatementSink *sink)
{
	write_all(sink, sink->out.data, sink->out.len);
	sink->out.len = 0;
	sink->out.data[0] = '\0';
}

static void
out_append(StatementSink *sink, const char *data, size_t len)
{
	xbuf_append(&sink->out, data, len);
	if (sink->out.len >= OUT_BLOCK)
		out_flush(sink);
}

void
csv_quote(ExtractBuf *buf, const char *value)
{
	const char *p,
			   *run;

	xbuf_appendc(buf, '"');
	for (run = p = value;; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c >= 0x20 && c != '"' && c != 0x7f)
			continue;
		xbuf_append(buf, run, (size_t) (p - run));
		if (c == '\0')
			break;
		xbuf_append(buf, c == '"' ? "\"\"" : " ", c == '"' ? 2 : 1);
		run = p + 1;
	}
	xbuf_appendc(buf, '"');
}

/* a field after the first: empty when there is no value */
static void
append_field(ExtractBuf *buf, const char *value)
{
	xbuf_appendc(buf, ',');
	if (value != NULL && value[0] != '\0')
		csv_quote(buf, value);
}

void
sink_init(StatementSink *sink, int out_fd, const char *format)
{
	memset(sink, 0, sizeof(*sink));
	sink->out_fd = out_fd;
	sink_format(sink, format);
	xbuf_init(&sink->held);
	xbuf_init(&sink->out);
}

void
sink_format(StatementSink *sink, const char *format)
{
	snprintf(sink->format, sizeof(sink->format), "%s", format);
}

void
sink_raw(StatementSink *sink, const char *csv, size_t len)
{
	sink->raw = true;
	out_append(sink, csv, len);
}

void
sink_begin(StatementSink *sink, const char *id)
{
	if (!sink->header_written)
	{
		out_append(sink, csv_header, strlen(csv_header));
		sink->header_written = true;
		sink->lines = 1;
	}
	if (sink->in_statement)
		sink_end(sink);
	sink->in_statement = true;
	snprintf(sink->id, sizeof(sink->id), "%s", id && id[0] ? id : "");
	sink->has_opening = sink->has_closing = false;
	sink->opening = sink->closing = sink->sum = 0;
	sink->currency[0] = '\0';
	sink->mixed_currency = sink->sum_unknown = false;
	sink->first_line = sink->lines + 1;
	sink->statements++;
}

/* "-1234.5" into 10^-5 units; false when it has more decimals or digits */
static bool
scaled(const char *decimal, __int128 *out)
{
	const char *p = decimal;
	bool		negative = *p == '-';
	int			decimals = -1,
				digits = 0;
	__int128	value = 0;

	for (p += negative; *p; p++)
	{
		if (*p == '.' && decimals < 0)
		{
			decimals = 0;
			continue;
		}
		if (!isdigit((unsigned char) *p) || ++digits > 30)
			return false;
		value = value * 10 + (*p - '0');
		if (decimals >= 0 && ++decimals > STATEMENT_MAX_DECIMALS)
			return false;
	}
	if (digits == 0)
		return false;
	for (decimals = decimals < 0 ? 0 : decimals; decimals < STATEMENT_MAX_DECIMALS; decimals++)
		value *= 10;
	*out = negative ? -value : value;
	return true;
}

static void
note_currency(StatementSink *sink, const char *currency)
{
	if (currency == NULL || currency[0] == '\0')
		return;
	if (sink->currency[0] == '\0')
		snprintf(sink->currency, sizeof(sink->currency), "%s", currency);
	else if (strcmp(sink->currency, currency) != 0)
		sink->mixed_currency = true;
}

bool
sink_balance(StatementSink *sink, char kind, const char *amount, const char *currency,
			 ExtractError *error)
{
	__int128	value;

	if (!sink->in_statement)
		sink_begin(sink, NULL);
	if (!scaled(amount, &value))
	{
		extract_fail(error, 0, "the %s balance \"%.40s\" is not an amount",
					 kind == 'O' ? "opening" : "closing", amount);
		return false;
	}
	note_currency(sink, currency);
	if (kind == 'O' && !sink->has_opening)
		sink->has_opening = true, sink->opening = value;
	else if (kind == 'C')
		sink->has_closing = true, sink->closing = value;
	return true;
}

void
sink_entry(StatementSink *sink, const StatementEntry *entry)
{
	__int128	value;

	if (!sink->in_statement)
		sink_begin(sink, NULL);
	out_append(sink, entry->date, strlen(entry->date));
	append_field(&sink->out, entry->amount);
	append_field(&sink->out, entry->currency);
	append_field(&sink->out, entry->reference);
	append_field(&sink->out, entry->payer);
	append_field(&sink->out, entry->iban);
	append_field(&sink->out, entry->problem);
	append_field(&sink->out, entry->hold);
	out_append(sink, "\n", 1);
	sink->lines++;
	sink->entries++;

	/* pending entries are not in the booked balance */
	if (entry->problem && strncmp(entry->problem, "pending", 7) == 0)
		return;
	note_currency(sink, entry->currency);
	if (scaled(entry->amount, &value))
		sink->sum += value;
	else
		sink->sum_unknown = true;
}

/* 10^-5 units as a decimal with two decimals at least: "-12.50" */
static void
format_scaled(__int128 value, char *out, size_t size)
{
	char		digits[64];
	int			n = 0,
				keep = 2,
				at = 0,
				i;
	unsigned __int128 v = value < 0 ? -(unsigned __int128) value : (unsigned __int128) value;

	do
	{
		digits[n++] = '0' + (int) (v % 10);
		v /= 10;
	} while (v > 0 || n <= STATEMENT_MAX_DECIMALS);
	for (i = 0; i < STATEMENT_MAX_DECIMALS - 2; i++)
		if (digits[i] != '0')
		{
			keep = STATEMENT_MAX_DECIMALS - i;
			break;
		}
	if (size < (size_t) n + 3)
	{
		snprintf(out, size, "?");
		return;
	}
	if (value < 0)
		out[at++] = '-';
	for (i = n - 1; i >= STATEMENT_MAX_DECIMALS; i--)
		out[at++] = digits[i];
	out[at++] = '.';
	for (i = STATEMENT_MAX_DECIMALS - 1; i >= STATEMENT_MAX_DECIMALS - keep; i--)
		out[at++] = digits[i];
	out[at] = '\0';
}

/* why the statement does not add up, or NULL when it does */
static const char *
balance_problem(StatementSink *sink, char *why, size_t size)
{
	char		expected[64],
				found[64];

	if (!sink->has_opening || !sink->has_closing)
		return NULL;			/* nothing stated: nothing to check */
	if (sink->mixed_currency)
		snprintf(why, size, "statement %s mixes currencies: its balances cannot be checked",
				 sink->id[0] ? sink->id : "without id");
	else if (sink->sum_unknown)
		snprintf(why, size, "statement %s has an entry without a readable amount",
				 sink->id[0] ? sink->id : "without id");
	else if (sink->opening + sink->sum != sink->closing)
	{
		format_scaled(sink->closing - sink->opening, expected, sizeof(expected));
		format_scaled(sink->sum, found, sizeof(found));
		snprintf(why, size, "statement %s does not add up: its balances differ by %s %s, "
				 "its entries sum to %s (a truncated file or a missing page?)",
				 sink->id[0] ? sink->id : "without id", expected, sink->currency, found);
	}
	else
		return NULL;
	return why;
}

void
sink_end(StatementSink *sink)
{
	char		why[320];
	const char *problem;

	if (!sink->in_statement)
		return;
	sink->in_statement = false;
	problem = balance_problem(sink, why, sizeof(why));
	if (problem && sink->lines >= sink->first_line)
	{
		char		range[64];

		snprintf(range, sizeof(range), "%s{\"first_line\": %ld, \"last_line\": %ld, \"reason\": ",
				 sink->unbalanced ? ", " : "", sink->first_line, sink->lines);
		xbuf_appends(&sink->held, range);
		xbuf_json_string(&sink->held, problem, strlen(problem));
		xbuf_appendc(&sink->held, '}');
		sink->unbalanced++;
	}
}

bool
sink_finish(StatementSink *sink, ExtractBuf *summary)
{
	char		number[160];

	sink_end(sink);
	out_flush(sink);
	if (!sink->raw && !sink->header_written)
		out_append(sink, csv_header, strlen(csv_header));
	out_flush(sink);
	xbuf_appends(summary, "{\"format\": ");
	xbuf_json_string(summary, sink->format, strlen(sink->format));
	xbuf_appends(summary, sink->text ? ", \"columns\": \"text\"" :
				 sink->raw ? ", \"columns\": \"own\"" : ", \"columns\": \"canonical\"");
	snprintf(number, sizeof(number), ", \"statements\": %ld, \"entries\": %ld, \"unbalanced\": %ld",
			 sink->statements, sink->entries, sink->unbalanced);
	xbuf_appends(summary, number);
	if (sink->unbalanced)
	{
		xbuf_appends(summary, ", \"held\": [");
		xbuf_append(summary, sink->held.data, sink->held.len);
		xbuf_appendc(summary, ']');
	}
	xbuf_appends(summary, "}");
	return !sink->write_failed;
}

void
sink_free(StatementSink *sink)
{
	xbuf_free(&sink->held);
	xbuf_free(&sink->out);
}

bool
statement_decimal(const char *text, size_t len, bool negative, char *out, size_t out_size)
{
	size_t		i,
				at = 0,
				digits = 0,
				decimals = 0,
				keep;
	bool		point = false;

	while (len > 0 && isspace((unsigned char) text[0]))
		text++, len--;
	while (len > 0 && isspace((unsigned char) text[len - 1]))
		len--;
	if (len == 0 || len + 3 > out_size)
		return false;
	if (negative)
		out[at++] = '-';
	for (i = 0; i < len; i++)
	{
		char		c = text[i];

		if ((c == '.' || c == ',') && !point && digits > 0)
			point = true, out[at++] = '.';
		else if (isdigit((unsigned char) c) && ++digits <= 30)
			out[at++] = c, decimals += point;
		else
			return false;
	}
	if (digits == 0)
		return false;
	/*
	 * As written ("200.50", a CSV export's "200,50" reads the same), but
	 * zeros past two decimals dropped: "12.34000" is "12.34"; "12," is "12"
	 */
	for (keep = decimals; keep > 2 && out[at - 1] == '0'; keep--)
		at--;
	if (point && keep == 0)
		at--;
	out[at] = '\0';
	return true;
}

bool
statement_rf_valid(const char *text)
{
	char		compact[40];
	size_t		n = 0;
	const char *p;
	unsigned	remainder = 0;
	size_t		i;

	for (p = text; *p; p++)
	{
		if (isspace((unsigned char) *p))
			continue;
		if (!isalnum((unsigned char) *p) || n + 1 >= sizeof(compact))
			return false;
		compact[n++] = (char) toupper((unsigned char) *p);
	}
	compact[n] = '\0';
	if (n < 5 || n > 25 || compact[0] != 'R' || compact[1] != 'F' ||
		!isdigit((unsigned char) compact[2]) || !isdigit((unsigned char) compact[3]))
		return false;
	/* ISO 7064 mod 97-10 of the reference with "RFnn" moved to its end */
	for (i = 0; i < n; i++)
	{
		char		c = compact[(i + 4) % n];

		if (isdigit((unsigned char) c))
			remainder = (remainder * 10 + (unsigned) (c - '0')) % 97;
		else
			remainder = (remainder * 100 + (unsigned) (c - 'A' + 10)) % 97;
	}
	return remainder == 1;
}

void
statement_squeeze(char *text)
{
	char	   *from = text,
			   *to = text;
	bool		space = false;

	for (; *from; from++)
	{
		if (isspace((unsigned char) *from))
		{
			space = to != text;
			continue;
		}
		if (space)
			*to++ = ' ';
		space = false;
		*to++ = *from;
	}
	*to = '\0';
}
