#!/bin/sh
# descent against PyTorch 1.13 on the survey models (bench/survey/*.yaml: pooling, batch
# and layer norm, dropout, embeddings, depthwise and strided convolutions), one thread,
# alternating as bench/run.sh does: each round's steps/s and ratio, then each model's
# median. Not targets: a map of where descent stands beyond the benchmark models.
#   sh bench/survey.sh [ROUNDS] [MODEL...]      (from the source directory, after make)
set -eu
rounds=${1:-3}
[ $# -gt 0 ] && shift
descent=${DESCENT:-build/descent}
. bench/torch_env.sh
models=${*:-$(ls bench/survey/*.yaml | sed 's|.*/||; s|\.yaml$||')}
summary=""
for model in $models; do
	"$descent" bench "bench/survey/$model.yaml" --steps 5 >/dev/null # into the cache
	ratios=""
	r=1
	while [ $r -le "$rounds" ]; do
		d=$("$descent" bench "bench/survey/$model.yaml" | sed -n 's/^ *\([0-9.]*\) steps\/s.*/\1/p')
		t=$(/usr/bin/python3 bench/survey/torch_survey.py "$model" | sed -n 's/^\([0-9.]*\) steps\/s/\1/p')
		ratio=$(echo "$d $t" | awk '{printf "%.2f", $1 / $2}')
		ratios="$ratios$ratio
"
		echo "$model round $r: descent $d steps/s, torch $t steps/s, ratio $ratio"
		r=$((r + 1))
	done
	summary="$summary$model: median ratio $(printf '%s' "$ratios" | median) over $rounds rounds
"
done
printf '%s' "$summary"
