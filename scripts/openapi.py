#!/usr/bin/env python3
# Writes conf/openapi.json, the OpenAPI document of the routes in
# conf/nginx.conf.in:  python3 scripts/openapi.py > conf/openapi.json
# (t/http/openapi.t checks that the two agree).
import json
E = {"$ref": "#/components/responses/Error"}
def errs(*codes):
    return {str(c): E for c in codes}
def qp(name, typ, desc, **kw):
    sch = {"type": typ}; sch.update(kw)
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": sch}
def pp(name, desc):
    return {"name": name, "in": "path", "required": True, "description": desc,
            "schema": {"type": "integer", "format": "int64", "minimum": 1}}
def body(props, required, desc=None):
    s = {"type": "object", "additionalProperties": False, "properties": props}
    if required: s["required"] = required
    b = {"required": True, "content": {"application/json": {"schema": s}}}
    if desc: b["description"] = desc
    return b
def ok(status="200", desc="OK"):
    """a success; its schema is the operation's answer (openapi_answers.py)"""
    return {status: {"description": desc, "content": {"application/json": {"schema": None}}}}
I64 = {"type": "integer", "format": "int64"}
MONEY = {"type": "integer", "format": "int64", "description": "minor units of the currency"}
CUR = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}
VER = {"type": "integer", "description": "the version you read; a stale one is 409"}
IDEM = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "a retry with the same key and body gets the first response; another body is 422",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
LSN = {"name": "Recovery-Commit-LSN", "in": "header", "required": False,
       "description": "the Recovery-Commit-LSN of your last write: the read then sees it, whichever server answers "
                      "(a browser sends the recovery_lsn cookie instead, by itself)",
       "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"}}
cursor = qp("cursor", "string", "next_cursor of the previous page")
limit = qp("limit", "integer", "page size, 50 by default", minimum=1, maximum=200)

# request objects that were free-form: what each holds
PREFERENCES = {"type": "object", "additionalProperties": False,
               "description": "whether the customer may be contacted on each channel; channels left out keep their consent",
               "properties": {c: {"type": "boolean"} for c in ("email", "sms", "letter", "webhook")}}
DATE = {"type": "string", "format": "date"}
DETAILS = {"type": "object", "additionalProperties": True,
           "description": "what the event needs (GET /recovery-cases/{id} lists each event's required_details): "
                          "amount and due_date for promise, instalments for plan, reason for dispute, escalate, "
                          "write_off and cancel; other fields are kept with the event",
           "properties": {"amount": MONEY, "due_date": DATE, "reason": {"type": "string", "maxLength": 2000},
                          "instalments": {"type": "array", "minItems": 1,
                                          "items": {"type": "object", "additionalProperties": False,
                                                    "required": ["amount", "due_date"],
                                                    "properties": {"amount": MONEY, "due_date": DATE}}}}}
MAPPING = {"type": "object", "additionalProperties": False,
           "description": "how a bank writes its statements: the header of each column, and how numbers and dates look",
           "properties": {**{f: {"type": "string", "description": "the column's header"}
                             for f in ("date", "amount", "currency", "reference", "payer", "iban")},
                          "delimiter": {"type": "string", "maxLength": 1},
                          "decimal": {"type": "string", "enum": [".", ","]},
                          "date_order": {"type": "string", "enum": ["D", "M"], "description": "day or month first"},
                          "default_currency": CUR}}

# a stored document, served with the type it was uploaded with
FILE = {"description": "the file, with the content type it was uploaded with (one of those the upload allows)",
        "headers": {"Content-Disposition": {"$ref": "#/components/headers/Content-Disposition"}},
        "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}

paths = {
 "/api/v1/auth/login": {"post": {
    "summary": "Sign in with email and password; returns a short-lived token",
    "security": [], "tags": ["auth"],
    "requestBody": body({"email": {"type": "string"}, "password": {"type": "string"}}, ["email", "password"]),
    "responses": {**ok(), **errs(400, 401, 415, 429)}}},
 "/api/v1/auth/me": {"get": {"summary": "Who you are, and what you may do (may: act, manage, audit, administer)", "tags": ["auth"],
    "responses": {**ok(), **errs(401)}}},
 "/api/v1/events": {"get": {
    "summary": "Live events as they commit: server-sent events (text/event-stream) that stay open",
    "tags": ["events"],
    "description": ("A stream of `case.changed`, `notification.sent|failed|dead|cancelled`, `extraction.finished`, "
                    "`reconciliation.review` and `task.dead` events, each `id: <event id>`, `event: <type>`, "
                    "`data: <JSON>` with the ids it concerns and no personal data. A role receives the types whose "
                    "reading function it may execute (a viewer gets no `task.dead`). Resume after a disconnect with "
                    "`Last-Event-ID` (EventSource sends it) or `?after=`: every event committed meanwhile comes, in "
                    "order, none twice; `event: reset` says the client was too far behind and must reload. A comment "
                    "line every 15 s keeps the connection open; `event: expired` ends the stream when the token that "
                    "opened it expires. A browser's EventSource cannot send a header: it opens the stream with "
                    "`?ticket=` from POST /api/v1/events/ticket."),
    "parameters": [qp("after", "string", "resume after this event id (Last-Event-ID wins)", pattern="^[0-9]{1,18}$"),
                   {"name": "Last-Event-ID", "in": "header", "required": False,
                    "description": "the id of the last event received: resume after it",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
                   qp("types", "string", "comma-separated event types to receive (default: every type the role may)"),
                   qp("case_id", "integer", "only the events of this case"),
                   qp("ticket", "string", "a ticket from POST /api/v1/events/ticket, instead of the Authorization header")],
    "responses": {"200": {"description": "the stream; it stays open",
                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                  **errs(400, 401)}}},
 "/api/v1/events/ticket": {"post": {
    "summary": "A ticket that opens your event stream: good for 30 s, and for GET /api/v1/events only",
    "tags": ["events"],
    "description": "For a browser's EventSource, which cannot send an Authorization header: the token stays out of URLs and logs, and the ticket in the URL is worth nothing after 30 s nor anywhere else. The stream it opens ends when the token it was asked with expires.",
    "responses": {**ok(), **errs(401)}}},
 "/api/v1/case-states": {"get": {"summary": "The states of a case, whether each closes it, and what it means", "tags": ["cases"],
    "responses": {**ok(), **errs(401)}}},
 "/api/v1/customers": {
   "get": {"summary": "Search customers (name, email or reference contains q; or exactly this email or phone)", "tags": ["customers"],
           "parameters": [qp("q", "string", "text to find"), cursor, limit,
                          qp("email", "string", "exactly this email (any case), found by its blind index"),
                          qp("phone", "string", "exactly this phone, found by its blind index")],
           "responses": {**ok(), **errs(400, 401)}},
   "post": {"summary": "Create a customer", "tags": ["customers"], "parameters": [IDEM],
            "requestBody": body({"external_ref": {"type": "string", "maxLength": 200},
                                 "name": {"type": "string", "maxLength": 500},
                                 "email": {"type": "string", "format": "email"},
                                 "phone": {"type": "string", "pattern": "^\\+[0-9]{6,15}$"},
                                 "locale": {"type": "string", "example": "en-GB"},
                                 "time_zone": {"type": "string", "example": "Europe/London"}},
                                ["external_ref", "name"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 409, 422)}}},
 "/api/v1/customers/{customer_id}": {
   "parameters": [pp("customer_id", "customer id")],
   "get": {"summary": "A customer and their cases", "tags": ["customers"],
           "responses": {**ok(), **errs(401, 404)}},
   "patch": {"summary": "Change a customer's details (fields left out are kept)", "tags": ["customers"],
             "requestBody": body({"expected_version": VER, "name": {"type": "string"},
                                  "email": {"type": "string"}, "phone": {"type": "string"},
                                  "locale": {"type": "string"}, "time_zone": {"type": "string"},
                                  "contact_preferences": PREFERENCES}, ["expected_version"]),
             "responses": {**ok(), **errs(400, 401, 403, 404, 409)}}},
 "/api/v1/customers/{customer_id}/erase": {
   "parameters": [pp("customer_id", "customer id")],
   "post": {"summary": "GDPR erasure (admins): personal data removed from the tables and the audit trail, amounts and history kept, the audit chains still verify",
            "tags": ["customers"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404)}}},
 "/api/v1/payments": {
   "get": {"summary": "Payments by due date", "tags": ["payments"],
           "parameters": [qp("customer_id", "integer", "one customer's"),
                          qp("status", "string", "pending, failed, overdue or paid",
                             enum=["pending", "failed", "overdue", "paid"]),
                          qp("due_from", "string", "due on or after", format="date"),
                          qp("due_to", "string", "due on or before", format="date"), cursor, limit],
           "responses": {**ok(), **errs(400, 401)}},
   "post": {"summary": "Record a payment a customer owes", "tags": ["payments"], "parameters": [IDEM],
            "requestBody": body({"customer_id": I64, "external_ref": {"type": "string"}, "amount": MONEY,
                                 "currency": CUR, "due_date": {"type": "string", "format": "date"}},
                                ["customer_id", "external_ref", "amount", "currency", "due_date"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/payments/{payment_id}": {
   "parameters": [pp("payment_id", "payment id")],
   "get": {"summary": "A payment", "tags": ["payments"],
           "responses": {**ok(), **errs(401, 404)}}},
 "/api/v1/payments/{payment_id}/fail": {
   "parameters": [pp("payment_id", "payment id")],
   "post": {"summary": "Mark a payment failed or overdue; opens its customer's case or adds to it",
            "tags": ["payments"], "parameters": [IDEM],
            "requestBody": body({"reason": {"type": "string"},
                                 "status": {"type": "string", "enum": ["failed", "overdue"]}}, []),
            "responses": {**ok(), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/recovery-cases": {
   "get": {"summary": "Recovery cases with filters, in a stable order", "tags": ["cases"],
           "parameters": [qp("state", "string", "one state of the state machine"),
                          qp("assigned_user_id", "integer", "assigned to this user"),
                          qp("customer_id", "integer", "of this customer"),
                          qp("min_overdue_days", "integer", "oldest unpaid payment due at least this many days ago"),
                          qp("min_balance", "integer", "balance at least (minor units)"),
                          qp("max_balance", "integer", "balance at most (minor units)"),
                          qp("sort", "string", "id, balance, opened_at or updated_at; '-' for descending",
                             enum=["id", "-id", "balance", "-balance", "opened_at", "-opened_at", "updated_at", "-updated_at"]),
                          cursor, limit],
           "responses": {**ok(), **errs(400, 401)}},
   "post": {"summary": "Open a case by hand: put a customer's payments into recovery (or add them to the open case)",
            "tags": ["cases"], "parameters": [IDEM],
            "requestBody": body({"customer_id": I64, "payment_ids": {"type": "array", "items": I64},
                                 "reason": {"type": "string"}}, ["customer_id", "payment_ids"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 422)}}},
 "/api/v1/recovery-cases/{case_id}": {
   "parameters": [pp("case_id", "case id")],
   "get": {"summary": "A case with its customer, payments, allowed events and timeline", "tags": ["cases"],
           "responses": {**ok(), **errs(401, 404)}},
   "patch": {"summary": "Assign a case (0: to nobody) and set its priority", "tags": ["cases"],
             "requestBody": body({"expected_version": VER, "assigned_user_id": I64,
                                  "priority": {"type": "integer", "minimum": 1, "maximum": 5}},
                                 ["expected_version"]),
             "responses": {**ok(), **errs(400, 401, 403, 404, 409)}}},
 "/api/v1/recovery-cases/{case_id}/transitions": {
   "parameters": [pp("case_id", "case id")],
   "post": {"summary": "Fire an event of the state machine", "tags": ["cases"], "parameters": [IDEM],
            "requestBody": body({"event": {"type": "string"}, "expected_version": VER,
                                 "details": DETAILS},
                                ["event", "expected_version"]),
            "responses": {**ok(), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/recovery-cases/{case_id}/payments": {
   "parameters": [pp("case_id", "case id")],
   "post": {"summary": "Record money received; the case resolves at a zero balance", "tags": ["cases"],
            "parameters": [IDEM],
            "requestBody": body({"amount": MONEY, "currency": CUR, "reference": {"type": "string"},
                                 "allow_overpayment": {"type": "boolean"}}, ["amount", "currency"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 422)}}},
 "/api/v1/recovery-cases/{case_id}/notes": {
   "parameters": [pp("case_id", "case id")],
   "post": {"summary": "Add a note", "tags": ["cases"], "parameters": [IDEM],
            "requestBody": body({"body": {"type": "string", "maxLength": 10000}}, ["body"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404)}}},
 "/api/v1/recovery-cases/{case_id}/documents": {
   "parameters": [pp("case_id", "case id")],
   "get": {"summary": "The case's documents (metadata)", "tags": ["documents"],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "Upload a document: the raw body with its Content-Type and ?filename, or a multipart/form-data file (PDF, PNG, JPEG, text, CSV; checked against the bytes), up to 10 MiB",
            "tags": ["documents"], "parameters": [qp("filename", "string", "its name"), IDEM],
            "requestBody": {"required": True, "content": {
                **{t: {"schema": {"type": "string", "format": "binary"}}
                   for t in ["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv"]},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "the first part with a filename is the document, with its own Content-Type"}}}}}},
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 413)}}},
 "/api/v1/documents/{document_id}": {
   "parameters": [pp("document_id", "document id")],
   "get": {"summary": "A document's metadata", "tags": ["documents"],
           "responses": {**ok(), **errs(401, 404)}}},
 "/api/v1/documents/{document_id}/content": {
   "parameters": [pp("document_id", "document id")],
   "get": {"summary": "The document, as an attachment (with X-Content-Type-Options: nosniff)", "tags": ["documents"],
           "responses": {"200": FILE,
                         **errs(401, 404)}}},
 "/api/v1/automation/documents/{document_id}": {
   "parameters": [pp("document_id", "document id")],
   "get": {"summary": "The document, for workers (extraction)", "tags": ["automation"],
           "responses": {"200": FILE,
                         **errs(401, 404)}}},
 "/api/v1/templates": {
   "get": {"summary": "Message templates, and the placeholders they may use", "tags": ["reminders"],
           "parameters": [qp("channel", "string", "email, sms, letter or webhook")],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "Create or replace a template (managers); unknown placeholders are refused", "tags": ["reminders"],
            "parameters": [IDEM],
            "requestBody": body({"name": {"type": "string"}, "channel": {"enum": ["email", "sms", "letter", "webhook"]},
                                 "locale": {"type": "string"}, "subject": {"type": "string"},
                                 "body": {"type": "string", "description": "with {{placeholders}}"},
                                 "html_body": {"type": "string", "description": "email only: an HTML alternative; every value is escaped"},
                                 "expected_version": VER}, ["name", "channel", "locale", "body"]),
            "responses": {**ok(), **errs(400, 401, 403, 409)}}},
 "/api/v1/templates/{template_id}/preview": {
   "parameters": [pp("template_id", "template id")],
   "get": {"summary": "A template rendered for a case, as its customer would get it", "tags": ["reminders"],
           "parameters": [qp("case_id", "integer", "the case")],
           "responses": {**ok(), **errs(400, 401, 404)}}},
 "/api/v1/dunning-policies": {
   "get": {"summary": "Dunning policies", "tags": ["reminders"],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "Create or replace a dunning policy (managers)", "tags": ["reminders"], "parameters": [IDEM],
            "requestBody": body({"name": {"type": "string"}, "description": {"type": "string"},
                                 "steps": {"type": "array", "items": {"type": "object", "properties": {
                                               "offset_days": {"type": "integer"}, "channel": {"type": "string"},
                                               "template": {"type": "string"}, "fee": {"type": "object"},
                                               "action": {"enum": ["escalate"]}}}},
                                 "is_default": {"type": "boolean"}, "expected_version": VER}, ["name", "steps"]),
            "responses": {**ok(), **errs(400, 401, 403, 409)}}},
 "/api/v1/notifications": {
   "get": {"summary": "The history of messages, newest first", "tags": ["reminders"],
           "parameters": [qp("case_id", "integer", "of a case"), qp("customer_id", "integer", "of a customer"),
                          qp("status", "string", "queued, sending, sent, failed, dead or cancelled"), cursor, limit],
           "responses": {**ok(), **errs(400, 401)}}},
 "/api/v1/notifications/{notification_id}/retry": {
   "parameters": [pp("notification_id", "notification id")],
   "post": {"summary": "Queue a dead letter again (managers)", "tags": ["reminders"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404, 409, 422)}}},
 "/api/v1/recovery-cases/{case_id}/holds": {
   "parameters": [pp("case_id", "case id")],
   "get": {"summary": "Holds on the case's reminders, its customer's included", "tags": ["reminders"],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "No automatic reminders for the case until ends_at (agents)", "tags": ["reminders"], "parameters": [IDEM],
            "requestBody": body({"reason": {"type": "string", "maxLength": 2000},
                                 "ends_at": {"type": "string", "format": "date-time", "description": "within a year"}},
                                ["reason", "ends_at"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404)}}},
 "/api/v1/customers/{customer_id}/holds": {
   "parameters": [pp("customer_id", "customer id")],
   "get": {"summary": "Holds on the customer's reminders", "tags": ["reminders"],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "No automatic reminders for any of the customer's cases until ends_at (agents)", "tags": ["reminders"], "parameters": [IDEM],
            "requestBody": body({"reason": {"type": "string", "maxLength": 2000},
                                 "ends_at": {"type": "string", "format": "date-time", "description": "within a year"}},
                                ["reason", "ends_at"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404)}}},
 "/api/v1/dunning-holds/{hold_id}/release": {
   "parameters": [pp("hold_id", "hold id")],
   "post": {"summary": "End a hold early; reminders resume", "tags": ["reminders"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404)}}},
 "/api/v1/recovery-cases/{case_id}/dunning-policy": {
   "parameters": [pp("case_id", "case id")],
   "put": {"summary": "Give the case its own dunning policy; null returns to the customer's or the default (managers)", "tags": ["reminders"],
           "requestBody": body({"policy": {"type": ["string", "null"]}}, ["policy"]),
           "responses": {**ok(), **errs(400, 401, 403, 404)}}},
 "/api/v1/customers/{customer_id}/dunning-policy": {
   "parameters": [pp("customer_id", "customer id")],
   "put": {"summary": "Give the customer's cases their own dunning policy; null returns to the default (managers)", "tags": ["reminders"],
           "requestBody": body({"policy": {"type": ["string", "null"]}}, ["policy"]),
           "responses": {**ok(), **errs(400, 401, 403, 404)}}},
 "/api/v1/extractions": {
   "post": {"summary": "Read an SMS, a text, an email (raw RFC 5322) or a CSV statement given as text; payments found are matched to cases, applied when the match is good enough, else queued for review (agents, automation)",
            "tags": ["reconciliation"], "parameters": [IDEM],
            "requestBody": body({"source": {"enum": ["sms", "text", "email", "statement"]},
                                 "content": {"type": "string", "maxLength": 10485760},
                                 "mapping": {"type": "string", "description": "a bank mapping's name (statements)"},
                                 "case_id": I64}, ["source", "content"]),
            "responses": {**ok(), **errs(400, 401, 403, 404)}}},
 "/api/v1/extractions/statements": {
   "post": {"summary": "Import a statement sent as the raw body, up to 100 MiB: CSV in any encoding (UTF-8, with a BOM or not, or Windows-1252), CAMT.052/053/054 (001.02 to 001.13), MT940/MT942, xlsx, xls or PDF; the bytes tell the format unless ?format= says it. ?preview=true answers what the import would do (lines_found) and keeps nothing",
            "tags": ["reconciliation"],
            "parameters": [IDEM, qp("mapping", "string", "a bank mapping's name; without it the usual header names are tried (CSV, xlsx, xls, PDF tables)"),
                           qp("format", "string", "csv, camt, mt940, xlsx, xls or pdf; without it the file's first bytes tell"),
                           qp("preview", "boolean", "true: answer what the import would do, and keep nothing")],
            "requestBody": {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                          for t in ["text/csv", "application/xml", "text/plain", "application/pdf",
                                                                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                                                    "application/vnd.ms-excel", "application/octet-stream"]}},
            "responses": {**ok(), **errs(400, 401, 403, 404, 413)}}},
 "/api/v1/extractions/{extraction_id}": {
   "parameters": [pp("extraction_id", "extraction id")],
   "get": {"summary": "An extraction: what was read, and its first 500 payment lines with their status", "tags": ["reconciliation"],
           "responses": {**ok(), **errs(401, 404)}}},
 "/api/v1/reconciliation": {
   "get": {"summary": "The review queue: payments found that wait for a person, with the suggested case and why", "tags": ["reconciliation"],
           "parameters": [qp("status", "string", "review (the default), or unmatched: the lines of an extraction that matched no case, with extraction_id"),
                          qp("extraction_id", "integer", "only the lines of one extraction"), cursor, limit],
           "responses": {**ok(), **errs(400, 401, 404)}}},
 "/api/v1/reconciliation/{line_id}/confirm": {
   "parameters": [pp("line_id", "payment line id")],
   "post": {"summary": "Apply the payment to the suggested case, or to case_id (agents)", "tags": ["reconciliation"], "parameters": [IDEM],
            "requestBody": body({"case_id": I64}, []),
            "responses": {**ok(), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/reconciliation/{line_id}/reject": {
   "parameters": [pp("line_id", "payment line id")],
   "post": {"summary": "Reject the payment with a reason; nothing is applied (agents)", "tags": ["reconciliation"], "parameters": [IDEM],
            "requestBody": body({"reason": {"type": "string"}}, ["reason"]),
            "responses": {**ok(), **errs(400, 401, 403, 404, 409)}}},
 "/api/v1/bank-mappings": {
   "get": {"summary": "How each bank's CSV statements are read", "tags": ["reconciliation"],
           "responses": {**ok(), **errs(401)}},
   "post": {"summary": "Create or replace a bank's column mapping (managers)", "tags": ["reconciliation"], "parameters": [IDEM],
            "requestBody": body({"name": {"type": "string"},
                                 "mapping": MAPPING},
                                ["name", "mapping"]),
            "responses": {**ok(), **errs(400, 401, 403)}}},
 "/api/v1/delivery": {
   "get": {"summary": "Delivery: the circuit breaker of each channel, the outbox by status, the worker", "tags": ["reminders"],
           "responses": {**ok(), **errs(401)}}},
 "/api/v1/jobs": {
   "get": {"summary": "The pg_cron jobs, their latest runs, and what the reminder runs queued (managers, auditors)", "tags": ["reminders"],
           "parameters": [limit],
           "responses": {**ok(), **errs(401, 403)}}},
 "/api/v1/automation/notifications": {
   "post": {"summary": "Queue a message to a case's customer in the outbox", "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"case_id": I64, "channel": {"type": "string"}, "template": {"type": "string"},
                                 "send_after": {"type": "string", "format": "date-time"}},
                                ["case_id", "channel", "template"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 422)}}},
 "/api/v1/users": {
   "get": {"summary": "Users (admins)", "tags": ["admin"], "parameters": [cursor, limit],
           "responses": {**ok(), **errs(400, 401, 403)}},
   "post": {"summary": "Create a user (admins)", "tags": ["admin"], "parameters": [IDEM],
            "requestBody": body({"email": {"type": "string"}, "display_name": {"type": "string"},
                                 "role": {"enum": ["recovery_viewer", "recovery_agent", "recovery_manager",
                                                   "recovery_auditor", "recovery_automation", "recovery_admin"]},
                                 "password": {"type": "string", "minLength": 12}},
                                ["email", "display_name", "role", "password"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 409)}}},
 "/api/v1/users/{user_id}/disable": {
   "parameters": [pp("user_id", "user id")],
   "post": {"summary": "Disable a user (admins): no more logins", "tags": ["admin"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404)}}},
 "/api/v1/api-keys": {
   "get": {"summary": "API keys, never the keys themselves (admins)", "tags": ["admin"],
           "parameters": [cursor, limit],
           "responses": {**ok(), **errs(400, 401, 403)}},
   "post": {"summary": "Issue an API key, shown this once (admins)", "tags": ["admin"], "parameters": [IDEM],
            "requestBody": body({"name": {"type": "string"}, "role": {"type": "string"}}, ["name", "role"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403)}}},
 "/api/v1/api-keys/{api_key_id}/revoke": {
   "parameters": [pp("api_key_id", "API key id")],
   "post": {"summary": "Revoke an API key at once (admins)", "tags": ["admin"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404)}}},
 "/api/v1/audit": {
   "get": {"summary": "Audit rows, newest first (auditors and admins)", "tags": ["audit"],
           "parameters": [qp("table", "string", "table name, e.g. recovery_cases"),
                          qp("row", "string", "the row's key (its id)"),
                          qp("actor", "string", "who (email or api-key:name)"),
                          qp("request_id", "string", "the X-Request-Id of a request"),
                          qp("customer_id", "integer", "rows about this customer"),
                          qp("from", "string", "at or after", format="date-time"),
                          qp("to", "string", "before", format="date-time"), cursor, limit],
           "responses": {**ok(), **errs(400, 401, 403)}}},
 "/api/v1/audit/verify": {
   "get": {"summary": "Verify every audit chain (auditors and admins)", "tags": ["audit"],
           "responses": {**ok(), **errs(401, 403)}}},
 "/api/v1/analytics/summary": {
   "get": {"summary": "KPIs: open cases and balance by currency, recovered this month, recovery rate, promise-kept rate, days to resolve",
           "tags": ["analytics"], "responses": {**ok(), **errs(401)}}},
 "/api/v1/analytics/aging": {
   "get": {"summary": "Open cases by days overdue: 0-30, 31-60, 61-90, 90+", "tags": ["analytics"],
           "responses": {**ok(), **errs(401)}}},
 "/api/v1/analytics/channels": {
   "get": {"summary": "Results by channel: messages, sent, failed, cases that paid within 7 days", "tags": ["analytics"],
           "responses": {**ok(), **errs(401)}}},
 "/api/v1/analytics/recovery-by-month": {
   "get": {"summary": "Owed and recovered by month of opening", "tags": ["analytics"],
           "responses": {**ok(), **errs(401)}}},
 "/api/v1/automation/tasks/schedule": {
   "post": {"summary": "Schedule a task; with unique_key, once", "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"kind": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,63}$"},
                                 "run_at": {"type": "string", "format": "date-time", "description": "now by default"},
                                 "payload": {"type": "object", "additionalProperties": True,
                                             "description": "any JSON object the task's worker needs"},
                                 "unique_key": {"type": "string"},
                                 "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                                 "retry_base_seconds": {"type": "integer", "minimum": 1}}, ["kind"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403)}}},
 "/api/v1/automation/tasks/claim": {
   "post": {"summary": "Claim due tasks with a lease (SKIP LOCKED; an expired lease can be claimed again)",
            "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"kinds": {"type": "array", "items": {"type": "string"}},
                                 "limit": {"type": "integer", "minimum": 1, "maximum": 200},
                                 "lease_seconds": {"type": "integer", "minimum": 1, "maximum": 3600}}, []),
            "responses": {**ok(), **errs(400, 401, 403)}}},
 "/api/v1/automation/tasks/dead-letters": {
   "get": {"summary": "Tasks that failed their last attempt", "tags": ["automation"],
           "parameters": [cursor, limit],
           "responses": {**ok(), **errs(400, 401, 403)}}},
 "/api/v1/automation/tasks/{task_id}": {
   "parameters": [pp("task_id", "task id")],
   "get": {"summary": "A task", "tags": ["automation"],
           "responses": {**ok(), **errs(401, 403, 404)}}},
 "/api/v1/automation/tasks/{task_id}/complete": {
   "parameters": [pp("task_id", "task id")],
   "put": {"summary": "Complete a task you hold the lease of", "tags": ["automation"],
           "requestBody": body({"result": {"description": "any JSON"}}, []),
           "responses": {**ok(), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/automation/tasks/{task_id}/fail": {
   "parameters": [pp("task_id", "task id")],
   "post": {"summary": "Report a failure: retried after retry_base_seconds * 2^(attempts-1) +/- 25%, dead-lettered after max_attempts",
            "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"error": {"type": "string"}}, ["error"]),
            "responses": {**ok(), **errs(400, 401, 403, 404, 409, 422)}}},
 "/api/v1/automation/tasks/{task_id}/requeue": {
   "parameters": [pp("task_id", "task id")],
   "post": {"summary": "Schedule a dead letter again with fresh attempts", "tags": ["automation"], "parameters": [IDEM],
            "responses": {**ok(), **errs(401, 403, 404, 422)}}},
 "/api/v1/automation/reminders": {
   "post": {"summary": "Schedule a reminder for a case (a task of kind reminder; the case's dunning policy decides the message unless channel and template are given)",
            "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"case_id": I64, "remind_at": {"type": "string", "format": "date-time"},
                                 "channel": {"type": "string"}, "template": {"type": "string"}}, ["case_id"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 422)}}},
 "/api/v1/automation/extractions": {
   "post": {"summary": "Schedule an extraction (a task of kind extraction) of a document, an email, an SMS or a text",
            "tags": ["automation"], "parameters": [IDEM],
            "requestBody": body({"source": {"enum": ["document", "email", "sms", "text"]}, "document_id": I64,
                                 "content": {"type": "string", "maxLength": 1048576}, "case_id": I64}, ["source"]),
            "responses": {**ok("201", "Created"), **errs(400, 401, 403, 404, 413)}}},
 "/api/v1/automation/recovery-cases/pending": {
   "get": {"summary": "Open cases whose next action is due, most urgent first", "tags": ["automation"],
           "parameters": [limit],
           "responses": {**ok(), **errs(400, 401, 403)}}},
}

def obj(props, **kw):
    d = {"type": "object", "properties": props}; d.update(kw); return d
schemas = {
 "Error": obj({"error": {"type": "string", "description": "a stable code to program against"},
               "message": {"type": "string"}, "detail": {"type": "string"}, "hint": {"type": "string"},
               "sqlstate": {"type": "string"}, "request_id": {"type": "string"}},
              required=["error", "message", "request_id"]),
}

# --- what every operation shares, from the routes of conf/nginx.conf.in ------
import os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openapi_answers import COMPONENTS, ANSWERS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def routes_of_conf():
    """(method, path) -> (SQL function, API keys accepted, location=) of each route"""
    conf = re.sub(r"#[^\n]*", "", open(os.path.join(ROOT, "conf", "nginx.conf.in")).read())
    found, keys_on = {}, set()
    for m in re.finditer(r"location\s+(=|~)\s+(\S+)\s*\{(.*?)\}", conf, re.S):
        kind, pattern, block = m.groups()
        path = pattern
        if kind == "~":
            path = re.sub(r"\(\?<(\w+)>[^)]*\)", r"{\1}", path.lstrip("^").rstrip("$"))
        for r in re.finditer(r"recovery_(call|login|events_ticket|events)\s+([^;]+);", block):
            words = r.group(2).split()
            method = {"login": "post", "events_ticket": "post", "events": "get"}.get(r.group(1)) or words.pop(0).lower()
            location = next((w[len("location="):] for w in words if w.startswith("location=")), None)
            found[(method, path)] = (words[0], "recovery_api_keys  on" in block
                                     or path.startswith("/api/v1/automation/"), location)
    return found

def camel(function):
    words = function.split(".")[-1].split("_")
    words = words[1:] if words[0] == "api" else words
    return words[0] + "".join(w.capitalize() for w in words[1:])

def version():
    control = open(os.path.join(ROOT, "pg_recovery", "pg_recovery.control")).read()
    return re.search(r"default_version = '([^']+)'", control).group(1)

HDR = {"$ref": "#/components/headers/X-Request-Id"}
ROUTES = routes_of_conf()
# answers no test has seen yet, and whose shape is another's
SAME_AS = {"dunningHoldsListForCustomer": "dunningHoldsListForCase"}
ANSWERS.setdefault("reconciliationReject", {"$ref": "#/components/schemas/ReconciliationLine"})
SHARED = {f for f in (r[0] for r in ROUTES.values()) if sum(1 for r in ROUTES.values() if r[0] == f) > 1}

def operation_id(function, path):
    """the function's name; one that two routes share says whose route"""
    name = camel(function)
    if function not in SHARED:
        return name
    if path.startswith("/api/v1/automation/"):
        return name + "ForAutomation"
    owner = re.search(r"\{(\w+)_id\}", path).group(1)
    return name + "For" + owner.capitalize()
for path, item in paths.items():
    for method, op in item.items():
        if method not in ("get", "post", "put", "patch", "delete"):
            continue
        function, api_keys, location = ROUTES[(method, path)]
        op["operationId"] = operation_id(function, path)
        op.setdefault("description", op["summary"] + ". It calls `%s`; the same function answers in SQL." % function)
        responses = op["responses"]
        answer = ANSWERS.get(op["operationId"]) or ANSWERS.get(SAME_AS.get(op["operationId"]))
        for status, response in list(responses.items()):
            media = response.get("content", {}).get("application/json")
            if status.startswith("2") and media is not None and media["schema"] is None:
                assert answer is not None, "no schema of the answer of %s" % op["operationId"]
                media["schema"] = answer
            if status.startswith("2") and "$ref" not in response:
                response.setdefault("headers", {})["X-Request-Id"] = HDR
                if location and status == "201":
                    response["headers"]["Location"] = {
                        "description": "the new resource: %s{id}" % location, "required": True,
                        "schema": {"type": "string", "pattern": "^%s[0-9]+$" % location}}
                if any(p is IDEM for p in op.get("parameters", [])):
                    response["headers"]["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
                if method != "get":
                    response["headers"]["Recovery-Commit-LSN"] = {"$ref": "#/components/headers/Recovery-Commit-LSN"}
        if method == "get" and not (op.get("responses", {}).get("200", {}).get("content", {}).get("text/event-stream")):
            op.setdefault("parameters", []).append(LSN)
        login = op.get("security") == []
        if op["operationId"] == "eventsTicket":
            responses["200"]["headers"]["Cache-Control"] = {"$ref": "#/components/headers/Cache-Control"}
        if login:
            # the token is a credential; a refused password is a 401 too
            responses["200"]["headers"]["Cache-Control"] = {"$ref": "#/components/headers/Cache-Control"}
            responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
        else:
            op["security"] = [{"bearer": []}, {"apiKey": []}] if api_keys else [{"bearer": []}]
            responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
            responses["403"] = E
        json_body = "requestBody" in op and "application/json" in op["requestBody"]["content"]
        if "requestBody" in op:
            responses["413"] = E
        if json_body:
            responses.setdefault("400", E)
            responses["415"] = E
        responses.setdefault("400", E)     # a query parameter the route does not know, at least
        responses["429"] = {"$ref": "#/components/responses/TooManyRequests"}
        responses["500"] = E
        responses["503"] = {"$ref": "#/components/responses/Unavailable"}
        op["responses"] = dict(sorted(responses.items()))

paths["/api/v1/openapi.json"] = {"get": {
    "operationId": "openapiDocument", "summary": "This document", "tags": ["meta"], "security": [],
    "description": "The OpenAPI document of the API, as nginx serves it; no credentials needed.",
    "responses": {"200": {"description": "OK", "headers": {"X-Request-Id": HDR},
                          "content": {"application/json": {"schema": {"type": "object"}}}},
                  "429": {"$ref": "#/components/responses/TooManyRequests"}}}}

# what nginx serves beside the API: liveness, readiness, metrics
paths["/healthz"] = {"get": {
    "operationId": "healthz", "summary": "nginx is alive", "tags": ["operations"], "security": [],
    "description": "Answered by nginx itself, whatever the database does.",
    "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"status": {"const": "alive"}}, "required": ["status"]}}}},
                  "429": {"$ref": "#/components/responses/TooManyRequests"}}}}
paths["/readyz"] = {"get": {
    "operationId": "readyz", "summary": "This worker holds a live database connection", "tags": ["operations"],
    "security": [], "description": "For load balancers: 503 while the worker has no connection to the database.",
    "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": {
                      "type": "object", "properties": {"status": {"const": "ready"}, "connections": {"type": "integer"}},
                      "required": ["status", "connections"]}}}},
                  "429": {"$ref": "#/components/responses/TooManyRequests"},
                  "503": {"$ref": "#/components/responses/Unavailable"}}}}
paths["/metrics"] = {"get": {
    "operationId": "metrics", "summary": "Counters in Prometheus' text format (loopback only)", "tags": ["operations"],
    "security": [], "description": "Requests by route and status, latency histograms, each worker's pool, database errors.",
    "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                  "403": {"description": "not from loopback"}}}}

TAGS = {"auth": "Signing in, and who you are", "customers": "The people and companies who owe",
        "payments": "What customers owe", "cases": "Recovery cases and their state machine",
        "documents": "Files of a case", "reminders": "Templates, dunning policies and holds, the outbox",
        "extraction": "Payments read from statements, emails and SMS, and the review queue",
        "users": "People who sign in, and API keys", "admin": "Users and API keys (administrators)", "audit": "The audit trail",
        "analytics": "The dashboard's figures", "automation": "The contract for workers with API keys",
        "reconciliation": "The review queue of payments found", "operations": "Liveness, readiness, metrics",
        "events": "Live events: what changes, as it commits (server-sent events)",
        "meta": "The API itself"}
used = {tag for item in paths.values() for op in item.values() if isinstance(op, dict) for tag in op.get("tags", [])}
assert used <= set(TAGS), "tags without a description: %s" % (used - set(TAGS))

ENUMS = {
    ("Case", "state"): ["open", "contacted", "promised", "plan", "disputed", "escalated", "resolved",
                        "written_off", "cancelled"],
    ("CaseListItem", "state"): "Case",
    ("PendingCase", "state"): "Case",
    ("Payment", "status"): ["pending", "failed", "overdue", "paid"],
    ("Payment", "kind"): ["principal", "fee"],
    ("Task", "state"): ["scheduled", "running", "done", "dead"],
    ("Notification", "status"): ["queued", "sending", "sent", "failed", "dead", "cancelled"],
    ("Notification", "channel"): ["email", "sms", "letter", "webhook"],
    ("Template", "channel"): "Notification",
    ("ReconciliationLine", "status"): ["applied", "review", "unmatched", "confirmed", "rejected", "ignored"],
    ("ExtractionLine", "status"): "ReconciliationLine",
    ("AuditRow", "action"): ["INSERT", "UPDATE", "DELETE"],
    ("User", "role"): ["recovery_viewer", "recovery_agent", "recovery_manager", "recovery_auditor",
                       "recovery_automation", "recovery_admin"],
    ("ApiKey", "role"): "User",
}
for (component, field), values in ENUMS.items():
    if isinstance(values, str):
        values = ENUMS[(values, field)]
    prop = COMPONENTS[component]["properties"][field]
    prop["enum"] = values + ([None] if "null" in prop.get("type", []) else [])

MEANING = {"amount": "minor units of the currency", "balance": "minor units of the currency",
           "outstanding": "minor units of the currency", "allocated": "minor units of the currency",
           "unallocated": "minor units of the currency", "paid_amount": "minor units of the currency",
           "currency": "ISO 4217", "version": "the row's version: send it back as expected_version",
           "request_id": "the request's id, as X-Request-Id"}
def describe(schema):
    if isinstance(schema, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in MEANING and "$ref" not in prop:
                prop.setdefault("description", MEANING[name])
            describe(prop)
        describe(schema.get("items"))
for schema in list(COMPONENTS.values()) + list(ANSWERS.values()):
    describe(schema)
schemas.update(COMPONENTS)

doc = {
 "openapi": "3.1.0",
 "info": {"title": "Payment Recovery API", "version": version(),
          "description": "Served by nginx with ngx_recovery; every route calls one SQL function of the pg_recovery extension (each operation's description names it). Money is integer minor units with a currency. Errors are JSON (components.schemas.Error) with a stable `error` code; the README maps SQLSTATEs to statuses. Any path answers a method it does not have with 405 and an `Allow` header, and a path there is not with 404. Tokens come from /api/v1/auth/login; API keys (X-API-Key, or as the Bearer value) reach /api/v1/auth/me and /api/v1/automation/ only, elsewhere 403. Every answer carries X-Request-Id."},
 "servers": [{"url": "/"}],
 "security": [{"bearer": []}],
 "tags": [{"name": n, "description": d} for n, d in TAGS.items()],
 "paths": paths,
 "components": {
   "securitySchemes": {
     "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "a token from /api/v1/auth/login, or an API key as the Bearer value"},
     "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
   "headers": {
     "X-Request-Id": {"description": "the request's id: yours if you sent a sane one, else nginx's; in the logs and the audit rows",
                      "required": True, "schema": {"type": "string"}},
     "Retry-After": {"description": "seconds to wait before trying again", "required": True,
                     "schema": {"type": "integer", "minimum": 1}},
     "WWW-Authenticate": {"description": "Bearer, with error=\"invalid_token\" when credentials were refused",
                          "required": True, "schema": {"type": "string", "pattern": "^Bearer realm=\"recovery\""}},
     "Idempotent-Replayed": {"description": "true: a retry with the same Idempotency-Key, answered with the first response",
                             "schema": {"const": "true"}},
     "Content-Disposition": {"description": "attachment, with the file's name", "schema": {"type": "string"}},
     "Cache-Control": {"description": "no-store: a token is a credential", "schema": {"const": "no-store"}},
     "Recovery-Commit-LSN": {"description": "where this write committed (a WAL position); send it back with your next reads "
                                            "to see the write even from a standby (a Set-Cookie recovery_lsn carries it for browsers); "
                                            "sent when the gateway reads from standbys (recovery_replicas)",
                             "schema": {"type": "string", "pattern": "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$"}}},
   "responses": {
     "Error": {"description": "an error: its code, message, detail and hint",
               "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
     "Unauthorized": {"description": "no credentials, or refused ones",
                      "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                                  "WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}},
                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
     "TooManyRequests": {"description": "over the rate limit of the client's address",
                         "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                                     "Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
     "Unavailable": {"description": "the database cannot take the request now (down, busy, a lock held, a timeout): try again",
                     "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                                 "Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
   "schemas": schemas}}
print(json.dumps(doc, indent=2))
