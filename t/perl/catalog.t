# The install script of the current version is built from sql/src/, while a
# database made with an earlier version reaches it through the shipped
# upgrade scripts.  Both ways must give the same extension: every function's
# definition, comment and grants, every table's columns, constraints,
# indexes, triggers, grants and comments, the views, types, sequences and
# the rows the extension ships.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use DBI;
use Recovery::Test qw(connect_db);

# every version released before the current one: 0.1 and those an upgrade
# script leads to
my $sql = "$FindBin::Bin/../../sql";
my %released = ('0.1' => 1);
for (glob("$sql/pg_recovery--*--*.sql")) {
    $released{$1} = 1 if /--[\d.]+--([\d.]+)\.sql$/;
}

# One row per catalog fact: (what, which, its description).  ACLs are
# compared as they act (a NULL ACL is the default one), and columns by name
# and order, not by attnum, since an upgrade may leave dropped columns.
my $describe = <<'SQL';
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'pg_recovery'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (
    SELECT c.* FROM pg_class c, ext WHERE c.relnamespace = ext.extnamespace)
SELECT 'extension', extname::text, extversion || ' ' || extrelocatable::text
  FROM pg_extension WHERE extname = 'pg_recovery'
UNION ALL
-- what pg_dump keeps of the extension's tables, and with which filter
SELECT 'dumped', c.oid::regclass::text, coalesce(e.extcondition[i], '')
  FROM pg_extension e, generate_subscripts(e.extconfig, 1) i, pg_class c
 WHERE e.extname = 'pg_recovery' AND c.oid = e.extconfig[i]
UNION ALL
SELECT 'member', pg_describe_object(classid, objid, 0), '' FROM members
UNION ALL
SELECT 'function', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || E'\nacl: ' ||
       array_to_string(ARRAY(SELECT a FROM unnest(coalesce(p.proacl, acldefault('f', p.proowner))) a ORDER BY a::text), ',')
       || E'\ncomment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
  FROM pg_proc p, ext WHERE p.pronamespace = ext.extnamespace
UNION ALL
SELECT 'relation', c.relname::text,
       c.relkind::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || E'\nacl: ' ||
       array_to_string(ARRAY(SELECT a FROM unnest(coalesce(c.relacl, acldefault('r', c.relowner))) a ORDER BY a::text), ',')
       || E'\ncomment: ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
       || CASE WHEN c.relkind = 'v' THEN E'\n' || pg_get_viewdef(c.oid) ELSE '' END
  FROM rels c WHERE c.relkind IN ('r', 'v', 'c')
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       (row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum))::text || ' ' ||
       format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull ||
       ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') ||
       ' identity=' || a.attidentity::text || ' storage=' || a.attstorage::text ||
       ' acl=' || coalesce(array_to_string(ARRAY(SELECT x FROM unnest(a.attacl) x ORDER BY x::text), ','), '-') ||
       ' comment=' || coalesce(col_description(c.oid, a.attnum), '-')
  FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'v', 'c')
UNION ALL
SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
  FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid
UNION ALL
SELECT 'index', i.relname::text, pg_get_indexdef(i.oid)
  FROM rels i WHERE i.relkind = 'i'
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
  FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'policy', c.relname || '.' || p.polname,
       p.polcmd::text || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-') || ' ' ||
       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-')
  FROM rels c JOIN pg_policy p ON p.polrelid = c.oid
UNION ALL
SELECT 'sequence', c.relname::text,
       format('%s %s %s %s %s %s', s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcycle)
       || ' acl=' || coalesce(array_to_string(ARRAY(SELECT x FROM unnest(c.relacl) x ORDER BY x::text), ','), '-')
  FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid
UNION ALL
SELECT 'type', t.typname::text, t.typtype::text || ' ' || coalesce(obj_description(t.oid, 'pg_type'), '-')
  FROM pg_type t, ext WHERE t.typnamespace = ext.extnamespace
SQL

# The rows the extension ships: every table's content, as text, but for
# the times (when each database was made).
my $rows = <<'SQL';
SELECT format('SELECT ROW(%s)::text FROM recovery.%I t ORDER BY 1',
              string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), c.relname)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'recovery'::regnamespace AND c.relkind = 'r'
   AND a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype)
 GROUP BY c.relname ORDER BY c.relname
SQL

sub catalog_of {
    my ($name) = @_;
    my $db = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                          { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1 });
    my %facts = map { ("$_->[0] $_->[1]" => $_->[2]) } @{ $db->selectall_arrayref($describe) };
    for my $query (@{ $db->selectcol_arrayref($rows) }) {
        $facts{"rows of $query"} = join "\n", @{ $db->selectcol_arrayref($query) };
    }
    $db->disconnect;
    return \%facts;
}

# Differences named one by one, so that a failure says what differs.
sub differences {
    my ($want, $got) = @_;
    my @out;
    for my $key (sort keys %$want) {
        if (!exists $got->{$key}) { push @out, "missing: $key"; next }
        push @out, "differs: $key\n  fresh:   $want->{$key}\n  upgrade: $got->{$key}"
            if $want->{$key} ne $got->{$key};
    }
    push @out, map { "extra: $_" } grep { !exists $want->{$_} } sort keys %$got;
    return @out;
}

my $admin = connect_db();
$admin->do('SET client_min_messages = warning');
my @made;
my $make = sub {
    my ($name, @statements) = @_;
    $admin->do("DROP DATABASE IF EXISTS $name");
    $admin->do("CREATE DATABASE $name");
    push @made, $name;
    my $db = DBI->connect("dbi:Pg:dbname=$name", 'postgres', undef,
                          { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
    $db->do('SET client_min_messages = warning');
    $db->do($_) for @statements;
    $db->disconnect;
};

$make->("catalog_fresh_$$", 'CREATE EXTENSION pg_recovery');
my $fresh = catalog_of("catalog_fresh_$$");
my $current = (split / /, $fresh->{'extension pg_recovery'})[0];
my @earlier = sort { version($a) <=> version($b) } grep { $_ ne $current } keys %released;
sub version { my ($major, $minor) = split /\./, $_[0]; return $major * 1000 + $minor }
ok(scalar(@earlier) >= 6, "the released versions before $current: @earlier");
ok(scalar(grep { /^function / } keys %$fresh) > 100,
   "a fresh install of $current has the extension's functions")
    or diag(join ', ', sort keys %$fresh);

for my $version (@earlier) {
    (my $tag = $version) =~ tr/./_/;
    my $name = "catalog_from_${tag}_$$";
    $make->($name, "CREATE EXTENSION pg_recovery VERSION '$version'", 'ALTER EXTENSION pg_recovery UPDATE');
    my @diff = differences($fresh, catalog_of($name));
    is(scalar @diff, 0, "an upgrade from $version to $current gives the catalog of a fresh install")
        or diag(join "\n", @diff[0 .. ($#diff < 20 ? $#diff : 20)]);
}

$admin->do("DROP DATABASE $_") for @made;
done_testing();
