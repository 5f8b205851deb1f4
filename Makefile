# The two commands: `make demo` and `make test`. Both create .venv when it is missing and
# install flareseq into it first; the stamp file re-installs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: demo test lint install clean sanitize

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet -e ".[test,spark]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flareseq.demo --out $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# AddressSanitizer + UndefinedBehaviorSanitizer over the two C extensions: builds them
# instrumented into $(SAN_DIR) (a copy of the package that shadows src/ on PYTHONPATH), runs
# the scanner's fuzz and equality tests and the LSTM loop's equality tests with the sanitizer
# runtimes preloaded, and fails on any sanitizer report or test failure. FUZZ_EXAMPLES: cases
# per fuzz property (300, as in the suite); FUZZ_CASES > 0 adds benchmarks/fuzz_scan.py.
SAN_DIR := build/sanitize
SAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -fno-trapping-math
SAN_TESTS ?= tests/test_scan_fuzz.py tests/test_scan.py tests/test_lstm_kernel.py
FUZZ_EXAMPLES ?= 300
FUZZ_CASES ?= 0

sanitize: $(STAMP)
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR) && cp -r src/flareseq $(SAN_DIR)/ && rm -f $(SAN_DIR)/flareseq/*.so
	suffix=$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))") && \
	include=$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['include'])") && \
	for ext in _scan _lstm; do \
	  $(CC) -shared -fPIC $(SAN_CFLAGS) -I$$include src/flareseq/$$ext.c -o $(SAN_DIR)/flareseq/$$ext$$suffix -lpthread \
	  || exit 1; \
	done
	export LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  PYTHONMALLOC=malloc PYTHONPATH=$(SAN_DIR) FLARESEQ_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES); \
	status=0; { \
	  $(BIN)/python -c "import flareseq._scan as s, flareseq._lstm as l; \
	    assert all('$(SAN_DIR)' in m.__file__ for m in (s, l)), 'not the instrumented build'; \
	    print('instrumented:', s.__file__, l.__file__)" && \
	  $(BIN)/python -m pytest -p no:xdist -p no:cacheprovider -q $(SAN_TESTS) && \
	  if [ "$(FUZZ_CASES)" -gt 0 ]; then $(BIN)/python benchmarks/fuzz_scan.py --cases $(FUZZ_CASES); fi; \
	} > $(SAN_DIR)/report.txt 2>&1 || status=$$?; \
	cat $(SAN_DIR)/report.txt; \
	if grep -qE "ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" $(SAN_DIR)/report.txt; then \
	  echo "make sanitize: FAILED, a sanitizer report is above"; exit 1; fi; \
	if [ $$status -ne 0 ]; then echo "make sanitize: FAILED (exit $$status)"; exit $$status; fi; \
	echo "make sanitize: no sanitizer report; every test passed"

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
