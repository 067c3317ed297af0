/*
 * payment_tokens.c
 *		What matching looks up, read from each line where it is parsed (on
 *		the statement reader's thread: plain C): the case reference the
 *		system issues (RC-000042 → "42"), an invoice (INV-…) and a customer's
 *		number (CUST-…) in upper case, and the payer's name in lower case,
 *		each with its hash.  The rules themselves are in reconcile.c.
 */
#include "payment_tokens.h"

#include <string.h>

#define TOKEN_MAX 96

static inline bool
word_char(unsigned char c)
{
	return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* FNV-1a: tokens are short, and the tables they are looked up in small */
uint32_t
payment_token_hash(const char *token)
{
	uint32_t	hash = 2166136261u;

	for (; *token; token++)
		hash = (hash ^ (unsigned char) *token) * 16777619u;
	return hash;
}

/* "RC-000042", "rc 42", "RC42" as a word: "42" */
static bool
case_token(const char *s, char *out)
{
	size_t		i;

	for (i = 0; s && s[i]; i++)
	{
		size_t		j = i + 2,
					digits,
					zeros = 0;

		if ((s[i] | 0x20) != 'r' || (s[i + 1] | 0x20) != 'c' || (i > 0 && word_char(s[i - 1])))
			continue;
		if (s[j] == '-' || s[j] == ' ')
			j++;
		for (digits = 0; s[j + digits] >= '0' && s[j + digits] <= '9'; digits++)
			;
		if (digits == 0 || word_char(s[j + digits]))
			continue;
		while (zeros + 1 < digits && s[j + zeros] == '0')
			zeros++;
		if (digits - zeros > 12)
			continue;
		memcpy(out, s + j + zeros, digits - zeros);
		out[digits - zeros] = '\0';
		return true;
	}
	return false;
}

/* the first word starting with prefix (case-insensitive), upper case */
static bool
prefixed_token(const char *s, const char *prefix, bool digits_only, char *out)
{
	size_t		plen = strlen(prefix),
				i,
				k;

	for (i = 0; s && s[i]; i++)
	{
		size_t		n = 0;

		if (i > 0 && word_char(s[i - 1]))
			continue;
		for (k = 0; k < plen && s[i + k] && (s[i + k] | 0x20) == (prefix[k] | 0x20); k++)
			;
		if (k < plen)
			continue;
		while (n + plen < TOKEN_MAX - 1)
		{
			char		c = s[i + plen + n];

			if (!((c >= '0' && c <= '9') ||
				  (!digits_only && (c == '-' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')))))
				break;
			n++;
		}
		if (n == 0 || (digits_only && word_char(s[i + plen + n])))
			continue;
		for (k = 0; k < plen + n; k++)
			out[k] = (s[i + k] >= 'a' && s[i + k] <= 'z') ? s[i + k] - ('a' - 'A') : s[i + k];
		out[k] = '\0';
		return true;
	}
	return false;
}

/*
 * lower(btrim(payer)) when the name is ASCII; a name with other letters is
 * left to the backend, which lowers it as SQL does (*later).
 */
static bool
payer_token(const char *s, char *out, bool *later)
{
	size_t		len,
				i;

	*later = false;
	if (s == NULL)
		return false;
	while (*s == ' ')
		s++;
	len = strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (len == 0 || len >= TOKEN_MAX)
		return false;
	for (i = 0; i < len; i++)
	{
		if ((unsigned char) s[i] >= 0x80)
		{
			*later = true;
			return false;
		}
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? s[i] + ('a' - 'A') : s[i];
	}
	out[len] = '\0';
	return true;
}

static bool
keep(PaymentLine *line, MatchToken kind, const char *token, PaymentArena *arena)
{
	if ((line->tokens[kind] = payment_arena_strdup(arena, token)) == NULL)
		return false;
	line->token_hashes[kind] = payment_token_hash(token);
	return true;
}

bool
payment_line_tokens(PaymentLine *line, PaymentArena *arena)
{
	char		token[TOKEN_MAX];

	memset(line->tokens, 0, sizeof(line->tokens));
	if (case_token(line->reference, token) && !keep(line, TOKEN_CASE, token, arena))
		return false;
	if (prefixed_token(line->reference, "INV-", false, token) &&
		!keep(line, TOKEN_INVOICE, token, arena))
		return false;
	if (prefixed_token(line->reference, "CUST-", true, token) &&
		!keep(line, TOKEN_CUSTOMER, token, arena))
		return false;
	if (payer_token(line->payer, token, &line->payer_unlowered) &&
		!keep(line, TOKEN_PAYER, token, arena))
		return false;
	return true;
}
