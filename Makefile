# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
BUILD      ?= build/release
ASAN_BUILD ?= build/asan
# The release build is profile-guided (scripts/pgo.sh: an instrumented build, trained under the
# bench loads, then the real one). PGO=0 skips that for quicker development builds.
PGO        ?= 1
PGO_DIR    ?= build/pgo
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G Ninja

.PHONY: deps build demo mesh-down test test-asan bench clean format

deps:
	@scripts/install-deps.sh

build: deps
	@mode=off; \
	if [ "$(PGO)" = 1 ]; then mode=$$(scripts/pgo.sh --jobs $(JOBS) $(PGO_DIR)) || exit 1; fi; \
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DOUTRIGGER_PGO=$$mode \
	  -DOUTRIGGER_PGO_DIR=$(abspath $(PGO_DIR))/data >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@examples/mesh/mesh.sh demo --bin $(BUILD)/proxy/outrigger

mesh-down:
	@examples/mesh/mesh.sh down --all

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

$(ASAN_BUILD)/build.ninja:
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DOUTRIGGER_SANITIZE=ON -DOUTRIGGER_BENCH=OFF >/dev/null

test-asan: deps $(ASAN_BUILD)/build.ninja
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	@bench/run.sh $(BUILD)/proxy/outrigger

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	@rm -rf build
