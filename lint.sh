#!/usr/bin/env bash
# Formatting and import order belong to the pinned formatter (ruff, see the dev extra), not to review.
set -euo pipefail
cd "$(dirname "$0")"
ruff format .
ruff check --fix .
