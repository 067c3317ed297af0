/*
 * delivery.h
 *		The delivery worker and its transports (SMTP and webhooks through
 *		libcurl): one message of the outbox, and what became of it.
 */
#ifndef RECOVERY_DELIVERY_H
#define RECOVERY_DELIVERY_H

#include "postgres.h"

/* A notification claimed from the outbox, rendered and addressed. */
typedef struct OutboxMessage
{
	int64		id;
	const char *channel;		/* email, sms, letter, webhook */
	const char *recipient;		/* address or phone; NULL for letters */
	const char *recipient_name;
	const char *subject;
	const char *body;
	const char *html_body;		/* NULL: plain text only */
	const char *message_id;		/* stable across resends: "<...@domain>" */
	const char *webhook_payload;	/* the JSON a webhook receives */
} OutboxMessage;

typedef struct DeliveryOutcome
{
	bool		sent;
	bool		permanent;		/* the provider refused it: do not retry */
	char	   *response;		/* the provider's answer, for its message id */
	char	   *error;
} DeliveryOutcome;

/* delivery_transport.c */
extern void recovery_transport_init(void);
extern void recovery_send_email(const OutboxMessage *message,
								const char *smtp_url, const char *sender,
								DeliveryOutcome *outcome);
extern void recovery_send_webhook(const OutboxMessage *message,
								  const char *url, const char *secret,
								  DeliveryOutcome *outcome);

/* delivery.c: timeouts shared with the transports, in milliseconds */
extern int	delivery_connect_timeout;
extern int	delivery_timeout;

#endif							/* RECOVERY_DELIVERY_H */
