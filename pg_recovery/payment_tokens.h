/*
 * payment_tokens.h
 *		What matching looks up, read from each line where it is parsed:
 *		the tokens of its reference and payer, and their hashes.
 */
#ifndef RECOVERY_PAYMENT_TOKENS_H
#define RECOVERY_PAYMENT_TOKENS_H

#include "payment_line.h"

/* the line's tokens, from its reference and payer; false when out of memory */
extern bool payment_line_tokens(PaymentLine *line, PaymentArena *arena);
extern uint32_t payment_token_hash(const char *token);

#endif							/* RECOVERY_PAYMENT_TOKENS_H */
