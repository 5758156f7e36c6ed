#!/bin/sh
# descent against PyTorch 1.13 (Debian's python3-torch) on the benchmark models of
# ../shared/bench/torch_anchor.py, one thread, alternating in one session so that both see
# the same machine: prints each round's steps/s, the ratio descent / torch, and the FMA
# peak descent bench measured just before (it moves with the machine's other load); then
# descent's 2 threads against 1 on the 512-wide MLP, and the Fashion-MNIST MLP's time to
# accuracy (5 epochs, one thread each).
#   sh bench/run.sh [ROUNDS]      (from the source directory, after make)
set -eu
rounds=${1:-3}
descent=${DESCENT:-build/descent}
. bench/torch_env.sh
summary=""
for model in mlp128 mlp512 lenet; do
	"$descent" bench "bench/$model.yaml" --steps 20 >/dev/null # compile once, into the cache
	ratios=""
	r=1
	while [ $r -le "$rounds" ]; do
		line=$("$descent" bench "bench/$model.yaml" | grep 'steps/s')
		d=$(echo "$line" | sed -n 's/^ *\([0-9.]*\) steps\/s.*/\1/p')
		peak=$(echo "$line" | sed -n 's/.* of \([0-9]*\) GFLOP\/s peak.*/\1/p')
		t=$(/usr/bin/python3 bench/torch_bench.py $model | sed -n 's/^\([0-9.]*\) steps\/s/\1/p')
		ratio=$(echo "$d $t" | awk '{printf "%.2f", $1 / $2}')
		ratios="$ratios$ratio
"
		echo "$model round $r: descent $d steps/s, torch $t steps/s, ratio $ratio (FMA peak measured now: $peak GFLOP/s)"
		r=$((r + 1))
	done
	case $model in mlp128) target=3 ;; mlp512) target=1.5 ;; *) target=2 ;; esac
	summary="$summary$model: median ratio $(printf '%s' "$ratios" | median) over $rounds rounds (target $target)
"
done
# two threads against one, descent alone (the same model, alternating)
ratios=""
r=1
while [ $r -le "$rounds" ]; do
	one=$("$descent" bench bench/mlp512.yaml --threads 1 | sed -n 's/^ *\([0-9.]*\) steps\/s.*/\1/p')
	two=$("$descent" bench bench/mlp512.yaml --threads 2 | sed -n 's/^ *\([0-9.]*\) steps\/s.*/\1/p')
	ratio=$(echo "$one $two" | awk '{printf "%.2f", $2 / $1}')
	ratios="$ratios$ratio
"
	echo "mlp512 threads round $r: 1 thread $one steps/s, 2 threads $two steps/s, ratio $ratio"
	r=$((r + 1))
done
summary="${summary}mlp512 2 threads / 1: median ratio $(printf '%s' "$ratios" | median) over $rounds rounds (target 1.8)
"
printf '%s' "$summary"
# time to accuracy: the Fashion-MNIST MLP, 5 epochs, one thread each (needs
# dataset-fashion-mnist)
if [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	d=$("$descent" train models/fashion_mlp.yaml --threads 1 | sed -n 's/^final test accuracy \([0-9.]*\) .* after \([0-9.]*\) s of training/\2 s to \1/p')
	t=$(/usr/bin/python3 bench/torch_bench.py fashion)
	echo "fashion 5 epochs: descent $d, torch $t"
fi
