/*
 * delivery_transport.c
 *		Sending one message: email over SMTP, and SMS, letters and other
 *		messages as signed HTTP webhooks, both through libcurl with a
 *		connection timeout and a total timeout.
 *
 * Every message carries the notification's stable id (the email's
 * Message-ID, the webhook's Idempotency-Key), so that a provider can
 * recognise a resend after a crash between sending and recording.
 */
#include "delivery.h"

#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "lib/stringinfo.h"
#include "postmaster/interrupt.h"

#define RESPONSE_LIMIT 4096

/* The bytes libcurl uploads, read from a buffer. */
typedef struct Upload
{
	const char *data;
	size_t		length;
	size_t		offset;
} Upload;

void
recovery_transport_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(FATAL, "could not initialise libcurl");
}

static size_t
read_upload(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Upload	   *upload = userdata;
	size_t		n = Min(size * nitems, upload->length - upload->offset);

	memcpy(buffer, upload->data + upload->offset, n);
	upload->offset += n;
	return n;
}

/* Keeps the start of the provider's answer. */
static size_t
write_response(char *data, size_t size, size_t nmemb, void *userdata)
{
	StringInfo	response = userdata;
	size_t		n = size * nmemb;

	if (response->len < RESPONSE_LIMIT)
		appendBinaryStringInfo(response, data,
							   Min(n, (size_t) (RESPONSE_LIMIT - response->len)));
	return n;
}

/* A shutdown request aborts a transfer instead of waiting out its timeout. */
static int
abort_on_shutdown(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
				  curl_off_t ultotal, curl_off_t ulnow)
{
	return ShutdownRequestPending ? 1 : 0;
}

static CURL *
new_transfer(const char *url, char *error_buffer)
{
	CURL	   *curl = curl_easy_init();

	if (curl == NULL)
		return NULL;
	error_buffer[0] = '\0';
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) delivery_connect_timeout);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) delivery_timeout);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_on_shutdown);
	return curl;
}

static char *
transfer_error(CURLcode code, const char *error_buffer)
{
	return psprintf("%s", error_buffer[0] ? error_buffer : curl_easy_strerror(code));
}

static char *
base64(const char *data, size_t length)
{
	char	   *out = palloc(pg_b64_enc_len(length) + 1);
	int			n = pg_b64_encode(data, length, out, pg_b64_enc_len(length));

	out[Max(n, 0)] = '\0';
	return out;
}

static bool
is_ascii(const char *text)
{
	const unsigned char *p;

	for (p = (const unsigned char *) text; *p; p++)
		if (*p >= 0x80 || *p < 0x20)
			return false;
	return true;
}

/*
 * A header value as RFC 2047 encoded words when it is not plain ASCII,
 * each word short enough for a line and cut between UTF-8 characters.
 */
static void
append_header_text(StringInfo out, const char *text)
{
	size_t		length = strlen(text);
	size_t		start = 0;

	if (is_ascii(text))
	{
		appendStringInfoString(out, text);
		return;
	}
	while (start < length)
	{
		size_t		end = Min(start + 45, length);

		while (end < length && ((unsigned char) text[end] & 0xC0) == 0x80)
			end--;
		if (start > 0)
			appendStringInfoString(out, "\r\n ");
		appendStringInfo(out, "=?UTF-8?B?%s?=", base64(text + start, end - start));
		start = end;
	}
}

/* A body part in base64, 76 characters a line: safe for any text. */
static void
append_base64_body(StringInfo out, const char *text)
{
	char	   *encoded = base64(text, strlen(text));
	size_t		length = strlen(encoded);
	size_t		i;

	for (i = 0; i < length; i += 76)
		appendStringInfo(out, "%.*s\r\n", (int) Min(76, length - i), encoded + i);
}

static void
append_rfc5322_date(StringInfo out)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t		now = time(NULL);
	struct tm	utc;

	gmtime_r(&now, &utc);
	appendStringInfo(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
					 days[utc.tm_wday], utc.tm_mday, months[utc.tm_mon],
					 utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

static char *
email_message(const OutboxMessage *message, const char *sender)
{
	StringInfoData mail;

	initStringInfo(&mail);
	appendStringInfo(&mail, "Message-ID: %s\r\n", message->message_id);
	append_rfc5322_date(&mail);
	appendStringInfo(&mail, "From: %s\r\n", sender);
	appendStringInfoString(&mail, "To: ");
	if (message->recipient_name && message->recipient_name[0])
	{
		if (is_ascii(message->recipient_name) &&
			strpbrk(message->recipient_name, "\"\\") == NULL)
			appendStringInfo(&mail, "\"%s\"", message->recipient_name);
		else
			append_header_text(&mail, message->recipient_name);
		appendStringInfoChar(&mail, ' ');
	}
	appendStringInfo(&mail, "<%s>\r\n", message->recipient);
	appendStringInfoString(&mail, "Subject: ");
	append_header_text(&mail, message->subject ? message->subject : "");
	appendStringInfoString(&mail, "\r\nMIME-Version: 1.0\r\n"
						   "Auto-Submitted: auto-generated\r\n");
	appendStringInfo(&mail, "X-Recovery-Notification: " INT64_FORMAT "\r\n", message->id);
	if (message->html_body == NULL)
	{
		appendStringInfoString(&mail, "Content-Type: text/plain; charset=UTF-8\r\n"
							   "Content-Transfer-Encoding: base64\r\n\r\n");
		append_base64_body(&mail, message->body);
		return mail.data;
	}
	appendStringInfo(&mail,
					 "Content-Type: multipart/alternative; boundary=\"=_recovery_" INT64_FORMAT "\"\r\n\r\n"
					 "--=_recovery_" INT64_FORMAT "\r\n"
					 "Content-Type: text/plain; charset=UTF-8\r\n"
					 "Content-Transfer-Encoding: base64\r\n\r\n",
					 message->id, message->id);
	append_base64_body(&mail, message->body);
	appendStringInfo(&mail,
					 "--=_recovery_" INT64_FORMAT "\r\n"
					 "Content-Type: text/html; charset=UTF-8\r\n"
					 "Content-Transfer-Encoding: base64\r\n\r\n",
					 message->id);
	append_base64_body(&mail, message->html_body);
	appendStringInfo(&mail, "--=_recovery_" INT64_FORMAT "--\r\n", message->id);
	return mail.data;
}

/* the address inside "Name <address>", or the whole value */
static char *
bare_address(const char *sender)
{
	const char *open = strchr(sender, '<');
	const char *close = open ? strchr(open, '>') : NULL;

	if (open && close)
		return pnstrdup(open + 1, close - open - 1);
	return pstrdup(sender);
}

void
recovery_send_email(const OutboxMessage *message, const char *smtp_url,
					const char *sender, DeliveryOutcome *outcome)
{
	char		error_buffer[CURL_ERROR_SIZE];
	char	   *mail = email_message(message, sender);
	Upload		upload = {mail, strlen(mail), 0};
	struct curl_slist *recipients = NULL;
	CURL	   *curl = new_transfer(smtp_url, error_buffer);
	CURLcode	code;
	long		reply = 0;

	memset(outcome, 0, sizeof(*outcome));
	if (curl == NULL)
	{
		outcome->error = "could not start a transfer";
		return;
	}
	recipients = curl_slist_append(recipients, message->recipient);
	curl_easy_setopt(curl, CURLOPT_MAIL_FROM, bare_address(sender));
	curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, recipients);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
	curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
	curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(curl, CURLOPT_INFILESIZE, (long) upload.length);

	code = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
	if (code == CURLE_OK)
	{
		outcome->sent = true;
		outcome->response = pstrdup(message->message_id);
	}
	else
	{
		/* 5xx is the server's final no (no such mailbox); 4xx is "later" */
		outcome->permanent = reply >= 500 && reply < 600;
		outcome->error = reply
			? psprintf("SMTP %ld: %s", reply, transfer_error(code, error_buffer))
			: transfer_error(code, error_buffer);
	}
	curl_slist_free_all(recipients);
	curl_easy_cleanup(curl);
}

/* hex HMAC-SHA256 of "timestamp.body" under the shared secret */
static char *
webhook_signature(const char *secret, const char *timestamp, const char *body)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_length = 0;
	char	   *signed_text = psprintf("%s.%s", timestamp, body);
	char	   *hex;
	unsigned int i;

	HMAC(EVP_sha256(), secret, strlen(secret), (unsigned char *) signed_text,
		 strlen(signed_text), mac, &mac_length);
	hex = palloc(mac_length * 2 + 1);
	for (i = 0; i < mac_length; i++)
		sprintf(hex + i * 2, "%02x", mac[i]);
	return hex;
}

void
recovery_send_webhook(const OutboxMessage *message, const char *url,
					  const char *secret, DeliveryOutcome *outcome)
{
	char		error_buffer[CURL_ERROR_SIZE];
	char	   *timestamp = psprintf("%lld", (long long) time(NULL));
	struct curl_slist *headers = NULL;
	StringInfoData response;
	CURL	   *curl = new_transfer(url, error_buffer);
	CURLcode	code;
	long		status = 0;

	memset(outcome, 0, sizeof(*outcome));
	if (curl == NULL)
	{
		outcome->error = "could not start a transfer";
		return;
	}
	initStringInfo(&response);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "User-Agent: pg_recovery-delivery/0.3");
	headers = curl_slist_append(headers, psprintf("Idempotency-Key: %s", message->message_id));
	headers = curl_slist_append(headers, psprintf("X-Recovery-Timestamp: %s", timestamp));
	if (secret && secret[0])
		headers = curl_slist_append(headers,
									psprintf("X-Recovery-Signature: sha256=%s",
											 webhook_signature(secret, timestamp,
															   message->webhook_payload)));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, message->webhook_payload);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) strlen(message->webhook_payload));
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_response);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);

	code = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK)
		outcome->error = transfer_error(code, error_buffer);
	else if (status >= 200 && status < 300)
	{
		outcome->sent = true;
		outcome->response = response.data;
	}
	else
	{
		/* a 4xx other than timeout or too-many-requests will not improve */
		outcome->permanent = status >= 400 && status < 500 &&
			status != 408 && status != 425 && status != 429;
		outcome->error = psprintf("HTTP %ld: %.200s", status, response.data);
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
}
