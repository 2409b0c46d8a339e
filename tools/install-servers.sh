#!/bin/sh
# Install the FTP servers the tests run on loopback: vsftpd and ProFTPD, from Debian's packages,
# and libfaketime (Debian's faketime) for the test that steps the uploader's wall clock.
#
# Idempotent: does nothing when both are found. The two packages conflict with each other (both
# provide "ftp-server"), and an installed daemon may start as a service, so neither is installed
# system-wide: each .deb is unpacked into $DEST (default var/servers) and its libraries are
# installed with apt-get. The test fixtures look on PATH first (an apt-installed copy works too),
# then in $DEST. Without root or apt, it says what is missing and exits 0: the tests that need a
# server skip, naming it (and fail instead when CI=true).
set -eu
DEST=${1:-var/servers}

found() {  # found PACKAGE BINARY
    command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ] || [ -x "$DEST/$1/usr/sbin/$2" ]
}

missing=""
found vsftpd vsftpd || missing="$missing vsftpd"
found proftpd-core proftpd || missing="$missing proftpd-core"
faketime=""
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || faketime="faketime"
[ -z "$missing$faketime" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-servers: cannot install$missing $faketime (needs root and apt-get); the tests that need them will skip" >&2
    exit 0
fi
# A fresh machine has no package lists yet: without them apt-cache and apt-get find nothing.
apt-get update -qq >/dev/null
if [ -n "$faketime" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends faketime >/dev/null
    echo "install-servers: installed faketime"
fi
[ -z "$missing" ] && exit 0
libraries=$(for package in $missing; do
    apt-cache depends --no-recommends --no-suggests "$package" | awk '/^ *Depends: lib/ {print $2}'
done | sort -u)
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $libraries >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download user must be able to write here
for package in $missing; do
    (cd "$work" && apt-get download "$package" >/dev/null 2>&1)
    rm -rf "${DEST:?}/$package"
    mkdir -p "$DEST/$package"
    dpkg-deb -x "$work/${package}"_*.deb "$DEST/$package"
    echo "install-servers: unpacked $package into $DEST/$package"
done
