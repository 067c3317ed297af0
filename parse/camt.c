/*
 * camt.c
 *		ISO 20022 bank-to-customer statements: CAMT.052 (reports), CAMT.053
 *		(end of day statements) and CAMT.054 (notifications), versions
 *		001.02 to 001.13, read with libxml2's SAX2 parser fed from the pipe
 *		in chunks, so that memory stays flat whatever the size (and twice as
 *		fast as its node-building reader).
 *
 * Each entry (Ntry) is a line, and each transaction of a batch booking
 * (Ntry/NtryDtls/TxDtls) a line of its own.  The file may have no DTD:
 * no entity is expanded and nothing is fetched from the network.
 */
#include "parse.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#define CAMT_MAX_DEPTH	64
#define CAMT_MAX_TEXT	4096
#define CAMT_NAME_CACHE	256		/* a power of two */

/* the elements read; every other is E_other */
typedef enum CamtElement
{
	E_other,
	E_AddtlNtryInf,
	E_Amt,
	E_AmtDtls,
	E_Bal,
	E_BookgDt,
	E_Cd,
	E_CdOrPrtry,
	E_CdtDbtInd,
	E_CdtrRefInf,
	E_Dbtr,
	E_DbtrAcct,
	E_Dt,
	E_DtTm,
	E_EndToEndId,
	E_IBAN,
	E_Id,
	E_Nm,
	E_Ntfctn,
	E_Ntry,
	E_Pty,
	E_Ref,
	E_Refs,
	E_RltdPties,
	E_RmtInf,
	E_Rpt,
	E_RvslInd,
	E_Stmt,
	E_Sts,
	E_Tp,
	E_TxAmt,
	E_TxDtls,
	E_Ustrd,
	E_ValDt,
	E_COUNT
} CamtElement;

static const char *const element_names[E_COUNT] = {
	"",
	"AddtlNtryInf", "Amt", "AmtDtls", "Bal", "BookgDt", "Cd", "CdOrPrtry",
	"CdtDbtInd", "CdtrRefInf", "Dbtr", "DbtrAcct", "Dt", "DtTm", "EndToEndId",
	"IBAN", "Id", "Nm", "Ntfctn", "Ntry", "Pty", "Ref", "Refs", "RltdPties",
	"RmtInf", "Rpt", "RvslInd", "Stmt", "Sts", "Tp", "TxAmt", "TxDtls",
	"Ustrd", "ValDt"
};


typedef struct CamtTx
{
	char		amount[48];		/* as written, "" when the entry's */
	char		currency[4];
	char		credit_debit[5];
	char		end_to_end[40];
	char		creditor_ref[40];
	ExtractBuf	unstructured;
	char		debtor[141];
	char		debtor_iban[40];
} CamtTx;

typedef struct Camt
{
	xmlParserCtxtPtr parser;
	StatementSink *sink;
	ExtractError *error;
	CamtElement path[CAMT_MAX_DEPTH];
	int			depth;
	/* the parser interns names: a name's pointer tells its element */
	const xmlChar *cache_names[CAMT_NAME_CACHE];
	CamtElement cache_elements[CAMT_NAME_CACHE];
	ExtractBuf	text;			/* of the element being read */
	char		format[24];

	/* the statement's balance being read */
	char		balance_type[8];
	char		balance_amount[48];
	char		balance_currency[4];
	char		balance_credit_debit[5];

	/* the entry being read */
	char		amount[48];
	char		currency[4];
	char		credit_debit[5];
	bool		reversal;
	char		status[8];
	char		booked[11];
	char		valued[11];
	ExtractBuf	additional;
	CamtTx	   *txs;
	int			n_txs;
	int			max_txs;
} Camt;

static CamtElement
element_of(Camt *camt, const xmlChar *name)
{
	size_t		slot = (size_t) (((uintptr_t) name * UINT64_C(0x9E3779B97F4A7C15)) >> 56) & (CAMT_NAME_CACHE - 1);
	int			e;

	if (camt->cache_names[slot] == name)
		return camt->cache_elements[slot];
	for (e = E_COUNT - 1; e > E_other; e--)
		if (strcmp((const char *) name, element_names[e]) == 0)
			break;
	camt->cache_names[slot] = name;
	camt->cache_elements[slot] = (CamtElement) e;
	return (CamtElement) e;
}

/* is the element k levels above the current one the element e? */
static bool
is(Camt *camt, int k, CamtElement e)
{
	int			at = camt->depth - 1 - k;

	return at >= 0 && camt->path[at] == e;
}

static bool
within(Camt *camt, CamtElement e)
{
	int			k;

	for (k = 0; k < camt->depth; k++)
		if (camt->path[k] == e)
			return true;
	return false;
}

static void
copy_text(char *to, size_t size, const char *text)
{
	snprintf(to, size, "%s", text);
	statement_squeeze(to);
}

/* Dt "2026-12-04" or DtTm "2026-12-04T10:00:00+01:00": the day */
static void
copy_date(char *to, const char *text)
{
	if (strlen(text) >= 10 && text[4] == '-' && text[7] == '-' &&
		isdigit((unsigned char) text[0]) && isdigit((unsigned char) text[9]))
	{
		memcpy(to, text, 10);
		to[10] = '\0';
	}
}

/* SAX2 attributes: (localname, prefix, URI, value, end) a piece */
typedef struct CamtAttributes
{
	const xmlChar **values;
	int			count;
} CamtAttributes;

static void
amount_start(const CamtAttributes *attributes, char *currency)
{
	int			a;

	currency[0] = '\0';
	for (a = 0; a < attributes->count; a++)
	{
		const xmlChar **at = attributes->values + 5 * a;

		if (strcmp((const char *) at[0], "Ccy") == 0 && at[4] - at[3] == 3)
		{
			int			i;

			for (i = 0; i < 3; i++)
				currency[i] = (char) toupper(at[3][i]);
			currency[3] = '\0';
		}
	}
}

static long
line_number(Camt *camt)
{
	return camt->parser ? xmlSAX2GetLineNumber(camt->parser) : 0;
}

static CamtTx *
current_tx(Camt *camt)
{
	return camt->n_txs > 0 ? &camt->txs[camt->n_txs - 1] : NULL;
}

static void
tx_start(Camt *camt)
{
	CamtTx	   *tx;

	if (camt->n_txs == camt->max_txs)
	{
		int			i;

		camt->max_txs = camt->max_txs ? camt->max_txs * 2 : 8;
		camt->txs = extract_realloc(camt->txs, sizeof(CamtTx) * camt->max_txs);
		for (i = camt->n_txs; i < camt->max_txs; i++)
			xbuf_init(&camt->txs[i].unstructured);
	}
	tx = &camt->txs[camt->n_txs++];
	{
		ExtractBuf	keep = tx->unstructured;

		memset(tx, 0, sizeof(*tx));
		tx->unstructured = keep;
		tx->unstructured.len = 0;
		tx->unstructured.data[0] = '\0';
	}
}

static void
entry_start(Camt *camt)
{
	camt->amount[0] = camt->currency[0] = camt->credit_debit[0] = '\0';
	camt->status[0] = camt->booked[0] = camt->valued[0] = '\0';
	camt->reversal = false;
	camt->additional.len = 0;
	camt->additional.data[0] = '\0';
	camt->n_txs = 0;
}

/* a start tag: the path grows, amounts note their currency */
static bool
element_start(Camt *camt, const xmlChar *name, const xmlChar *uri,
			  const CamtAttributes *attributes)
{
	if (camt->depth >= CAMT_MAX_DEPTH)
	{
		extract_fail(camt->error, line_number(camt), "elements nested deeper than %d", CAMT_MAX_DEPTH);
		return false;
	}
	camt->path[camt->depth++] = element_of(camt, name);
	camt->text.len = 0;
	camt->text.data[0] = '\0';
	if (camt->depth == 1)
	{
		const char *ns = (const char *) uri;
		const char *prefix = "urn:iso:std:iso:20022:tech:xsd:";
		int			version;

		if (strcmp((const char *) name, "Document") != 0 || ns == NULL ||
			strncmp(ns, prefix, strlen(prefix)) != 0 ||
			sscanf(ns + strlen(prefix), "camt.05%*1[234].001.%2d", &version) != 1 ||
			strlen(ns + strlen(prefix)) != 15 || version < 2 || version > 13)
		{
			extract_fail(camt->error, 1, "not a CAMT.052, .053 or .054 document of version 001.02 to 001.13 (namespace %.80s)",
						 ns ? ns : "none");
			return false;
		}
		snprintf(camt->format, sizeof(camt->format), "%s", ns + strlen(prefix));
		sink_format(camt->sink, camt->format);
	}
	else if (is(camt, 0, E_Stmt) || is(camt, 0, E_Ntfctn) || is(camt, 0, E_Rpt))
		sink_begin(camt->sink, NULL);
	else if (is(camt, 0, E_Bal))
		camt->balance_type[0] = camt->balance_amount[0] = camt->balance_credit_debit[0] = '\0';
	else if (is(camt, 0, E_Ntry))
		entry_start(camt);
	else if (is(camt, 0, E_TxDtls) && within(camt, E_Ntry))
		tx_start(camt);
	else if (is(camt, 0, E_Amt) && is(camt, 1, E_Bal))
		amount_start(attributes, camt->balance_currency);
	else if (is(camt, 0, E_Amt) && is(camt, 1, E_Ntry))
		amount_start(attributes, camt->currency);
	else if (is(camt, 0, E_Amt) && current_tx(camt) &&
			 (is(camt, 1, E_TxDtls) || (is(camt, 1, E_TxAmt) && is(camt, 2, E_AmtDtls) &&
										is(camt, 3, E_TxDtls))))
		amount_start(attributes, current_tx(camt)->currency);
	return true;
}

static void
balance_end(Camt *camt)
{
	char		amount[48];
	bool		debit = strcmp(camt->balance_credit_debit, "DBIT") == 0;
	char		kind = 0;

	if (strcmp(camt->balance_type, "OPBD") == 0 || strcmp(camt->balance_type, "PRCD") == 0)
		kind = 'O';
	else if (strcmp(camt->balance_type, "CLBD") == 0)
		kind = 'C';
	if (kind == 0)
		return;					/* interim and available balances */
	if (!statement_decimal(camt->balance_amount, strlen(camt->balance_amount), debit,
						   amount, sizeof(amount)))
	{
		extract_fail(camt->error, line_number(camt),
					 "the balance \"%.40s\" is not an amount", camt->balance_amount);
		return;
	}
	(void) sink_balance(camt->sink, kind, amount, camt->balance_currency, camt->error);
}

/* one line of the entry: the entry itself, or one of its transactions */
static void
entry_line(Camt *camt, const CamtTx *tx, bool own_amount)
{
	StatementEntry entry;
	ExtractBuf	reference;
	const char *credit_debit = tx && tx->credit_debit[0] ? tx->credit_debit : camt->credit_debit;
	const char *amount = own_amount ? tx->amount : camt->amount;
	char		hold[120];

	memset(&entry, 0, sizeof(entry));
	snprintf(entry.date, sizeof(entry.date), "%s", camt->booked[0] ? camt->booked : camt->valued);
	snprintf(entry.currency, sizeof(entry.currency), "%s",
			 own_amount && tx->currency[0] ? tx->currency : camt->currency);
	if (!statement_decimal(amount, strlen(amount), strcmp(credit_debit, "DBIT") == 0,
						   entry.amount, sizeof(entry.amount)))
		entry.problem = "the entry has no readable amount";

	/* the reference: structured, then the text; the end-to-end id if none */
	xbuf_init(&reference);
	if (tx && tx->creditor_ref[0])
	{
		xbuf_appends(&reference, tx->creditor_ref);
		if (strncasecmp(tx->creditor_ref, "RF", 2) == 0 && !statement_rf_valid(tx->creditor_ref))
		{
			snprintf(hold, sizeof(hold), "the creditor reference %.40s fails its ISO 11649 check",
					 tx->creditor_ref);
			entry.hold = hold;
		}
	}
	if (tx && tx->unstructured.len > 0)
	{
		if (reference.len)
			xbuf_appendc(&reference, ' ');
		xbuf_append(&reference, tx->unstructured.data, tx->unstructured.len);
	}
	if (reference.len == 0 && tx && tx->end_to_end[0] && strcmp(tx->end_to_end, "NOTPROVIDED") != 0)
		xbuf_appends(&reference, tx->end_to_end);
	if (reference.len == 0 && camt->additional.len > 0)
		xbuf_append(&reference, camt->additional.data, camt->additional.len);
	entry.reference = reference.data;
	entry.payer = tx ? tx->debtor : NULL;
	entry.iban = tx ? tx->debtor_iban : NULL;

	if (strcmp(camt->status, "PDNG") == 0)
		entry.problem = "pending: not booked yet, so not applied";
	else if (strcmp(camt->status, "INFO") == 0 || strcmp(camt->status, "FUTR") == 0)
		entry.problem = "not a booking (status information or future)";
	else if (camt->reversal)
		entry.problem = "a reversal of an earlier booking: check the payment it cancels";
	sink_entry(camt->sink, &entry);
	xbuf_free(&reference);
}

static void
entry_end(Camt *camt)
{
	int			i,
				with_amount = 0;

	for (i = 0; i < camt->n_txs; i++)
		with_amount += camt->txs[i].amount[0] != '\0';
	if (camt->n_txs == 0)
		entry_line(camt, NULL, false);
	else if (camt->n_txs == 1 || with_amount == camt->n_txs)
		for (i = 0; i < camt->n_txs; i++)
			entry_line(camt, &camt->txs[i], camt->txs[i].amount[0] != '\0');
	else
	{
		/* a batch whose transactions do not say their amounts: one line */
		CamtTx		first = camt->txs[0];

		first.creditor_ref[0] = '\0';
		entry_line(camt, &first, false);
	}
}

/* an end tag: what its text was, then the path shrinks */
static void
element_end(Camt *camt)
{
	const char *text = camt->text.data;
	CamtTx	   *tx = within(camt, E_TxDtls) ? current_tx(camt) : NULL;

	if (is(camt, 0, E_Id) && (is(camt, 1, E_Stmt) || is(camt, 1, E_Ntfctn) || is(camt, 1, E_Rpt)))
		copy_text(camt->sink->id, sizeof(camt->sink->id), text);
	else if (is(camt, 0, E_Cd) && is(camt, 1, E_CdOrPrtry) && is(camt, 2, E_Tp) && is(camt, 3, E_Bal))
		copy_text(camt->balance_type, sizeof(camt->balance_type), text);
	else if (is(camt, 0, E_Amt) && is(camt, 1, E_Bal))
		copy_text(camt->balance_amount, sizeof(camt->balance_amount), text);
	else if (is(camt, 0, E_CdtDbtInd) && is(camt, 1, E_Bal))
		copy_text(camt->balance_credit_debit, sizeof(camt->balance_credit_debit), text);
	else if (is(camt, 0, E_Bal))
		balance_end(camt);
	else if (is(camt, 0, E_Amt) && is(camt, 1, E_Ntry))
		copy_text(camt->amount, sizeof(camt->amount), text);
	else if (is(camt, 0, E_CdtDbtInd) && is(camt, 1, E_Ntry))
		copy_text(camt->credit_debit, sizeof(camt->credit_debit), text);
	else if (is(camt, 0, E_RvslInd) && is(camt, 1, E_Ntry))
		camt->reversal = strcmp(text, "true") == 0 || strcmp(text, "1") == 0;
	else if ((is(camt, 0, E_Sts) && is(camt, 1, E_Ntry)) ||
			 (is(camt, 0, E_Cd) && is(camt, 1, E_Sts) && is(camt, 2, E_Ntry)))
	{
		if (text[0])
			copy_text(camt->status, sizeof(camt->status), text);
	}
	else if ((is(camt, 0, E_Dt) || is(camt, 0, E_DtTm)) && is(camt, 1, E_BookgDt) && is(camt, 2, E_Ntry))
		copy_date(camt->booked, text);
	else if ((is(camt, 0, E_Dt) || is(camt, 0, E_DtTm)) && is(camt, 1, E_ValDt) && is(camt, 2, E_Ntry))
		copy_date(camt->valued, text);
	else if (is(camt, 0, E_AddtlNtryInf) && is(camt, 1, E_Ntry))
		xbuf_appends(&camt->additional, text);
	else if (is(camt, 0, E_Ntry))
		entry_end(camt);
	else if (is(camt, 0, E_Stmt) || is(camt, 0, E_Ntfctn) || is(camt, 0, E_Rpt))
		sink_end(camt->sink);
	else if (tx == NULL)
		;
	else if (is(camt, 0, E_Amt) && (is(camt, 1, E_TxDtls) || is(camt, 1, E_TxAmt)))
		copy_text(tx->amount, sizeof(tx->amount), text);
	else if (is(camt, 0, E_CdtDbtInd) && is(camt, 1, E_TxDtls))
		copy_text(tx->credit_debit, sizeof(tx->credit_debit), text);
	else if (is(camt, 0, E_EndToEndId) && is(camt, 1, E_Refs))
		copy_text(tx->end_to_end, sizeof(tx->end_to_end), text);
	else if (is(camt, 0, E_Ustrd) && is(camt, 1, E_RmtInf))
	{
		if (tx->unstructured.len)
			xbuf_appendc(&tx->unstructured, ' ');
		xbuf_appends(&tx->unstructured, text);
		statement_squeeze(tx->unstructured.data);
		tx->unstructured.len = strlen(tx->unstructured.data);
	}
	else if (is(camt, 0, E_Ref) && is(camt, 1, E_CdtrRefInf) && within(camt, E_RmtInf))
		copy_text(tx->creditor_ref, sizeof(tx->creditor_ref), text);
	else if (is(camt, 0, E_Nm) && within(camt, E_RltdPties) &&
			 (is(camt, 1, E_Dbtr) || (is(camt, 1, E_Pty) && is(camt, 2, E_Dbtr))))
		copy_text(tx->debtor, sizeof(tx->debtor), text);
	else if (is(camt, 0, E_IBAN) && within(camt, E_DbtrAcct))
		copy_text(tx->debtor_iban, sizeof(tx->debtor_iban), text);
	camt->depth--;
	camt->text.len = 0;
	camt->text.data[0] = '\0';
}

/* the SAX2 callbacks: each stops the parser once the file is refused */
static void
on_start(void *arg, const xmlChar *name, const xmlChar *prefix, const xmlChar *uri,
		 int n_namespaces, const xmlChar **namespaces, int n_attributes, int n_defaulted,
		 const xmlChar **attributes)
{
	Camt	   *camt = arg;
	CamtAttributes list = {attributes, n_attributes};

	if (!element_start(camt, name, uri, &list))
		xmlStopParser(camt->parser);
}

static void
on_end(void *arg, const xmlChar *name, const xmlChar *prefix, const xmlChar *uri)
{
	Camt	   *camt = arg;

	element_end(camt);
	if (camt->error->failed)
		xmlStopParser(camt->parser);
}

static void
on_text(void *arg, const xmlChar *text, int len)
{
	Camt	   *camt = arg;

	if (camt->text.len + (size_t) len <= CAMT_MAX_TEXT)
		xbuf_append(&camt->text, (const char *) text, (size_t) len);
}

static void
on_dtd(void *arg, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
	Camt	   *camt = arg;

	extract_fail(camt->error, line_number(camt),
				 "the file declares a DTD: a CAMT file has none, and none is read");
	xmlStopParser(camt->parser);
}

/* an entity not predefined (&amp; and its kin are): none is ever expanded */
static xmlEntityPtr
on_entity(void *arg, const xmlChar *name)
{
	Camt	   *camt = arg;

	extract_fail(camt->error, line_number(camt),
				 "the file uses an entity (&%.40s;): a CAMT file has none, and none is expanded", name);
	xmlStopParser(camt->parser);
	return NULL;
}

static void
on_error(void *arg, xmlErrorPtr problem)
{
	Camt	   *camt = arg;
	char		message[200];
	size_t		n;

	if (problem->level < XML_ERR_ERROR)
		return;
	snprintf(message, sizeof(message), "%s", problem->message ? problem->message : "unknown error");
	n = strlen(message);
	while (n > 0 && isspace((unsigned char) message[n - 1]))
		message[--n] = '\0';
	extract_fail(camt->error, problem->line, "not well-formed XML: %s", message);
}

/*
 * A DOCTYPE in the prolog (before the first element) is refused before the
 * parser sees it: no entity of it is ever declared, let alone expanded.  A
 * prolog longer than what was read ahead meets the parser's callback.
 */
static bool
declares_dtd(const char *head, size_t len)
{
	size_t		i;

	for (i = 0; i + 1 < len; i++)
	{
		if (head[i] != '<')
			continue;
		if (isalpha((unsigned char) head[i + 1]))
			return false;		/* the root element: the prolog is over */
		if (len - i >= 9 && memcmp(head + i, "<!DOCTYPE", 9) == 0)
			return true;
	}
	return false;
}

bool
camt_parse(ParseInput *in, StatementSink *sink, ExtractError *error)
{
	Camt		camt;
	xmlSAXHandler sax;
	char		chunk[65536];
	ssize_t		n;
	int			i;

	if (declares_dtd(in->head + in->head_pos, in->head_len - in->head_pos))
	{
		extract_fail(error, 1, "the file declares a DTD: a CAMT file has none, and none is read");
		return false;
	}
	memset(&camt, 0, sizeof(camt));
	camt.sink = sink;
	camt.error = error;
	xbuf_init(&camt.text);
	xbuf_init(&camt.additional);

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = on_start;
	sax.endElementNs = on_end;
	sax.characters = on_text;
	sax.cdataBlock = on_text;
	sax.internalSubset = on_dtd;
	sax.getEntity = on_entity;
	sax.serror = on_error;
	camt.parser = xmlCreatePushParserCtxt(&sax, &camt, NULL, 0, NULL);
	if (camt.parser == NULL)
	{
		extract_fail(error, 0, "cannot start the XML parser");
		return false;
	}
	/* no XML_PARSE_NOENT, DTDLOAD or DTDATTR: nothing is expanded or fetched */
	xmlCtxtUseOptions(camt.parser, XML_PARSE_NONET | XML_PARSE_NOCDATA);
	while (!error->failed && (n = input_read(in, chunk, sizeof(chunk))) > 0)
		if (xmlParseChunk(camt.parser, chunk, (int) n, 0) != XML_ERR_OK && !error->failed)
			extract_fail(error, line_number(&camt), "not well-formed XML");
	if (!error->failed && n < 0)
		extract_fail(error, 0, "cannot read the file");
	if (!error->failed && xmlParseChunk(camt.parser, NULL, 0, 1) != XML_ERR_OK && !error->failed)
		extract_fail(error, line_number(&camt), "not well-formed XML: the file ends too soon");
	if (!error->failed && camt.format[0] == '\0')
		extract_fail(error, 0, "the file has no CAMT document");
	xmlFreeParserCtxt(camt.parser);
	xbuf_free(&camt.text);
	xbuf_free(&camt.additional);
	for (i = 0; i < camt.max_txs; i++)
		xbuf_free(&camt.txs[i].unstructured);
	extract_free(camt.txs);
	return !error->failed;
}
