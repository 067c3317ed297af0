/*
 * reconcile.h
 *		Payments found, matched to cases and applied (reconcile.c), a batch
 *		of lines at a time.
 */
#ifndef RECOVERY_RECONCILE_H
#define RECOVERY_RECONCILE_H

#include "payment_line.h"

typedef struct ReconcileState ReconcileState;

extern ReconcileState *reconcile_begin(void);
extern void reconcile_match(ReconcileState *state, PaymentLine *lines, int n_lines, int64 case_id);
extern void reconcile_apply(ReconcileState *state, PaymentLine *lines, int n_lines,
							int64 extraction_id, double threshold);
extern void reconcile_end(ReconcileState *state);

#endif							/* RECOVERY_RECONCILE_H */
