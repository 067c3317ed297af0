-- The roles of the extension: what each builds on, and the gateway's login
-- role that may only switch into them.  Every object's own grants are in
-- the file that creates it; privileges.sql takes PUBLIC's away at the end.

-- Roles (cluster-wide, so created only when missing)
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['recovery_viewer', 'recovery_agent',
                             'recovery_manager', 'recovery_auditor',
                             'recovery_automation', 'recovery_admin']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recovery_authenticator') THEN
        CREATE ROLE recovery_authenticator LOGIN NOINHERIT;
    END IF;
END
$roles$;

-- Privileges build up: agent > viewer, manager > agent, admin > manager + auditor.
GRANT recovery_viewer TO recovery_agent;
GRANT recovery_agent TO recovery_manager;
GRANT recovery_manager TO recovery_admin;
GRANT recovery_auditor TO recovery_admin;
GRANT recovery_viewer TO recovery_automation;

-- The gateway's login role can only switch into the others (NOINHERIT).
GRANT recovery_viewer, recovery_agent, recovery_manager, recovery_auditor,
      recovery_automation, recovery_admin TO recovery_authenticator;

GRANT USAGE ON SCHEMA recovery TO recovery_viewer, recovery_auditor, recovery_authenticator;
