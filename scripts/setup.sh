# Sourced by scripts/test.sh: installs what the tests need on a fresh machine, once.
# Debian packages need root (CI and these machines run as root); elsewhere install them yourself.
need_pkgs=()
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need_pkgs[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "warning: missing ${need_pkgs[*]}; browser and proxy tests will skip" >&2
  fi
fi
if [ -f e2e/package.json ] && [ ! -d e2e/node_modules ]; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
