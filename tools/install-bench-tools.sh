#!/bin/sh
# Install what `make bench` compares the uploader with: lftp (Debian's package; `lftp mirror -R` and
# `lftp put` are the baselines of the throughput and hash rows) and iproute2 (`ip` and `tc`, for the
# tbf link row). The servers come from `make servers` (tools/install-servers.sh).
#
# Idempotent: does nothing when both are found. Without root or apt-get it says what is missing
# and exits 0: the bench then prints n/a for lftp's baselines (and says why in the table's notes),
# and the link row, which needs root anyway, skips.
set -eu

missing=""
command -v lftp >/dev/null 2>&1 || missing="$missing lftp"
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || missing="$missing iproute2"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-bench-tools: cannot install$missing (needs root and apt-get): lftp's baselines will read n/a;" \
        "install it (apt-get install$missing) and run make bench again for them" >&2
    exit 0
fi
# A fresh machine has no package lists yet: without them apt-get finds nothing.
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
echo "install-bench-tools: installed$missing"
