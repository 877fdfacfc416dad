# postgres-service: PostgreSQL for Cloud Foundry.
#   make build   the outputs, under build/: the broker's wheel and sdist, the BOSH release tarball,
#                the Ops Manager tile and the rendered deployment manifests
#   make test    every test: lint, then pytest (real PostgreSQL, pg_auto_failover, compiled packages)
#   make run     a throwaway PostgreSQL cluster and the broker on 127.0.0.1:$${PORT:-8080}
#   make bench   benchmarks, each figure beside a baseline measured in the same run

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all build test lint format run bench system-packages lock clean

all: build

$(STAMP): requirements/dev.txt requirements/dev.lock src/broker/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check \
		-c requirements/dev.lock -r requirements/dev.txt -e src/broker
	touch $@

venv: $(STAMP)

system-packages:
	@$(PYTHON) scripts/system_packages.py

build: $(STAMP)
	rm -rf build/broker
	$(BIN)/python -m build --no-isolation --sdist --wheel --outdir build/broker src/broker
	@ls -1 build/broker
	$(BIN)/python -m scripts.release blobs fetch
	$(BIN)/python -m scripts.release create $(if $(VERSION),--version $(VERSION))
	$(BIN)/python -m scripts.tile build $(if $(VERSION),--release build/postgres-service-$(VERSION).tgz)
	$(MAKE) --no-print-directory manifests

.PHONY: blobs release final-release manifests tile

# The Ops Manager tile, from tile.yml and the release tarball in build/ (RELEASE=... picks another):
# build/postgres-service-<version>.pivotal. bpm's release tarball comes from BPM_RELEASE_TARBALL;
# without it the tile is named ...-without-bpm.pivotal and Ops Manager will not import it.
tile: $(STAMP)
	$(BIN)/python -m scripts.tile build $(if $(RELEASE),--release $(RELEASE))

# The deployment manifests, one per variant, rendered from manifests/ into build/manifests/.
manifests: $(STAMP)
	$(BIN)/python -m scripts.manifests render

# The blobs pinned in config/blobs.yml, fetched from the package registries into blobs/ and verified.
blobs: $(STAMP)
	$(BIN)/python -m scripts.release blobs fetch

# The BOSH release tarball alone: build/postgres-service-<version>.tgz (VERSION=... overrides).
release: blobs
	$(BIN)/python -m scripts.release create $(if $(VERSION),--version $(VERSION))

# A final release: .final_builds/ and releases/ updated, new blobs and archives uploaded to the
# S3 blobstore of config/final.yml (credentials: config/private.yml or AWS_* environment variables).
final-release: blobs
	$(BIN)/python -m scripts.release create --final $(if $(VERSION),--version $(VERSION))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m scripts.pipeline

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: system-packages lint
	$(BIN)/pytest

run: system-packages $(STAMP)
	$(BIN)/postgres-service-broker dev

bench: system-packages blobs
	$(BIN)/python -m benchmarks

# Re-resolve the pinned versions (needs the package index).
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install --quiet -r requirements/dev.txt -e src/broker
	( echo "# Pinned versions of every Python package of the dev environment."; \
	  echo "# Regenerate: make lock"; \
	  .cache/lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip==' ) > requirements/dev.lock

clean:
	rm -rf build .cache $(VENV) .pytest_cache .ruff_cache
