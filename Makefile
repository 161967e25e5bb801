# Two commands do all the set-up on a fresh Debian 12 machine:
#   make serve   -- venv + install + run the service on its embedded defaults
#   make test    -- venv + install + Debian test tools (when root) + lint + type check + tests
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

# `make serve` keeps its state inside the checkout so a demo never touches /var/lib
# (only for serve: the tests must not see these).
SERVE_ENV := BOOTFLEET_DATA_DIR=$${BOOTFLEET_DATA_DIR:-$(CURDIR)/var} \
             BOOTFLEET_IMAGES_DIR=$${BOOTFLEET_IMAGES_DIR:-$(CURDIR)/images}

.PHONY: serve test lint debs clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,postgres]'
	touch $@

serve: $(STAMP)
	$(SERVE_ENV) $(BIN)/bootfleet serve

debs:
	@.ci/install-debs

lint: $(STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/ruff format --check server tests bench
	$(BIN)/mypy

test: $(STAMP) debs lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info

# Bootfleet against tftp-hpa, dnsmasq and nginx on loopback; writes bench/results/<date>.md
.PHONY: bench
bench:
	bench/run
