/*
 * extract_text.c
 *		Free text and SMS: amounts with their currency ("EUR 1.234,56",
 *		"$1,234.56", "1234 GBP", "£12"), the case and invoice references the
 *		system issues (RC-000042, INV-2026-000123), dates, and what the
 *		sender means (paid, will pay, dispute), each with its span.
 */
#include "extract.h"

#include <stdio.h>
#include <string.h>

typedef struct Currency
{
	const char *text;			/* as written, matched case-insensitively */
	const char *code;
} Currency;

static const Currency currencies[] = {
	{"\xE2\x82\xAC", "EUR"}, {"\xC2\xA3", "GBP"}, {"US$", "USD"}, {"$", "USD"},
	{"\xC2\xA5", "JPY"}, {"CHF", "CHF"}, {"EUR", "EUR"}, {"GBP", "GBP"},
	{"USD", "USD"}, {"SEK", "SEK"}, {"NOK", "NOK"}, {"DKK", "DKK"}, {"PLN", "PLN"},
	{"CZK", "CZK"}, {"JPY", "JPY"}, {"CAD", "CAD"}, {"AUD", "AUD"}, {"euro", "EUR"},
	{"euros", "EUR"}, {"pounds", "GBP"}, {"dollars", "USD"},
};

typedef struct Intent
{
	const char *words;
	const char *intent;
} Intent;

/* lower case, matched at word boundaries; longer phrases first */
static const Intent intents[] = {
	{"will pay", "promise"}, {"going to pay", "promise"}, {"can pay", "promise"},
	{"pay on", "promise"}, {"pay by", "promise"}, {"pay next", "promise"},
	{"promise to pay", "promise"},
	{"have paid", "paid"}, {"has been paid", "paid"}, {"already paid", "paid"},
	{"paid", "paid"}, {"transferred", "paid"}, {"sent the money", "paid"},
	{"payment made", "paid"}, {"bezahlt", "paid"}, {"überwiesen", "paid"},
	{"not mine", "dispute"}, {"don't owe", "dispute"}, {"do not owe", "dispute"},
	{"dispute", "dispute"}, {"wrong amount", "dispute"}, {"never ordered", "dispute"},
	{"fraud", "dispute"},
};

static bool
is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
starts_with_nocase(const char *text, size_t len, const char *word)
{
	size_t		n = strlen(word),
				i;

	if (n > len)
		return false;
	for (i = 0; i < n; i++)
	{
		unsigned char a = (unsigned char) text[i],
					b = (unsigned char) word[i];

		if (a < 0x80 && b < 0x80 && (a | 0x20) >= 'a' && (a | 0x20) <= 'z')
		{
			if ((a | 0x20) != (b | 0x20))
				return false;
		}
		else if (a != b)
			return false;
	}
	return true;
}

static bool
word_boundary(const char *text, size_t len, size_t at)
{
	return at == 0 || at >= len || !is_alnum((unsigned char) text[at - 1]);
}

static bool
emit(TextItemCallback callback, void *arg, const char *kind, const char *value,
	 const char *currency, size_t start, size_t end, double confidence)
{
	TextItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = kind;
	snprintf(item.value, sizeof(item.value), "%s", value);
	if (currency)
		snprintf(item.currency, sizeof(item.currency), "%s", currency);
	item.start = start;
	item.end = end;
	item.confidence = confidence;
	return callback(arg, &item);
}

/* the currency written at text[at], and its length */
static const Currency *
currency_at(const char *text, size_t len, size_t at, size_t *n)
{
	size_t		c;
	const Currency *best = NULL;

	for (c = 0; c < sizeof(currencies) / sizeof(currencies[0]); c++)
	{
		size_t		l = strlen(currencies[c].text);

		if (starts_with_nocase(text + at, len - at, currencies[c].text) &&
			(best == NULL || l > *n))
		{
			/* codes and words are whole words */
			if (((unsigned char) currencies[c].text[0] | 0x20) >= 'a' &&
				((unsigned char) currencies[c].text[0] | 0x20) <= 'z' &&
				(!word_boundary(text, len, at) ||
				 (at + l < len && is_alnum((unsigned char) text[at + l]))))
				continue;
			best = &currencies[c];
			*n = l;
		}
	}
	return best;
}

/* the number at text[at]: digits with . , ' and single spaces before 3 digits */
static size_t
number_length(const char *text, size_t len, size_t at)
{
	size_t		i = at;

	if (at >= len || !is_digit((unsigned char) text[at]))
		return 0;
	while (i < len)
	{
		if (is_digit((unsigned char) text[i]))
			i++;
		else if ((text[i] == '.' || text[i] == ',' || text[i] == '\'') &&
				 i + 1 < len && is_digit((unsigned char) text[i + 1]))
			i++;
		else if (text[i] == ' ' && i + 3 < len && is_digit((unsigned char) text[i + 1]) &&
				 is_digit((unsigned char) text[i + 2]) && is_digit((unsigned char) text[i + 3]) &&
				 (i + 4 >= len || !is_digit((unsigned char) text[i + 4])))
			i++;
		else
			break;
	}
	return i - at;
}

static bool
scan_amount(const char *text, size_t len, size_t *at, TextItemCallback callback,
			void *arg, bool *keep_going)
{
	size_t		i = *at,
				n = 0,
				start = i,
				num_at,
				num_len;
	const Currency *currency = currency_at(text, len, i, &n);
	char		amount[40];
	bool		negative = i > 0 && text[i - 1] == '-';

	if (currency)
	{
		/* EUR 1.234,56 / €12 */
		num_at = i + n;
		while (num_at < len && (text[num_at] == ' ' || text[num_at] == '-'))
		{
			if (text[num_at] == '-')
				negative = true;
			num_at++;
		}
		num_len = number_length(text, len, num_at);
		if (num_len == 0)
			return false;
		*at = num_at + num_len;
	}
	else
	{
		/* 1234 GBP / 12,50 € */
		size_t		cur_at;

		num_at = i;
		num_len = number_length(text, len, i);
		if (num_len == 0 || !word_boundary(text, len, i))
			return false;
		cur_at = num_at + num_len;
		while (cur_at < len && text[cur_at] == ' ')
			cur_at++;
		currency = currency_at(text, len, cur_at, &n);
		if (currency == NULL)
			return false;
		*at = cur_at + n;
	}
	if (!extract_parse_amount(text + num_at, num_len, 0, amount + 1, sizeof(amount) - 1))
		return false;
	amount[0] = '-';
	*keep_going = emit(callback, arg, "amount", negative ? amount : amount + 1,
					   currency->code, start, *at, 0.9);
	return true;
}

/* RC-000042, rc 42: a case reference; INV-2026-000123: an invoice */
static bool
scan_reference(const char *text, size_t len, size_t *at, TextItemCallback callback,
			   void *arg, bool *keep_going)
{
	size_t		i = *at,
				j;
	char		value[64];

	if (!word_boundary(text, len, i))
		return false;
	if (starts_with_nocase(text + i, len - i, "RC"))
	{
		unsigned long long number = 0;
		size_t		digits = 0;

		j = i + 2;
		if (j < len && (text[j] == '-' || text[j] == ' '))
			j++;
		while (j < len && is_digit((unsigned char) text[j]) && digits < 12)
			number = number * 10 + (text[j++] - '0'), digits++;
		if (digits == 0 || (j < len && is_alnum((unsigned char) text[j])))
			return false;
		snprintf(value, sizeof(value), "RC-%06llu", number);
		*at = j;
		*keep_going = emit(callback, arg, "case_reference", value, NULL, i, j, 0.95);
		return true;
	}
	if (starts_with_nocase(text + i, len - i, "INV"))
	{
		size_t		n = 0;

		j = i + 3;
		if (j < len && (text[j] == '-' || text[j] == ' '))
			j++;
		if (j >= len || !is_digit((unsigned char) text[j]))
			return false;
		memcpy(value, "INV-", 4);
		n = 4;
		while (j < len && n < sizeof(value) - 1 &&
			   (is_alnum((unsigned char) text[j]) || (text[j] == '-' && j + 1 < len &&
													  is_alnum((unsigned char) text[j + 1]))) &&
			   (unsigned char) text[j] < 0x80)
		{
			char		c = text[j++];

			value[n++] = (c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c;
		}
		value[n] = '\0';
		*at = j;
		*keep_going = emit(callback, arg, "invoice_reference", value, NULL, i, j, 0.9);
		return true;
	}
	return false;
}

static bool
scan_date(const char *text, size_t len, size_t *at, TextItemCallback callback,
		  void *arg, bool *keep_going)
{
	size_t		i = *at;
	size_t		try;
	char		date[11];

	static const char *const months = "janfebmaraprmayjunjulaugsepoctnovdec";

	if (!word_boundary(text, len, i) || !is_alnum((unsigned char) text[i]))
		return false;
	/* a date starts with a digit or a month's name */
	if (!is_digit((unsigned char) text[i]))
	{
		char		word[4];
		int			k;

		if (i + 3 > len)
			return false;
		for (k = 0; k < 3; k++)
			word[k] = (char) (text[i + k] | 0x20);
		word[3] = '\0';
		for (k = 0; k < 12; k++)
			if (memcmp(months + 3 * k, word, 3) == 0)
				break;
		if (k == 12)
			return false;
	}
	/* the longest run from here that reads as a date, up to 20 bytes */
	for (try = (len - i < 20 ? len - i : 20); try >= 6; try--)
	{
		if (i + try < len && is_alnum((unsigned char) text[i + try]) &&
			is_alnum((unsigned char) text[i + try - 1]))
			continue;
		if (extract_parse_date(text + i, try, 0, date))
		{
			while (text[i + try - 1] == ' ' || text[i + try - 1] == ',' || text[i + try - 1] == '.')
				try--;
			*at = i + try;
			*keep_going = emit(callback, arg, "date", date, NULL, i, i + try, 0.8);
			return true;
		}
	}
	return false;
}

static bool
scan_intent(const char *text, size_t len, size_t *at, TextItemCallback callback,
			void *arg, bool *keep_going)
{
	size_t		i = *at,
				k;

	if (!word_boundary(text, len, i))
		return false;
	for (k = 0; k < sizeof(intents) / sizeof(intents[0]); k++)
	{
		size_t		n = strlen(intents[k].words);

		if (starts_with_nocase(text + i, len - i, intents[k].words) &&
			(i + n >= len || !is_alnum((unsigned char) text[i + n])))
		{
			*at = i + n;
			*keep_going = emit(callback, arg, "intent", intents[k].intent, NULL, i, i + n, 0.7);
			return true;
		}
	}
	return false;
}

bool
text_parse(const char *text, size_t len, TextItemCallback callback, void *arg,
		   ExtractError *error)
{
	size_t		i = 0;
	bool		keep_going = true;

	if (len > EXTRACT_MAX_TEXT)
	{
		extract_fail(error, 0, "the text is longer than %d bytes", EXTRACT_MAX_TEXT);
		return false;
	}
	if (memchr(text, '\0', len) != NULL)
	{
		extract_fail(error, 0, "the text has a NUL byte");
		return false;
	}
	if (!extract_valid_utf8(text, len))
	{
		extract_fail(error, 0, "the text is not valid UTF-8");
		return false;
	}
	while (i < len && keep_going)
	{
		size_t		at = i;

		if (scan_reference(text, len, &at, callback, arg, &keep_going) ||
			scan_date(text, len, &at, callback, arg, &keep_going) ||
			scan_amount(text, len, &at, callback, arg, &keep_going) ||
			scan_intent(text, len, &at, callback, arg, &keep_going))
			i = at;
		else
			i++;
	}
	return true;
}
