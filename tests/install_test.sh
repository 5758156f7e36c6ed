#!/bin/sh
# The installed package works the way the README says: cmake --install, then a user's
# program builds with one line, through find_package(descent) and through pkg-config.
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

# find_package
mkdir "$tmp/user"
cp "$src/examples/train_api.c" "$tmp/user/"
cat > "$tmp/user/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(user C)
find_package(descent REQUIRED)
add_executable(train_api train_api.c)
target_link_libraries(train_api PRIVATE descent::compiler)
set_target_properties(train_api PROPERTIES ENABLE_EXPORTS ON)
CM
cmake -S "$tmp/user" -B "$tmp/user/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/user/build" >/dev/null
"$tmp/user/build/train_api" "$src/models/fashion_mlp.yaml" \
	/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
	/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz 50 | grep -q "final loss"

# find_package for the runtime alone: no LLVM on its link line or in its rpath
mkdir "$tmp/rtuser"
cp "$src/examples/aot_train.c" "$tmp/rtuser/"
"$tmp/prefix/bin/descent" compile "$src/models/fashion_mlp.yaml" -o "$tmp/rtuser/mlp.o" \
	--header "$tmp/rtuser/mlp.h" --prefix model_ >/dev/null
cat > "$tmp/rtuser/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(rtuser C)
find_package(descent REQUIRED)
add_executable(aot aot_train.c mlp.o)
target_include_directories(aot PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(aot PRIVATE descent::runtime)
CM
cmake -S "$tmp/rtuser" -B "$tmp/rtuser/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/rtuser/build" >/dev/null
if readelf -d "$tmp/rtuser/build/aot" | grep -q llvm; then
	echo "install test: a runtime-only program has LLVM in its dynamic section" >&2
	exit 1
fi
"$tmp/rtuser/build/aot" /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
	/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz 10 | grep -q "aot: 10 steps"

# pkg-config: the runtime alone for an ahead-of-time object
"$tmp/prefix/bin/descent" compile "$src/models/fashion_mlp.yaml" -o "$tmp/mlp.o" \
	--header "$tmp/mlp.h" --prefix model_ >/dev/null
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" sh -c \
	"cc -I'$tmp' '$src/examples/aot_train.c' '$tmp/mlp.o' \$(pkg-config --cflags --libs descent-runtime) -o '$tmp/aot'"
"$tmp/aot" /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
	/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz 10 | grep -q "aot: 10 steps"
echo "install test: find_package and pkg-config consumers built and ran"
