#!/bin/sh
# The runner image's entrypoint (run by tini as PID 1): installs the CLI bundle when one is configured,
# then becomes the runner. The bundle is checked by `edgeshell-runner install-bundle`: HTTPS from an
# allowed host only, size cap, SHA-256 allowlist, safe extraction. Any refusal stops the container with
# the reason on stderr; nothing is run from a bundle that failed a check.
#
#   EDGESHELL_BUNDLE_URL      https URL of a .tar or .tar.gz bundle (optional)
#   EDGESHELL_BUNDLE_HOSTS    allowed hosts, comma-separated (host, or host:port)
#   EDGESHELL_BUNDLE_SHA256   allowed SHA-256 digests, comma-separated
#   EDGESHELL_BUNDLE_MAX_MB   download cap (default 256)
#   EDGESHELL_BUNDLE_DIR      where it goes (default $EDGESHELL_WORKDIR/.bundle); its bin/ joins PATH
set -eu

if [ -n "${EDGESHELL_BUNDLE_URL:-}" ]; then
    dest="${EDGESHELL_BUNDLE_DIR:-${EDGESHELL_WORKDIR:-/work}/.bundle}"
    edgeshell-runner install-bundle "$EDGESHELL_BUNDLE_URL" "$dest"
    # The runner hands its PATH to the session's program.
    PATH="$dest/bin:$PATH"
    export PATH
fi

exec edgeshell-runner "$@"
