#!/usr/bin/env bash
# with-progress.sh WHAT CMD...: runs CMD and, while it runs, says WHAT with the time taken every
# 20 s on stderr (hack/progress.sh), so a long first build is never silent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROGRESS_PREFIX=${PROGRESS_PREFIX:-build}
# shellcheck source=hack/progress.sh
source "$ROOT/hack/progress.sh"
what=$1
shift
step "$what" "$@"
