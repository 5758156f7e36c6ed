# Sourced by bench/run.sh and bench/survey.sh: checks that Debian's PyTorch is there and
# will run on OpenBLAS, one thread, with kernels for this CPU; defines median.
command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null || {
	echo "bench: needs Debian's python3-torch: apt-get install python3-torch" >&2
	exit 1
}
# Debian's torch uses whatever libblas.so.3 is selected; the anchor was measured with
# OpenBLAS, not the reference BLAS (10x slower)
if ! readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q openblas; then
	echo "bench: PyTorch would use the reference BLAS: apt-get install libopenblas0-pthread" >&2
	exit 1
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# OpenBLAS 0.3.21 (Debian 12) does not know recent CPUs (Sapphire and Emerald Rapids, for
# one) and falls back to its SSE3 kernels ("Prescott"), 5-7x slower than its AVX-512 ones:
# PyTorch would look slow for the wrong reason. Name the newest kernels it has for what
# this CPU supports (OPENBLAS_CORETYPE set by the caller wins).
core=$(OPENBLAS_VERBOSE=2 /usr/bin/python3 -c 'import torch' 2>&1 | sed -n 's/^Core: //p')
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$core" = Prescott ]; then
	if grep -qw avx512f /proc/cpuinfo; then
		export OPENBLAS_CORETYPE=SkylakeX
	elif grep -qw avx2 /proc/cpuinfo; then
		export OPENBLAS_CORETYPE=Haswell
	fi
fi
echo "torch: OpenBLAS detects this CPU as ${core:-?}, uses ${OPENBLAS_CORETYPE:-${core:-its default}} kernels"
# the median of the ratios given on standard input, one a line
median() {
	sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
