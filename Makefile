# boston-housing-kfp — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
IMAGE  ?= ghcr.io/boston-housing-kfp/boston-housing:0.1.0
PREDICTOR_IMAGE ?= ghcr.io/boston-housing-kfp/boston-housing-predictor:0.1.0
YAML   ?= boston_housing_pipeline.yaml

.DEFAULT_GOAL := help
.PHONY: help install run test lint compile predict down clean bench notebook image push

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
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

DOCKER ?= docker

image: ## build the component and predictor images (IMAGE=…, PREDICTOR_IMAGE=…; kserve/Dockerfile.*)
	$(DOCKER) build -f kserve/Dockerfile.component -t $(IMAGE) .
	$(DOCKER) build -f kserve/Dockerfile.predictor -t $(PREDICTOR_IMAGE) .

push: image ## push both images; then `make compile IMAGE=…` points the pipeline at yours
	$(DOCKER) push $(IMAGE)
	$(DOCKER) push $(PREDICTOR_IMAGE)
