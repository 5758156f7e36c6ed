#!/bin/sh
# Installs what descent needs from Debian's packages, only if something is missing.
# LLVM: the newest of 19 and the default llvm-dev the archive has; CMake picks the newest
# installed LLVM (14 or newer) through its CMake config.
set -eu
pkgs="cmake make gcc pkg-config libyaml-dev libcunit1-dev zlib1g-dev dataset-fashion-mnist"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have_llvm() { ls /usr/lib/llvm-*/lib/cmake/llvm/LLVMConfig.cmake >/dev/null 2>&1; }
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
llvm=""
if ! dpkg-query -W -f='${Status}' llvm-19-dev 2>/dev/null | grep -q "ok installed"; then
	llvm=llvm-19-dev
fi
[ -z "$missing$llvm" ] && exit 0
echo "installing:$missing $llvm"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
if [ -n "$llvm" ] && ! as_root apt-get install -y -qq --no-install-recommends $llvm >/dev/null; then
	have_llvm || missing="$missing llvm-dev"
fi
[ -n "$missing" ] && as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
exit 0
