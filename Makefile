# kiln — the commands the README gives. Every target installs what it needs.

CARGO ?= cargo
# One target directory for every build, test and benchmark: the AWS SDK crates
# are big, so nothing is compiled twice.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
# The emulator's virtual environment (scripts/emulator reads the same variable).
export KILN_VENV ?= $(CURDIR)/.venv

.PHONY: demo test lint tools infra-tools emulator-install emulator-start emulator-stop bench clean

# The ASL validator the offline state machine checks use (npm, project-local).
ASL_VALIDATOR := asl-validator@4.0.0

## demo: a whole build, locally, with the real state machine and Lambdas
demo: emulator-install
	$(CARGO) build --workspace --bins
	scripts/demo

## test: lint, then every test (unit, mocked, and against a fresh emulator per test)
test: emulator-install tools infra-tools lint
	$(CARGO) build --workspace --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

tools: .tools/node_modules/.bin/asl-validator

# cfn-lint, checkov and aws-sam-translator for the infra/ checks (their own
# virtual environment: checkov's pins do not mix with moto's).
infra-tools: .tools/infra/.installed

.tools/infra/.installed: scripts/requirements-infra.txt
	python3 -m venv .tools/infra
	.tools/infra/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-infra.txt
	touch $@

.tools/node_modules/.bin/asl-validator:
	npm install --silent --no-audit --no-fund --prefix .tools $(ASL_VALIDATOR)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

emulator-install:
	scripts/emulator install

emulator-start:
	scripts/emulator start

emulator-stop:
	scripts/emulator stop

## bench: cold start and size of each release Lambda against Python + boto3
FUNCTIONS := resolve-source launch-builder run-ssm-provision create-image test-image cleanup-build

bench: emulator-install
	$(CARGO) build --release $(addprefix -p ,$(FUNCTIONS))
	$(KILN_VENV)/bin/python bench/coldstart.py --target-dir $(CARGO_TARGET_DIR)/release

clean:
	$(CARGO) clean
	rm -rf .venv .emulator .tools
