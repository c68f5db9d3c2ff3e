# boston-housing-kfp — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
IMAGE  ?= ghcr.io/boston-housing-kfp/boston-housing:0.1.0
PREDICTOR_IMAGE ?= ghcr.io/boston-housing-kfp/boston-housing-predictor:0.1.0
YAML   ?= boston_housing_pipeline.yaml

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast mutate lint compile predict down clean bench notebook image push wheelhouse base-image image-local image-component image-predictor

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,notebook]'
	@touch $@

install: $(STAMP) ## create .venv and install the project (pinned by constraints.txt)

run: $(STAMP) ## run the whole pipeline locally, deploy the model, print a live prediction
	$(BIN)/boston-pipeline run

test: $(STAMP) ## lint, check the import layers (setup.cfg [importlinter]), then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## the fast tier: pure code and KFP step functions, no servers, no TensorFlow training (< 90 s)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow and not server and not container"

MUTATE_CHILDREN ?= 2
mutate: $(STAMP) ## mutation testing: mutmut over the pure modules, the fast tier as tests; prints each module's score
	$(BIN)/python bench/mutation.py run --max-children $(MUTATE_CHILDREN)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

compile: $(STAMP) ## write the pipeline IR YAML to $(YAML) (IMAGE=… to choose the component image)
	$(BIN)/boston-pipeline compile -o $(YAML) --image $(IMAGE)

notebook: $(STAMP) ## JupyterLab on 127.0.0.1 in notebooks/, with the project's kernel (the venv's python3)
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

down: $(STAMP) ## stop the local predictor and the embedded S3 store
	$(BIN)/boston-pipeline down

bench: $(STAMP) ## pipeline benchmark: local pipeline vs a one-process script, cold vs cached
	$(BIN)/python bench/pipeline.py

clean: ## stop local services, remove build outputs and caches (keeps .venv)
	-test -x $(BIN)/boston-pipeline && $(BIN)/boston-pipeline down
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache mutants
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

DOCKER ?= docker
# Base of both images: python:3.11-slim for users; `make image-local` uses a stand-in built from Debian packages.
BASE_IMAGE ?= python:3.11-slim
LOCAL_BASE_IMAGE ?= localhost/boston-housing-kfp/base:bookworm
WHEELHOUSE ?= build/wheelhouse
VERSION  := $(shell sed -n 's/^version = //p' setup.cfg)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell test -z "$$(git status --porcelain 2>/dev/null)" || echo -dirty)
SOURCE   ?= https://github.com/boston-housing-kfp/boston-housing-kfp
PROJECT_FILES := setup.cfg pyproject.toml README.md LICENSE \
	$(shell find components pipeline boston_predictor -type f -not -path '*/__pycache__/*' 2>/dev/null)
IMAGE_ARGS = --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) \
	--build-arg REVISION=$(REVISION) --build-arg SOURCE=$(SOURCE)

# The wheelhouse: every wheel the images install, fetched by the host's pip (pinned by constraints.txt), so image
# builds need no network and rebuild from cache. serve/ = the predictor's closure; steps/ = the rest of the
# components' closure; project/ = this project's wheel (reproducible: SOURCE_DATE_EPOCH from the last commit).
$(WHEELHOUSE)/serve/.filled: constraints.txt kserve/requirements-predictor.txt | $(STAMP)
	rm -rf $(@D) && mkdir -p $(@D)
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(@D) -c constraints.txt -r kserve/requirements-predictor.txt
	@touch $@

$(WHEELHOUSE)/steps/.filled: constraints.txt setup.cfg $(WHEELHOUSE)/serve/.filled
	rm -rf $(@D) && mkdir -p $(@D)
	$(BIN)/python -c "import configparser as c; p = c.ConfigParser(); p.read('setup.cfg'); \
		print(p['options']['install_requires'].strip())" > $(WHEELHOUSE)/requirements-steps.txt
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(@D) -c constraints.txt --find-links $(WHEELHOUSE)/serve \
		-r $(WHEELHOUSE)/requirements-steps.txt
	cd $(@D) && for wheel in *.whl; do if [ -e ../serve/$$wheel ]; then rm $$wheel; fi; done
	@touch $@

$(WHEELHOUSE)/project/.filled: $(PROJECT_FILES) | $(STAMP)
	rm -rf $(@D) build/lib build/bdist.* && mkdir -p $(@D)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
		$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(@D) .
	@touch $@

wheelhouse: $(WHEELHOUSE)/serve/.filled $(WHEELHOUSE)/steps/.filled $(WHEELHOUSE)/project/.filled ## fill build/wheelhouse from constraints.txt (host pip; images install it with --no-index)

base-image: ## build the local stand-in base $(LOCAL_BASE_IMAGE) from Debian packages (root; no registry needed)
	DOCKER=$(DOCKER) kserve/base-image.sh $(LOCAL_BASE_IMAGE)

image: image-component image-predictor ## build the component and predictor images (BASE_IMAGE=…, IMAGE=…, PREDICTOR_IMAGE=…)

# Two targets, so `make -j2 image` builds both at once (the tests do).
image-component image-predictor: image-%: wheelhouse
	$(DOCKER) build --quiet -f kserve/Dockerfile.$* $(IMAGE_ARGS) -t $(if $(filter component,$*),$(IMAGE),$(PREDICTOR_IMAGE)) .

image-local: base-image wheelhouse ## `make image` on the local base: for machines that cannot pull python:3.11-slim
	$(MAKE) image BASE_IMAGE=$(LOCAL_BASE_IMAGE)

push: image ## push both images; then `make compile IMAGE=…` points the pipeline at yours
	$(DOCKER) push $(IMAGE)
	$(DOCKER) push $(PREDICTOR_IMAGE)
