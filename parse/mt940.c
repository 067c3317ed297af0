/*
 * mt940.c
 *		SWIFT MT940 (statements) and MT942 (interim reports): the tags
 *		:20: :25: :28C: :60F/M: :61: :86: :62F/M: :64: :65:, the :61: line in
 *		all its optional parts, and :86: as free text or in the structured
 *		forms banks use: German ?20..?29 sub-fields with SEPA keys (EREF+,
 *		SVWZ+) and slash codes (/EREF/ /REMI/ /NAME/ /IBAN/).  Windows-1252,
 *		ISO-8859-1 or UTF-8.
 */
#include "parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Mt940
{
	StatementSink *sink;
	ExtractError *error;
	char		currency[4];	/* the statement's, from :60: or :34F: */
	bool		have_entry;		/* a :61: waits for its :86: */
	bool		interim;		/* MT942: :13D: and :34F: */
	StatementEntry entry;
	char		reversal_problem[80];
	ExtractBuf	reference;
	ExtractBuf	payer;
	ExtractBuf	iban;
	long		line;
} Mt940;

/* YYMMDD into "20YY-MM-DD" */
static bool
short_date(const char *text, char out[11])
{
	int			i;

	for (i = 0; i < 6; i++)
		if (!isdigit((unsigned char) text[i]))
			return false;
	snprintf(out, 11, "%s%.2s-%.2s-%.2s", text[0] >= '8' ? "19" : "20", text, text + 2, text + 4);
	return true;
}

static void
entry_flush(Mt940 *mt)
{
	if (!mt->have_entry)
		return;
	statement_squeeze(mt->reference.data);
	statement_squeeze(mt->payer.data);
	mt->entry.reference = mt->reference.data;
	mt->entry.payer = mt->payer.data;
	mt->entry.iban = mt->iban.data;
	sink_entry(mt->sink, &mt->entry);
	mt->have_entry = false;
}

/* :60F:C261204EUR1234,56 and :62F: */
static void
balance(Mt940 *mt, char kind, const char *value)
{
	char		amount[48];
	char		currency[4];

	if (strlen(value) < 11 || (value[0] != 'C' && value[0] != 'D'))
	{
		extract_fail(mt->error, mt->line, "the balance \"%.40s\" is not \"C\" or \"D\", a date, a currency and an amount", value);
		return;
	}
	snprintf(currency, sizeof(currency), "%.3s", value + 7);
	if (!statement_decimal(value + 10, strlen(value + 10), value[0] == 'D', amount, sizeof(amount)))
	{
		extract_fail(mt->error, mt->line, "the balance amount \"%.40s\" is not an amount", value + 10);
		return;
	}
	if (kind == 'O')
		snprintf(mt->currency, sizeof(mt->currency), "%s", currency);
	(void) sink_balance(mt->sink, kind, amount, currency, mt->error);
}

/*
 * :61: value date 6!n, [entry date 4!n], mark C D RC RD, [funds code 1!a],
 * amount 15d, type 1!a3!c, customer reference 16x, [//bank reference 16x],
 * and on the next line [supplementary details 34x].
 */
static void
statement_line(Mt940 *mt, const char *value)
{
	const char *p = value;
	char		valued[11],
				booked[11] = "";
	bool		reversal = false,
				debit;
	const char *amount_start;
	const char *reference;

	entry_flush(mt);
	memset(&mt->entry, 0, sizeof(mt->entry));
	mt->reference.len = mt->payer.len = mt->iban.len = 0;
	mt->reference.data[0] = mt->payer.data[0] = mt->iban.data[0] = '\0';
	if (!short_date(p, valued))
	{
		extract_fail(mt->error, mt->line, "the :61: line does not start with a date (YYMMDD)");
		return;
	}
	p += 6;
	if (isdigit((unsigned char) p[0]) && isdigit((unsigned char) p[1]) &&
		isdigit((unsigned char) p[2]) && isdigit((unsigned char) p[3]))
	{
		/* the entry date's year is the value date's, or next to it */
		int			year = atoi(valued);

		if (valued[5] == '1' && valued[6] == '2' && p[0] == '0' && p[1] == '1')
			year++;
		else if (valued[5] == '0' && valued[6] == '1' && p[0] == '1' && p[1] == '2')
			year--;
		snprintf(booked, sizeof(booked), "%04u-%.2s-%.2s", (unsigned) year % 10000u, p, p + 2);
		p += 4;
	}
	if (p[0] == 'R' && (p[1] == 'C' || p[1] == 'D'))
		reversal = true, p++;
	if (p[0] != 'C' && p[0] != 'D')
	{
		extract_fail(mt->error, mt->line, "the :61: line has no debit or credit mark (C, D, RC, RD)");
		return;
	}
	/* C and RD bring money in; D and RC take it out */
	debit = (p[0] == 'D') != reversal;
	p++;
	if (isalpha((unsigned char) p[0]))
		p++;					/* the funds code */
	amount_start = p;
	while (isdigit((unsigned char) *p) || *p == ',')
		p++;
	if (!statement_decimal(amount_start, (size_t) (p - amount_start), debit,
						   mt->entry.amount, sizeof(mt->entry.amount)))
		mt->entry.problem = "the entry has no readable amount";
	if (strlen(p) >= 4)
		p += 4;					/* transaction type, "NTRF" */
	reference = p;
	snprintf(mt->entry.date, sizeof(mt->entry.date), "%s", booked[0] ? booked : valued);
	snprintf(mt->entry.currency, sizeof(mt->entry.currency), "%s", mt->currency);
	/* the customer reference, unless NONREF; :86: brings the text */
	if (strncmp(reference, "NONREF", 6) != 0)
	{
		const char *end = strstr(reference, "//");

		xbuf_append(&mt->reference, reference, end ? (size_t) (end - reference) : strcspn(reference, "\n"));
	}
	if (reversal)
	{
		snprintf(mt->reversal_problem, sizeof(mt->reversal_problem),
				 "a reversal of an earlier booking: check the payment it cancels");
		mt->entry.problem = mt->reversal_problem;
	}
	mt->have_entry = true;
}

/* the value of ?NN (German sub-fields), for NN in [from, to], joined */
static void
german_fields(const char *value, int from, int to, ExtractBuf *out)
{
	const char *p;

	for (p = value; (p = strchr(p, '?')) != NULL; p++)
	{
		int			code;
		size_t		n;

		if (!isdigit((unsigned char) p[1]) || !isdigit((unsigned char) p[2]))
			continue;
		code = (p[1] - '0') * 10 + (p[2] - '0');
		n = strcspn(p + 3, "?");
		if (code >= from && code <= to)
			xbuf_append(out, p + 3, n);
	}
}

static const char *const slash_codes[] = {
	"EREF", "KREF", "MREF", "CRED", "DEBT", "REMI", "NAME", "IBAN", "BIC", "ORDP", "BENM",
	"PURP", "SVWZ", "ABWA", "ABWE", "IREF", "ACCW", "OCMT", "CHGS", "RTRN", "ULTD", "ULTC",
	"CSID", "MARF", "TRCD", "BREF", NULL
};

/* at "/CODE/" of a known code: its length, else 0 */
static size_t
slash_code_at(const char *p)
{
	int			i;

	if (p[0] != '/')
		return 0;
	for (i = 0; slash_codes[i]; i++)
	{
		size_t		n = strlen(slash_codes[i]);

		if (strncmp(p + 1, slash_codes[i], n) == 0 && p[n + 1] == '/')
			return n + 2;
	}
	return 0;
}

/* the value of /CODE/ in a slash-coded :86:, into out */
static bool
slash_field(const char *value, const char *code, ExtractBuf *out)
{
	const char *p;

	for (p = value; *p; p++)
	{
		size_t		n = slash_code_at(p);
		const char *end;

		if (n == 0 || strncmp(p + 1, code, strlen(code)) != 0 || n != strlen(code) + 2)
			continue;
		p += n;
		/* /REMI/USTD//text/ and /REMI/STRD/CUR/RF... */
		if (strncmp(p, "USTD//", 6) == 0)
			p += 6;
		for (end = p; *end && slash_code_at(end) == 0; end++)
			;
		while (end > p && end[-1] == '/')
			end--;
		xbuf_append(out, p, (size_t) (end - p));
		return true;
	}
	return false;
}

/* the text after a SEPA key ("SVWZ+") in the joined ?20..?29, up to the next key */
static bool
sepa_key(const char *text, const char *key, ExtractBuf *out)
{
	static const char *const keys[] = {"EREF+", "KREF+", "MREF+", "CRED+", "DEBT+", "COAM+",
	"OAMT+", "SVWZ+", "ABWA+", "ABWE+", NULL};
	const char *start = strstr(text, key);
	const char *end;
	int			k;

	if (start == NULL)
		return false;
	start += strlen(key);
	end = start + strlen(start);
	for (k = 0; keys[k]; k++)
	{
		const char *next = strstr(start, keys[k]);

		if (next && next < end)
			end = next;
	}
	xbuf_append(out, start, (size_t) (end - start));
	return true;
}

static void
information(Mt940 *mt, const char *value)
{
	if (!mt->have_entry)
		return;					/* :86: of the statement as a whole */
	if (value[0] && isdigit((unsigned char) value[0]) && strstr(value, "?2"))
	{
		ExtractBuf	text;

		xbuf_init(&text);
		german_fields(value, 20, 29, &text);
		german_fields(value, 60, 63, &text);
		mt->reference.len = 0;
		if (!sepa_key(text.data, "SVWZ+", &mt->reference))
		{
			/* no SEPA keys: the sub-fields are the text */
			if (!strstr(text.data, "EREF+"))
				xbuf_append(&mt->reference, text.data, text.len);
			else
				(void) sepa_key(text.data, "EREF+", &mt->reference);
		}
		mt->reference.data[mt->reference.len] = '\0';
		german_fields(value, 32, 33, &mt->payer);
		german_fields(value, 31, 31, &mt->iban);
		xbuf_free(&text);
	}
	else if (slash_code_at(value) || strstr(value, "/REMI/") || strstr(value, "/EREF/"))
	{
		ExtractBuf	remittance;

		xbuf_init(&remittance);
		if (!slash_field(value, "REMI", &remittance))
			(void) slash_field(value, "EREF", &remittance);
		if (remittance.len)
		{
			mt->reference.len = 0;
			xbuf_append(&mt->reference, remittance.data, remittance.len);
		}
		if (!slash_field(value, "NAME", &mt->payer))
			(void) slash_field(value, "ORDP", &mt->payer);
		(void) slash_field(value, "IBAN", &mt->iban);
		xbuf_free(&remittance);
	}
	else
	{
		mt->reference.len = 0;
		xbuf_appends(&mt->reference, value);
	}
	mt->iban.len = strcspn(mt->iban.data, " ");
	mt->iban.data[mt->iban.len] = '\0';
}

/* one tag with its value (continuation lines joined) */
static void
tag(Mt940 *mt, const char *name, const char *value)
{
	if (strcmp(name, "20") == 0)
	{
		entry_flush(mt);
		sink_begin(mt->sink, value);
		mt->currency[0] = '\0';
	}
	else if (strcmp(name, "60F") == 0 || strcmp(name, "60M") == 0)
		balance(mt, 'O', value);
	else if (strcmp(name, "62F") == 0 || strcmp(name, "62M") == 0)
	{
		entry_flush(mt);
		balance(mt, 'C', value);
	}
	else if (strcmp(name, "34F") == 0 || strcmp(name, "13D") == 0)
	{
		mt->interim = true;
		if (name[0] == '3' && mt->currency[0] == '\0')
			snprintf(mt->currency, sizeof(mt->currency), "%.3s", value);
	}
	else if (strcmp(name, "61") == 0)
		statement_line(mt, value);
	else if (strcmp(name, "86") == 0)
	{
		information(mt, value);
		entry_flush(mt);
	}
	else if (strcmp(name, "64") == 0 || strcmp(name, "65") == 0)
		entry_flush(mt);
}

bool
mt940_parse(ParseInput *in, StatementSink *sink, ExtractError *error)
{
	Mt940		mt;
	size_t		raw_len,
				len,
				pos = 0;
	char	   *raw = input_read_all(in, PARSE_MAX_WHOLE, &raw_len, error);
	char	   *text;
	ExtractEncoding encoding;
	char		name[8] = "";
	ExtractBuf	value;
	bool		structured = false;
	long		tags = 0;

	if (raw == NULL)
		return false;
	if (memchr(raw, '\0', raw_len))
	{
		extract_free(raw);
		extract_fail(error, 0, "the file has a NUL byte: it is not an MT940 text");
		return false;
	}
	text = extract_to_utf8(raw, raw_len, &len, &encoding);
	extract_free(raw);
	memset(&mt, 0, sizeof(mt));
	mt.sink = sink;
	mt.error = error;
	xbuf_init(&mt.reference);
	xbuf_init(&mt.payer);
	xbuf_init(&mt.iban);
	xbuf_init(&value);
	while (pos < len && !error->failed)
	{
		size_t		end = pos + strcspn(text + pos, "\r\n");
		char	   *line = text + pos;
		size_t		n = end - pos;

		mt.line++;
		pos = end + (end + 1 < len && text[end] == '\r' && text[end + 1] == '\n' ? 2 : 1);
		line[n] = '\0';
		/* the SWIFT envelope: "{1:...}{2:...}{4:" and "-}" */
		if (line[0] == '{')
		{
			char	   *body = strstr(line, "{4:");

			if (body == NULL)
				continue;
			line = body + 3;
			n = strlen(line);
			if (n == 0)
				continue;
		}
		if (line[0] == ':' && n >= 4 && strchr(line + 1, ':') && strchr(line + 1, ':') - line <= 4)
		{
			char	   *colon = strchr(line + 1, ':');

			if (name[0])
				tag(&mt, name, value.data);
			snprintf(name, sizeof(name), "%.*s", (int) (colon - line - 1), line + 1);
			value.len = 0;
			xbuf_appends(&value, colon + 1);
			structured = strcmp(name, "86") == 0 && (strchr(colon + 1, '?') || colon[1] == '/');
			tags++;
		}
		else if (line[0] == '-' && (line[1] == '\0' || line[1] == '}'))
		{
			if (name[0])
				tag(&mt, name, value.data);
			name[0] = '\0';
			entry_flush(&mt);
		}
		else if (name[0])
		{
			/* a continuation: wrapped at 65 characters, so no space in codes */
			if (!structured)
				xbuf_appendc(&value, strcmp(name, "61") == 0 ? '\n' : ' ');
			xbuf_append(&value, line, n);
		}
	}
	if (!error->failed && name[0])
		tag(&mt, name, value.data);
	entry_flush(&mt);
	if (!error->failed && tags == 0)
		extract_fail(error, 0, "the file has no MT940 tags (\":20:\", \":61:\")");
	if (mt.interim)
		sink_format(sink, encoding == EXTRACT_WINDOWS_1252 ? "mt942 (windows-1252)" : "mt942");
	else
		sink_format(sink, encoding == EXTRACT_WINDOWS_1252 ? "mt940 (windows-1252)" : "mt940");
	xbuf_free(&value);
	xbuf_free(&mt.reference);
	xbuf_free(&mt.payer);
	xbuf_free(&mt.iban);
	extract_free(text);
	return !error->failed;
}
