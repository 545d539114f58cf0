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
# annotations for the EmojiGram corpus), and the compiler and libjpeg-turbo headers the region
# JPEG decoder (weaksup/native/jpeg_region.c) builds with.
DEB_PACKAGES := wordnet-base wordnet-sense-index fonts-noto-color-emoji ruby-gemojione \
                fonts-symbola unicode-cldr-core unicode-data gcc libjpeg62-turbo-dev

.PHONY: setup debs venv data test demo ablations bench clean

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
# Also compiles the region JPEG decoder into the cache (keyed by its source's hash).
data: venv
	$(PY) -m weaksup wordnet install
	$(PY) -m weaksup jpeg build

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) -m weaksup demo --workdir $(DEMO_DIR)

# The demo's ablations (configs/ablation_*.py) beside a baseline run of the demo config, each
# in ABLATION_DIR/NAME; they share the demo's corpus and target. ABLATION_ARGS are appended
# to every config's arguments, e.g. ABLATION_ARGS=examples=60000,protocols=linear for a
# shorter schedule and the linear probe only. notebooks/03 plots them:
# WEAKSUP_RUN_DIR=runs/ablations.
ABLATION_DIR ?= runs/ablations
ABLATION_ARGS ?=
ABLATIONS := baseline=configs/emojigram_demo.py \
             vocab_raw=configs/ablation_vocab_raw.py \
             vocab_aligned=configs/emojigram_demo.py:aligned \
             natural_resampling=configs/ablation_natural_resampling.py \
             label_noise=configs/ablation_label_noise.py \
             size_small=configs/ablation_corpus_size.py:size=small \
             size_medium=configs/ablation_corpus_size.py:size=medium

ablations: setup
	@set -e; for a in $(ABLATIONS); do \
	  name=$${a%%=*}; spec=$${a#*=}; \
	  if [ -n "$(ABLATION_ARGS)" ]; then \
	    case "$$spec" in *:*) spec="$$spec,$(ABLATION_ARGS)";; *) spec="$$spec:$(ABLATION_ARGS)";; esac; \
	  fi; \
	  echo "== ablation $$name: $$spec"; \
	  $(PY) -m weaksup demo --config "$$spec" --workdir $(ABLATION_DIR)/$$name; \
	done

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data runs build *.egg-info
