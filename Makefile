# Thin wrapper over CMake: `make demo` trains the default model, `make test` runs the suite.
BUILD ?= build
TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
MODEL ?= models/fashion_mlp.yaml
CMAKE_FLAGS ?=

.PHONY: all deps build demo test clean

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/descent train $(MODEL)

test: build
	cd $(BUILD) && ctest --output-on-failure

clean:
	rm -rf $(BUILD)
