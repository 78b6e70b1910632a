# Millwright — the two commands a newcomer runs:
#   make demo   the whole node on embedded defaults (nothing to configure)
#   make test   the whole test suite against real Mosquitto, VictoriaMetrics and the real model
.PHONY: demo test deps model build release bench clean

DEMO_SECONDS ?= 90

demo: model release
	./target/release/millwright demo --duration-s $(DEMO_SECONDS)

test:
	./scripts/test.sh

deps:
	./scripts/install-deps.sh

model:
	./scripts/fetch-model.sh

build:
	cargo build --workspace

release:
	cargo build --release -p millwright

bench: release deps
	./target/release/millwright bench ingest --mode batch --readings 2000000 --batch 100
	./target/release/millwright bench ingest --mode single --readings 500000

clean:
	cargo clean
