#!/bin/bash
# Builds ngx_recovery as a dynamic module of Debian's nginx: configures a
# copy of the nginx build tree from nginx-dev with the packaged nginx's own
# flags plus --add-dynamic-module, then "make modules".  Output in build/.
#   SANITIZE=address  builds with AddressSanitizer (for the memory tests)
set -euo pipefail
cd "$(dirname "$0")/.."

repo=$(pwd)
build=$repo/build${SANITIZE:+-$SANITIZE}
src=$build/nginx-src
nginx_src=/usr/share/nginx/src

if [ ! -f "$nginx_src/conf_flags" ]; then
    echo "build-module: $nginx_src is missing: run 'make deps' as root" >&2
    exit 1
fi

cc_opt="-g -O2 -Wall -Wextra -Wno-unused-parameter -Werror"
ld_opt=""
if [ -n "${SANITIZE:-}" ]; then
    cc_opt="$cc_opt -O1 -fno-omit-frame-pointer -fsanitize=$SANITIZE"
    ld_opt="-fsanitize=$SANITIZE"
fi

# configure again only when the nginx tree or the addon file changed
stamp="$(cat "$nginx_src/conf_flags" config | md5sum | cut -c1-12)-${SANITIZE:-none}"
if [ ! -f "$build/nginx/Makefile" ] || [ "$(cat "$build/.configured" 2>/dev/null)" != "$stamp" ]; then
    echo "build-module: configuring against $(nginx -v 2>&1 | sed 's/.*: //')"
    rm -rf "$src" "$build/nginx"
    mkdir -p "$build"
    cp -r "$nginx_src" "$src"
    # shellcheck disable=SC1091
    source "$src/conf_flags"
    (cd "$src" && ./configure "${NGX_CONF_FLAGS[@]}" \
        --add-dynamic-module="$repo" --builddir="$build/nginx" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" >"$build/configure.log" 2>&1) || {
        echo "build-module: configure failed, see $build/configure.log" >&2
        tail -20 "$build/configure.log" >&2
        exit 1
    }
    echo "$stamp" > "$build/.configured"
fi

make -s -C "$src" -f "$build/nginx/Makefile" modules
# replace, never overwrite: a running nginx has the old file mapped
cp "$build/nginx/ngx_http_recovery_module.so" "$build/.module.so.new"
mv -f "$build/.module.so.new" "$build/ngx_http_recovery_module.so"
echo "build-module: $build/ngx_http_recovery_module.so"
