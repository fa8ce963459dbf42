#!/usr/bin/env bash
# Usage: clean-tree.sh COMMAND [ARG...]
#
# Runs COMMAND, then fails if it left the git working tree dirty: any
# entry of `git status --porcelain` that was not there before (on CI's clean
# clone: any entry at all) is printed and the exit status is 1. Tests must
# write only to temporary directories; a stray data directory, event log or
# binary is caught here. Outside a git checkout COMMAND just runs.
set -euo pipefail

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	echo "clean-tree: not a git checkout; not checking that the tests leave the tree clean" >&2
	exec "$@"
fi
status() { git status --porcelain --untracked-files=all | sort; }
before=$(status)
"$@"
left=$(comm -13 <(printf '%s\n' "$before") <(status) | sed '/^$/d')
if [[ -n $left ]]; then
	printf 'clean-tree: the tests left the working tree dirty (git status --porcelain):\n%s\n' "$left" >&2
	exit 1
fi
