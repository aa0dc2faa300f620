# shellcheck shell=bash
# Helpers shared by scripts/up, scripts/down, scripts/token, scripts/test and the other scripts:
# the one file they source. It sources the parts in scripts/lib/, each named after what it
# installs or starts (common.sh first: the paths, logging and waiting the others use).
# Source this file; do not run it. Every ensure_* / start_* function is idempotent:
# it checks first, says what it finds, and only acts when something is missing.

set -euo pipefail

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/postgres.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/postgres.sh"
# shellcheck source=scripts/lib/redis.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redis.sh"
# shellcheck source=scripts/lib/kafka.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"
# shellcheck source=scripts/lib/services.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
# shellcheck source=scripts/lib/web.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/web.sh"
# shellcheck source=scripts/lib/python.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/python.sh"
