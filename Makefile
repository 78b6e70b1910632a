# Millwright — the two commands a newcomer runs:
#   make demo   the whole node on embedded defaults (nothing to configure)
#   make test   the whole test suite against real Mosquitto, VictoriaMetrics and the real model
# `make lean` builds the production node alone: no demo, no benchmarks (Cargo features off).
.PHONY: demo test deps model build release lean bench clean dashboards fuzz soak

# Cargo features of the `millwright` binary that `make demo` and `make bench` build with.
FEATURES ?= demo,bench

DEMO_SECONDS ?= 90

demo: model release
	./target/release/millwright demo --duration-s $(DEMO_SECONDS)

test:
	./scripts/test.sh

deps:
	./scripts/install-deps.sh

# Regenerates dashboards/ from its one description (tests/tests/dashboards/spec.rs).
dashboards:
	cargo build -p millwright --features $(FEATURES)
	MILLWRIGHT_BLESS=1 cargo test -p millwright-e2e --test dashboards committed_dashboards

model:
	./scripts/fetch-model.sh

build:
	cargo build --workspace

release:
	cargo build --release -p millwright --features $(FEATURES)

lean:
	cargo build --release -p millwright --no-default-features

bench: release deps
	./target/release/millwright bench ingest --mode batch --readings 2000000 --batch 100
	./target/release/millwright bench ingest --mode single --readings 500000

# Longer fuzzing runs (fuzz/README.md): each cargo-fuzz target for FUZZ_SECONDS, with
# AddressSanitizer. Uses a nightly toolchain when rustup has one; otherwise the stable compiler
# with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only -Z flags). Installs cargo-fuzz if
# missing. `make test` runs the same entry points as bounded property tests.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= json_codec line_protocol sparkplug modbus_decode gguf config csv
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd fuzz && if rustup toolchain list 2>/dev/null | grep -q nightly; then tc=+nightly; else tc=; export RUSTC_BOOTSTRAP=1; fi; \
	for t in $(FUZZ_TARGETS); do cargo $$tc fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# 10 minutes of mixed MQTT and Modbus load with a broker restart, a database outage and a dead
# device (SOAK_SECONDS to change); zero MQTT readings lost, RSS at start and end. Not in `make test`.
soak: release deps
	cargo build --release -p millwright-sim
	bash scripts/soak.sh

clean:
	cargo clean
