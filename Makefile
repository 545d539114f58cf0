# weaksup: `make demo` runs the EmojiGram experiment end to end; `make test` runs the tests.
# Both do all set-up first (Debian data packages, the virtualenv, WordNet).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.weaksup-installed
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=

# Debian packages that carry the data the project uses (WordNet 3.0, emoji artwork and
# annotations for the EmojiGram corpus).
DEB_PACKAGES := wordnet-base wordnet-sense-index fonts-noto-color-emoji ruby-gemojione \
                fonts-symbola unicode-cldr-core unicode-data

.PHONY: setup debs venv data test demo bench clean

setup: debs venv data

debs:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	      || { echo "setup: apt-get install$$missing failed" >&2; exit 1; }; \
	  else \
	    echo "setup: missing Debian packages:$$missing" >&2; \
	    echo "setup: install them with: sudo apt-get install$$missing" >&2; \
	    exit 1; \
	  fi; \
	fi

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Lays WordNet 3.0 out as an NLTK corpus and builds the compiled index (cached; seconds when present).
data: venv
	$(PY) -m weaksup wordnet install

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) -m weaksup demo --workdir $(DEMO_DIR)

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data runs build *.egg-info
