# speechkd: `make demo` and `make test` work on a fresh Debian machine (they install first).
SHELL := /bin/bash
VENV := tools/venv
PY := $(VENV)/bin/python
PRESET ?= demo
NJ ?= 2

.PHONY: install install-espnet demo test test-fast clean-demo help

help:
	@echo "make demo   install, then run egs/mini_en/tts1 (preset $(PRESET)) and print where the results are"
	@echo "make test   install (with the ESPnet extra, tools/install_espnet.sh), then run the test suite"

install:
	@bash tools/install.sh

# The optional ESPnet extra (ESPnet2 TTS code, pysptk, fastdtw), installed without ESPnet's pins;
# the interop tests need it and skip, saying why, without it.
install-espnet: install
	@bash tools/install_espnet.sh

demo: install
	cd egs/mini_en/tts1 && ./run.sh --preset $(PRESET) --nj $(NJ)
	@echo
	@echo "== speechkd demo finished (preset: $(PRESET); 'make demo PRESET=quality' runs the bigger one) =="
	@echo "data dirs:        egs/mini_en/tts1/data/{train,dev,test}"
	@echo "features:         egs/mini_en/tts1/dump/feats/"
	@echo "results table:    $(CURDIR)/egs/mini_en/tts1/exp/eval/results.md"
	@echo "listening page:   file://$(CURDIR)/egs/mini_en/tts1/exp/listen/index.html"
	@echo "stage logs:       egs/mini_en/tts1/exp/log/"
	@echo "not in the demo preset (one call each, from egs/mini_en/tts1):"
	@echo "  ./run.sh --stage 7 --stop_stage 8   diffusion teacher + progressive distillation"
	@echo "  ./run.sh --stage 9 --stop_stage 9   neural vocoder (Vocos-like), then ./run.sh --stage 10 --force true"

# two workers (pytest-xdist; one per core here), each test module whole on one of them (tests/conftest.py);
# the 20 slowest tests are listed at the end (what to trim when the suite outgrows its ~6 minutes)
test: install-espnet
	$(VENV)/bin/pytest -q -n auto --dist loadgroup --durations=20

test-fast: install-espnet
	$(VENV)/bin/pytest -q -n auto --dist loadgroup -m "not slow"

clean-demo:
	rm -rf egs/*/*/data egs/*/*/dump egs/*/*/exp
