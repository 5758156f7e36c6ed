#!/bin/sh
# Golden IR: what `descent ir` prints for a few models at chosen stages is checked in
# under tests/golden/; any change to it shows up in review.
#   tests/golden.sh BUILD_DIR           compare (run from the source directory)
#   UPDATE_GOLDEN=1 tests/golden.sh BUILD_DIR   rewrite the files after a deliberate change
set -u
descent=$1/descent
fail=0
while read -r name model args; do
	case "$name" in '#'* | '') continue ;; esac
	want=tests/golden/$name.txt
	got=$(mktemp)
	# shellcheck disable=SC2086
	"$descent" ir "$model" $args >"$got" 2>&1
	if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
		cp "$got" "$want"
		echo "updated $want"
	elif ! diff -u "$want" "$got"; then
		echo "golden: $name differs (UPDATE_GOLDEN=1 $0 $1 to accept)"
		fail=1
	fi
	rm -f "$got"
done <tests/golden/list
[ $fail = 0 ] && echo "golden: all match"
exit $fail
