/*
 * extract_common.c
 *		What the parsers share: a growable buffer with JSON string escaping,
 *		errors, conversion to UTF-8, and amounts and dates as people write
 *		them ("1.234,56", "12.50-", "(12.50)", "31.12.2026", "12/31/2026").
 */
#include "extract.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void
extract_fail(ExtractError *error, long line, const char *format,...)
{
	va_list		args;

	if (error->failed)
		return;					/* the first problem is the one to report */
	error->failed = true;
	error->line = line;
	va_start(args, format);
	vsnprintf(error->message, sizeof(error->message), format, args);
	va_end(args);
}

void
xbuf_init(ExtractBuf *buf)
{
	buf->cap = 256;
	buf->len = 0;
	buf->data = extract_realloc(NULL, buf->cap);
	buf->data[0] = '\0';
}

void
xbuf_append(ExtractBuf *buf, const char *bytes, size_t len)
{
	if (buf->len + len + 1 > buf->cap)
	{
		size_t		cap = buf->cap;

		while (buf->len + len + 1 > cap)
			cap *= 2;
		buf->data = extract_realloc(buf->data, cap);
		buf->cap = cap;
	}
	memcpy(buf->data + buf->len, bytes, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void
xbuf_appendc(ExtractBuf *buf, char c)
{
	xbuf_append(buf, &c, 1);
}

void
xbuf_appends(ExtractBuf *buf, const char *text)
{
	xbuf_append(buf, text, strlen(text));
}

/* A JSON string of UTF-8 text; control characters escaped, NUL dropped. */
void
xbuf_json_string(ExtractBuf *buf, const char *text, size_t len)
{
	size_t		i;

	xbuf_appendc(buf, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) text[i];
		char		escaped[8];

		if (c == '"' || c == '\\')
		{
			xbuf_appendc(buf, '\\');
			xbuf_appendc(buf, (char) c);
		}
		else if (c == '\n')
			xbuf_appends(buf, "\\n");
		else if (c == '\r')
			xbuf_appends(buf, "\\r");
		else if (c == '\t')
			xbuf_appends(buf, "\\t");
		else if (c == 0)
			continue;
		else if (c < 0x20)
		{
			snprintf(escaped, sizeof(escaped), "\\u%04x", c);
			xbuf_appends(buf, escaped);
		}
		else
			xbuf_appendc(buf, (char) c);
	}
	xbuf_appendc(buf, '"');
}

void
xbuf_free(ExtractBuf *buf)
{
	extract_free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/* how many bytes from s on are ASCII, eight at a time */
static size_t
ascii_run(const char *s, size_t len)
{
	size_t		i = 0;
	uint64_t	word;

	while (i + 8 <= len)
	{
		memcpy(&word, s + i, 8);
		if (word & UINT64_C(0x8080808080808080))
			break;
		i += 8;
	}
	while (i < len && (unsigned char) s[i] < 0x80)
		i++;
	return i;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool
extract_valid_utf8(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		unsigned int cp;
		size_t		k;

		if (c < 0x80)
		{
			i += ascii_run(text + i, len - i);
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false;
		for (k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
			(n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		i += n + 1;
	}
	return true;
}

/* Windows-1252's 0x80 to 0x9F; the rest of the bytes are Latin-1. */
static const unsigned short cp1252_high[32] = {
	0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
	0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178
};

char *
extract_to_utf8(const char *input, size_t len, size_t *out_len,
				ExtractEncoding *encoding)
{
	char	   *out;
	size_t		i,
				n = 0;

	if (len >= 3 && memcmp(input, "\xEF\xBB\xBF", 3) == 0)
	{
		*encoding = EXTRACT_UTF8_BOM;
		input += 3;
		len -= 3;
	}
	else
		*encoding = extract_valid_utf8(input, len) ? EXTRACT_UTF8 : EXTRACT_WINDOWS_1252;

	if (*encoding != EXTRACT_WINDOWS_1252)
	{
		out = extract_realloc(NULL, len + 1);
		memcpy(out, input, len);
		out[len] = '\0';
		*out_len = len;
		return out;
	}
	out = extract_realloc(NULL, len * 3 + 1);
	for (i = 0; i < len; i++)
	{
		size_t		ascii = ascii_run(input + i, len - i);
		unsigned char c;
		unsigned int cp;

		/* most of a statement is ASCII, and stays as it is */
		memcpy(out + n, input + i, ascii);
		n += ascii;
		i += ascii;
		if (i == len)
			break;
		c = (unsigned char) input[i];
		cp = c < 0xA0 ? cp1252_high[c - 0x80] : c;
		if (cp < 0x800)
		{
			out[n++] = (char) (0xC0 | (cp >> 6));
			out[n++] = (char) (0x80 | (cp & 0x3F));
		}
		else
		{
			out[n++] = (char) (0xE0 | (cp >> 12));
			out[n++] = (char) (0x80 | ((cp >> 6) & 0x3F));
			out[n++] = (char) (0x80 | (cp & 0x3F));
		}
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Amounts: "1,234.56", "1.234,56", "1 234,56", "1'234.56", "-12.50",
 * "12.50-", "(12.50)", "+5", "12,5", with currency symbols, codes, spaces
 * and CR/DR around them.  Digits with separators in between only; anything
 * else in the middle makes it not an amount.
 */
bool
extract_parse_amount(const char *text, size_t len, char decimal,
					 char *out, size_t out_size)
{
	char		digits[64];
	size_t		n_digits = 0;
	size_t		first = len,
				last = 0;
	size_t		i;
	bool		negative = false;
	long		decimal_at = -1;	/* digits before the decimal separator */
	char		seps[64];
	size_t		sep_pos[64];
	size_t		n_seps = 0;
	size_t		k;

	/* the run from the first digit to the last */
	for (i = 0; i < len; i++)
		if (is_digit(text[i]))
		{
			if (first == len)
				first = i;
			last = i;
		}
	if (first == len)
		return false;

	/* signs and their look-alikes outside the run */
	for (i = 0; i < first; i++)
		if (text[i] == '-' || text[i] == '(')
			negative = true;
	for (i = last + 1; i < len; i++)
	{
		if (text[i] == '-' || text[i] == ')')
			negative = true;
		if (i + 1 < len && (text[i] == 'D' || text[i] == 'd') &&
			(text[i + 1] == 'R' || text[i + 1] == 'r'))
			negative = true;
	}
	/* "- 12" and "12 EUR" are fine; "12abc" or letters between are not */
	for (i = first; i <= last; i++)
	{
		char		c = text[i];

		if (is_digit(c))
		{
			if (n_digits >= sizeof(digits) - 1)
				return false;
			digits[n_digits++] = c;
			continue;
		}
		if (c == '.' || c == ',' || c == '\'' || c == ' ')
		{
			if (n_seps >= sizeof(seps))
				return false;
			seps[n_seps] = c;
			sep_pos[n_seps++] = n_digits;
			continue;
		}
		/* U+00A0 and U+202F, spaces between thousands */
		if ((unsigned char) c == 0xC2 && i + 1 <= last && (unsigned char) text[i + 1] == 0xA0)
		{
			i++;
			continue;
		}
		if ((unsigned char) c == 0xE2 && i + 2 <= last &&
			(unsigned char) text[i + 1] == 0x80 && (unsigned char) text[i + 2] == 0xAF)
		{
			i += 2;
			continue;
		}
		return false;
	}

	/* which separator is the decimal one: the last, when it can be */
	if (n_seps > 0)
	{
		char		lastsep = seps[n_seps - 1];
		size_t		after = n_digits - sep_pos[n_seps - 1];
		bool		other_kind = false;
		size_t		same = 0;

		for (k = 0; k < n_seps; k++)
		{
			if (seps[k] != lastsep)
				other_kind = true;
			else
				same++;
		}
		if (decimal)
		{
			if (lastsep == decimal)
				decimal_at = (long) sep_pos[n_seps - 1];
		}
		/*
		 * "1.234,56": the other kind; "12,5": one, not three digits after;
		 * "0.001": no number starts with a group of thousands "0"
		 */
		else if ((lastsep == '.' || lastsep == ',') &&
				 (other_kind || (same == 1 && after != 3) ||
				  (same == 1 && sep_pos[0] == 1 && digits[0] == '0')))
			decimal_at = (long) sep_pos[n_seps - 1];
	}
	/* the others separate thousands: one kind, groups of three */
	{
		size_t		whole = decimal_at >= 0 ? (size_t) decimal_at : n_digits;
		size_t		n_thousands = decimal_at >= 0 ? n_seps - 1 : n_seps;

		for (k = 0; k < n_thousands; k++)
		{
			size_t		next = k + 1 < n_thousands ? sep_pos[k + 1] : whole;

			if (seps[k] != seps[0] || (decimal && seps[k] == decimal))
				return false;
			if ((k == 0 && (sep_pos[0] < 1 || sep_pos[0] > 3)) || next - sep_pos[k] != 3)
				return false;
		}
		if (decimal_at >= 0 && (n_digits == whole || n_digits - whole > 5))
			return false;
		if (whole > 15)
			return false;
	}

	{
		/* "-0.5": sign, whole digits (at least one), the decimals */
		size_t		whole = decimal_at >= 0 ? (size_t) decimal_at : n_digits;
		size_t		n = 0;

		if (out_size < n_digits + 4)
			return false;
		if (negative)
			out[n++] = '-';
		if (whole == 0)
			out[n++] = '0';
		memcpy(out + n, digits, whole);
		n += whole;
		if (decimal_at >= 0)
		{
			out[n++] = '.';
			memcpy(out + n, digits + whole, n_digits - whole);
			n += n_digits - whole;
		}
		out[n] = '\0';
		return true;
	}
}

static bool
leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool
valid_date(int year, int month, int day)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (year < 1900 || year > 2199 || month < 1 || month > 12 || day < 1)
		return false;
	return day <= days[month - 1] + (month == 2 && leap_year(year) ? 1 : 0);
}

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"
};

/* "december", "Dec", "dec." as 1 to 12, or 0 */
static int
month_of_name(const char *text, size_t len)
{
	char		lower[4];
	int			m;
	size_t		i;

	if (len < 3)
		return 0;
	for (i = 0; i < 3; i++)
		lower[i] = (char) (text[i] | 0x20);
	lower[3] = '\0';
	for (m = 0; m < 12; m++)
		if (memcmp(lower, month_names[m], 3) == 0)
			return m + 1;
	return 0;
}

/* numbers and words of a date, split on separators */
typedef struct DateParts
{
	int			count;
	int			number[3];
	int			digits[3];
	int			month_word;		/* the month written as a word, 0 */
	int			word_at;		/* its position among the parts */
} DateParts;

static bool
split_date(const char *text, size_t len, DateParts *parts)
{
	size_t		i = 0;

	memset(parts, 0, sizeof(*parts));
	parts->word_at = -1;
	while (i < len)
	{
		if (is_digit(text[i]))
		{
			int			value = 0,
						digits = 0;

			while (i < len && is_digit(text[i]))
			{
				if (digits++ >= 8)
					return false;
				value = value * 10 + (text[i++] - '0');
			}
			if (parts->count >= 3)
				return false;
			parts->digits[parts->count] = digits;
			parts->number[parts->count++] = value;
			/* 1st, 2nd, 3rd, 4th */
			if (i + 1 < len && ((text[i] | 0x20) == 's' || (text[i] | 0x20) == 'n' ||
								(text[i] | 0x20) == 'r' || (text[i] | 0x20) == 't') &&
				((text[i + 1] | 0x20) == 't' || (text[i + 1] | 0x20) == 'd' ||
				 (text[i + 1] | 0x20) == 'h'))
				i += 2;
		}
		else if ((text[i] | 0x20) >= 'a' && (text[i] | 0x20) <= 'z')
		{
			size_t		start = i;
			int			month;

			while (i < len && (text[i] | 0x20) >= 'a' && (text[i] | 0x20) <= 'z')
				i++;
			month = month_of_name(text + start, i - start);
			if (month == 0 || parts->month_word || parts->count >= 3)
				return false;
			parts->month_word = month;
			parts->word_at = parts->count;
			parts->digits[parts->count] = 0;
			parts->number[parts->count++] = month;
		}
		else if (text[i] == '.' || text[i] == '/' || text[i] == '-' || text[i] == ' ' ||
				 text[i] == ',')
			i++;
		else
			return false;
	}
	return parts->count == 3 || (parts->count == 1 && parts->digits[0] == 8);
}

bool
extract_parse_date(const char *text, size_t len, char order, char out[11])
{
	DateParts	p;
	int			year,
				month,
				day;

	while (len > 0 && (*text == ' ' || *text == '\t'))
		text++, len--;
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 40 || !split_date(text, len, &p))
		return false;

	if (p.count == 1)
	{
		/* 20261231 */
		year = p.number[0] / 10000;
		month = p.number[0] / 100 % 100;
		day = p.number[0] % 100;
	}
	else if (p.month_word)
	{
		int			other[2],
					n = 0,
					i;

		for (i = 0; i < 3; i++)
			if (i != p.word_at)
				other[n++] = i;
		month = p.month_word;
		/* "5 December 2026", "December 5, 2026" */
		if (p.digits[other[1]] == 4)
			day = p.number[other[0]], year = p.number[other[1]];
		else
			return false;
	}
	else if (p.digits[0] == 4)
	{
		year = p.number[0];
		month = p.number[1];
		day = p.number[2];
	}
	else if (p.digits[2] == 4 || p.digits[2] == 2)
	{
		year = p.digits[2] == 2 ? 2000 + p.number[2] : p.number[2];
		if (order == 'M' || (order == 0 && p.number[0] <= 12 && p.number[1] > 12))
			month = p.number[0], day = p.number[1];
		else
			day = p.number[0], month = p.number[1];
	}
	else
		return false;
	if (!valid_date(year, month, day))
		return false;
	/* as snprintf("%04d-%02d-%02d") writes it, without its cost per line */
	out[0] = '0' + year / 1000 % 10;
	out[1] = '0' + year / 100 % 10;
	out[2] = '0' + year / 10 % 10;
	out[3] = '0' + year % 10;
	out[4] = '-';
	out[5] = '0' + month / 10;
	out[6] = '0' + month % 10;
	out[7] = '-';
	out[8] = '0' + day / 10;
	out[9] = '0' + day % 10;
	out[10] = '\0';
	return true;
}
