#!/usr/bin/perl
# The layout a newcomer can walk (docs/ARCHITECTURE.md): in the gateway
# (ngx_recovery/), the extension (pg_recovery/), its statement parser
# (parse/) and the web app (html/js/),
# no file leads back to itself through the files it includes, imports or
# calls, so a request followed from the content handler only ever moves on;
# no C file is over 900 lines nor a C function over 150; and the current
# definition of each SQL function is in exactly one file of sql/src/.
use strict;
use warnings;
use FindBin;
use File::Basename qw(basename dirname);
use File::Spec;
use Test::More;

my $root = File::Spec->rel2abs("$FindBin::Bin/../..");
chdir $root or die "cannot enter $root: $!";

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "cannot read $path: $!";
    local $/;
    return <$fh>;
}

# C without its comments and string literals, which name functions too
sub code_of {
    my ($text) = @_;
    $text =~ s{/\*.*?\*/}{ }gs;
    $text =~ s{//[^\n]*}{}g;
    $text =~ s{"(?:\\.|[^"\\\n])*"}{""}g;
    $text =~ s{'(?:\\.|[^'\\\n])*'}{''}g;
    return $text;
}

# A circle in a graph of files (file => [files it leads to]), as a list of
# files from one back to itself, or nothing.
sub find_circle {
    my ($graph) = @_;
    my (%state, @path);
    my $visit;
    $visit = sub {
        my ($node) = @_;
        $state{$node} = 'open';
        push @path, $node;
        for my $next (sort @{ $graph->{$node} || [] }) {
            if (($state{$next} // '') eq 'open') {
                my ($at) = grep { $path[$_] eq $next } 0 .. $#path;
                return [@path[$at .. $#path], $next];
            }
            next if $state{$next};
            my $circle = $visit->($next);
            return $circle if $circle;
        }
        pop @path;
        $state{$node} = 'done';
        return undef;
    };
    for my $node (sort keys %$graph) {
        next if $state{$node};
        my $circle = $visit->($node);
        return @$circle if $circle;
    }
    return ();
}

# The files of a C folder, each leading to the headers it includes and to
# the files that define the functions it calls or takes the address of.
sub c_graph {
    my ($dir) = @_;
    my @files = sort glob("$dir/*.c $dir/*.h");
    my (%defined_in, %code, %graph);
    for my $file (@files) {
        $code{$file} = code_of(slurp($file));
        $graph{$file} = [];
        next unless $file =~ /\.c$/;
        # nginx and PostgreSQL style both start a definition's name in column
        # 0, its type on the line before; a static one is the file's own
        while ($code{$file} =~ /^([^\n]*)\n([A-Za-z_]\w*)\s*\([^;]*?\)\s*\{/gm) {
            my ($type, $name) = ($1, $2);
            $defined_in{$name} = $file unless $type =~ /\bstatic\b/;
        }
    }
    for my $file (@files) {
        my %to;
        for my $header (slurp($file) =~ /^\s*#\s*include\s+"([^"]+)"/mg) {
            $to{"$dir/$header"} = 1 if -e "$dir/$header";
        }
        if ($file =~ /\.c$/) {
            for my $name ($code{$file} =~ /\b([A-Za-z_]\w*)\b/g) {
                my $home = $defined_in{$name};
                $to{$home} = 1 if $home && $home ne $file;
            }
        }
        delete $to{$file};
        $graph{$file} = [sort keys %to];
    }
    return \%graph;
}

for my $dir (qw(ngx_recovery pg_recovery parse)) {
    my @circle = find_circle(c_graph($dir));
    ok(!@circle, "no circle among the files of $dir/")
        or diag('circle: ' . join(' -> ', map { basename($_) } @circle));
}

# the web app's modules and what they import
my %js;
for my $file (sort(glob('html/js/*.js'), glob('html/js/*/*.js'))) {
    my @to;
    for my $spec (slurp($file) =~ /^\s*import\b[^'"]*['"]([^'"]+)['"]/mg) {
        my $target = File::Spec->canonpath(dirname($file) . "/$spec");
        1 while $target =~ s{[^/]+/\.\./}{};
        push @to, $target;
    }
    $js{$file} = \@to;
}
ok(scalar(keys %js) > 5, 'the web app has its modules') or diag(join ', ', keys %js);
my @circle = find_circle(\%js);
ok(!@circle, 'no circle among the modules of html/js/')
    or diag('circle: ' . join(' -> ', @circle));

# sizes a reader can take in
for my $file (sort glob('ngx_recovery/*.c pg_recovery/*.c parse/*.c')) {
    my @lines = split /\n/, slurp($file), -1;
    cmp_ok(scalar @lines, '<=', 900, "$file is at most 900 lines");
    my ($name, $start, @long);
    for my $n (0 .. $#lines) {
        if ($lines[$n] =~ /^([A-Za-z_]\w*)\(/ && $lines[$n] !~ /;\s*$/) {
            ($name, $start) = ($1, $n);
        } elsif ($name && $lines[$n] eq '}') {
            push @long, "$name (" . ($n - $start) . ' lines)' if $n - $start > 150;
            undef $name;
        }
    }
    ok(!@long, "$file has no function over 150 lines") or diag(join ', ', @long);
}

# each SQL function, procedure, table and view: defined in one source file
my (%where, @twice);
for my $file (sort(glob('sql/src/*.sql'), glob('sql/src/*/*.sql'))) {
    my $text = slurp($file);
    $text =~ s/\$(\w*)\$.*?\$\1\$//gs;    # bodies may mention CREATE too
    while ($text =~ /^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TABLE|VIEW|TYPE)\s+(\w+)\s*(\(([^()]|\([^()]*\))*\))?/mgi) {
        my ($kind, $name, $args) = (uc $1, $2, $3 // '');
        # overloads differ by their arguments: count those a caller passes
        my $key = "$kind $name";
        if ($kind eq 'FUNCTION' || $kind eq 'PROCEDURE') {
            my @in = grep { /\S/ && !/^\s*OUT\s/i } split /,(?![^()]*\))/, substr($args, 1, -1);
            $key .= '/' . scalar(@in);
        }
        push @twice, "$key in $where{$key} and $file" if $where{$key};
        $where{$key} = $file;
    }
}
cmp_ok(scalar(keys %where), '>', 150, 'sql/src/ defines the extension\'s objects');
ok(!@twice, 'each is defined in one file of sql/src/ only') or diag(join "\n", @twice);

done_testing();
