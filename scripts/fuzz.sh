#!/bin/sh
# Fuzzes the model front end and the data loaders: builds the libFuzzer harnesses of
# tests/fuzz with clang (ASan + UBSan + coverage) in build-fuzz/, then runs both at once
# for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS]
#
# Seeds: tests/fuzz/corpus/<harness>/ (and models/ for fuzz_model), which also hold the
# inputs of bugs found before, so every run checks them again. What the fuzzers learn
# is kept in build-fuzz/corpus/<harness>/ for the next run. Exits non-zero if either
# harness crashed, hung, leaked or tripped a sanitizer; the input that did it is kept
# in build-fuzz/crashes/<harness>/ (add it to the seeds once the bug is fixed), and the
# log in build-fuzz/<harness>.log. Reproduce with
#   build-fuzz/tests/fuzz/<harness> build-fuzz/crashes/<harness>/crash-...
set -eu
secs=${1:-60}
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/build-fuzz
if ! command -v clang >/dev/null; then
	echo "fuzz.sh: needs clang with libFuzzer (apt-get install clang)" >&2
	exit 2
fi
cmake -S . -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDESCENT_FUZZ=ON >/dev/null
cmake --build "$out" -j "$(nproc)" --target fuzz_model fuzz_data >/dev/null

# run HARNESS MAX_LEN [libFuzzer options and more seed directories...]; the first
# directory is the one libFuzzer adds new inputs to
run() {
	name=$1 maxlen=$2
	shift 2
	mkdir -p "$out/corpus/$name" "$out/crashes/$name"
	if "$out/tests/fuzz/$name" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/crashes/$name/" \
		"$out/corpus/$name" "$root/tests/fuzz/corpus/$name" "$@" >"$out/$name.log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log")
		echo "fuzz.sh: $name: no findings in $secs s ($execs inputs)"
	else
		echo "fuzz.sh: $name FAILED; input kept in $out/crashes/$name/, log:" >&2
		grep -v '^#[0-9]' "$out/$name.log" | tail -60 >&2
		return 1
	fi
}

run fuzz_model 4096 -dict="$root/tests/fuzz/yaml.dict" "$root/models" &
model=$!
run fuzz_data 8192 &
data=$!
status=0
wait $model || status=1
wait $data || status=1
exit $status
