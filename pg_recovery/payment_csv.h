/*
 * payment_csv.h
 *		From a CSV record of a statement to a payment line: its currency,
 *		its exact amount, its date and its fingerprint.
 */
#ifndef RECOVERY_PAYMENT_CSV_H
#define RECOVERY_PAYMENT_CSV_H

#include "extract.h"
#include "payment_line.h"

/* Reading: currencies, and how often each record was seen in the file. */
typedef struct PaymentReader PaymentReader;

/* NULL when out of memory */
extern PaymentReader *payment_reader_new(const PaymentCurrency *currencies, int n_currencies,
										 const char *default_currency, size_t expected_lines);
extern void payment_reader_free(PaymentReader *reader);

/* A CSV record as a payment line, its fingerprint included; false when out of memory. */
extern bool payment_reader_convert(PaymentReader *reader, const CsvLine *csv,
								   PaymentLine *line, PaymentArena *arena);

#endif							/* RECOVERY_PAYMENT_CSV_H */
