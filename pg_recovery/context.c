/*
 * context.c
 *		The request context: who is acting and under which request id.
 *
 * The REST gateway sets recovery.user_id, recovery.actor and
 * recovery.request_id with set_config(..., true) at the start of each
 * transaction; a DBA in psql sets nothing and is recorded as session_user.
 * Privilege checks use the role in effect outside any SECURITY DEFINER
 * function (GetOuterUserId), which is the role chosen with SET ROLE.
 */
#include "recovery.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

static char *context_actor = NULL;
static char *context_user_id = NULL;
static char *context_request_id = NULL;
static char *context_claims = NULL;

/*
 * Who is acting may be said only by the gateway's login role (or a
 * superuser): a viewer who logs in itself must not record its changes under
 * someone else's name.  The check looks at the session's login, which
 * SET ROLE and SECURITY DEFINER do not change.  Clearing is always allowed,
 * and so is the configuration file, read outside any transaction.
 */
static bool
check_context_setting(char **newval, void **extra, GucSource source)
{
	Oid			login = GetSessionUserId();
	Oid			gateway;

	if (*newval == NULL || (*newval)[0] == '\0' || !IsTransactionState()
		|| !OidIsValid(login) || superuser_arg(login))
		return true;
	gateway = get_role_oid("recovery_authenticator", true);
	if (OidIsValid(gateway) && has_privs_of_role(login, gateway))
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("only the gateway's login role may say who is acting");
	GUC_check_errdetail("Role \"%s\" logged in itself; its changes are recorded as its own.",
						GetUserNameFromId(login, false));
	GUC_check_errhint("Leave recovery.user_id, recovery.actor and recovery.claims unset, or connect as a superuser.");
	return false;
}

void
recovery_define_context_gucs(void)
{
	DefineCustomStringVariable("recovery.actor",
							   "Application user recorded as the actor of changes.",
							   "Set per transaction by the REST gateway; empty means session_user.",
							   &context_actor, "", PGC_USERSET, 0,
							   check_context_setting, NULL, NULL);
	DefineCustomStringVariable("recovery.user_id",
							   "Id of the application user (recovery.users.id) making the request.",
							   NULL,
							   &context_user_id, "", PGC_USERSET, 0,
							   check_context_setting, NULL, NULL);
	DefineCustomStringVariable("recovery.request_id",
							   "Request id recorded in case events and the audit trail.",
							   NULL,
							   &context_request_id, "", PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("recovery.claims",
							   "Claims of the token that authenticated the request, as JSON.",
							   "Set per transaction by the REST gateway; empty for API keys and psql.",
							   &context_claims, "", PGC_USERSET, 0,
							   check_context_setting, NULL, NULL);
}

void
recovery_current_actor(RecoveryActor *actor)
{
	actor->db_user = GetUserNameFromId(GetSessionUserId(), false);
	actor->db_role = GetUserNameFromId(GetOuterUserId(), false);
	actor->actor = (context_actor && context_actor[0])
		? context_actor : actor->db_user;
	actor->user_id = 0;
	if (context_user_id && context_user_id[0])
	{
		char	   *end;
		long long	id = strtoll(context_user_id, &end, 10);

		if (*end != '\0' || id <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid recovery.user_id \"%s\"", context_user_id),
					 errhint("Set recovery.user_id to the id of a row of recovery.users, or to an empty string.")));
		actor->user_id = id;
	}
	actor->request_id = (context_request_id && context_request_id[0])
		? context_request_id : NULL;
}

bool
recovery_caller_has_role(const char *rolename)
{
	return has_privs_of_role(GetOuterUserId(), get_role_oid(rolename, false));
}

void
recovery_require_role(const char *rolename, const char *action)
{
	if (!recovery_caller_has_role(rolename))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", action),
				 errdetail("Role \"%s\" does not have the privileges of \"%s\".",
						   GetUserNameFromId(GetOuterUserId(), false),
						   rolename),
				 errhint("Ask a user with the %s role to do it.", rolename)));
}

/*
 * recovery.caller_has_role(role) returns boolean
 *
 * For SQL functions that are SECURITY DEFINER, where current_user is the
 * owner: whether the role the request runs as has the privileges of role.
 */
PG_FUNCTION_INFO_V1(recovery_caller_has_role_sql);

Datum
recovery_caller_has_role_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(recovery_caller_has_role(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * recovery.caller_role() returns name
 *
 * The role the request runs as, seen from inside a SECURITY DEFINER
 * function: for has_function_privilege() and the like.
 */
PG_FUNCTION_INFO_V1(recovery_caller_role_sql);

Datum
recovery_caller_role_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(GetOuterUserId(), false))));
}
