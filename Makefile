# kiln — the commands the README gives. Every target installs what it needs.

CARGO ?= cargo
# One target directory for every build, test and benchmark: the AWS SDK crates
# are big, so nothing is compiled twice.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
# Each crate is compiled once per run: incremental compilation would only add
# its cache (1.4 GB of a 7.4 GB clean build) to the disk a fresh machine needs.
export CARGO_INCREMENTAL ?= 0
# The emulator's virtual environment (scripts/emulator reads the same variable).
export KILN_VENV ?= $(CURDIR)/.venv

.PHONY: demo test lint tools browser infra-tools deploy-tools deploy-build deploy emulator-install emulator-start emulator-stop bench clean

# The ASL validator the offline state machine checks use, and the driver of
# headless Chromium for the audit report's page (npm, project-local).
ASL_VALIDATOR := asl-validator@4.0.0
PLAYWRIGHT := playwright-core@1.65.1
# Debian's Chromium for the audit report test; installed as root (or with sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## demo: a whole build, locally, with the real state machine and Lambdas
demo: emulator-install
	$(CARGO) build --workspace --bins
	scripts/demo

## test: lint, then every test (unit, mocked, and against a fresh emulator per test)
# The workspace is compiled once for the lint and the tests: clippy-driver
# wraps rustc for the workspace's own crates (what `cargo clippy` does, in
# check mode, which would compile every AWS SDK crate once more), with the
# same lints denied as `make lint`; and the Lambdas are built with the tests
# in one invocation, so the SDK crates are compiled once, with the tests'
# features (test-util), not once for each.
CLIPPY_DRIVER := $(shell rustup which clippy-driver 2>/dev/null || echo clippy-driver)
LINTED_BUILD := RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ $(CARGO)

test: emulator-install tools browser infra-tools
	$(CARGO) fmt --all --check
	$(LINTED_BUILD) build --workspace --all-targets
	$(KILN_VENV)/bin/python -m unittest discover -s scripts/kiln_emulator/tests -t scripts
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(LINTED_BUILD) nextest run --workspace --no-fail-fast; \
	else \
		$(LINTED_BUILD) test --workspace --no-fail-fast; \
	fi

tools: .tools/node_modules/.bin/asl-validator .tools/node_modules/playwright-core/package.json

## deploy: build the functions for arm64 (SAM runs cargo-lambda, which
## cross-compiles with zig) and deploy the stack; the first run asks its
## questions (sam deploy --guided) and keeps the answers in
## infra/samconfig.toml, later runs deploy with them
DEPLOY_TOOLS := .tools/deploy
DEPLOY_PATH := $(CURDIR)/$(DEPLOY_TOOLS)/bin:$(PATH)

deploy: deploy-build
	@if [ -f infra/samconfig.toml ]; then \
		cd infra && PATH=$(DEPLOY_PATH) sam deploy; \
	else \
		cd infra && PATH=$(DEPLOY_PATH) sam deploy --guided; \
	fi

# SAM's rust-cargolambda builder runs `cargo lambda build --release --arm64
# --bin <Binary>` in each function's CodeUri (the workspace root) and takes
# target/lambda/<Binary>/bootstrap from there: the target directory must be
# the workspace's own.
deploy-build: deploy-tools
	rustup target add aarch64-unknown-linux-gnu
	cd infra && CARGO_TARGET_DIR=$(CURDIR)/target PATH=$(DEPLOY_PATH) \
		sam build --beta-features --build-dir .aws-sam/build

deploy-tools: $(DEPLOY_TOOLS)/.installed

$(DEPLOY_TOOLS)/.installed: scripts/requirements-deploy.txt
	python3 -m venv $(DEPLOY_TOOLS)
	$(DEPLOY_TOOLS)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-deploy.txt
	touch $@

browser:
	@command -v chromium >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# cfn-lint, checkov and aws-sam-translator for the infra/ checks (their own
# virtual environment: checkov's pins do not mix with moto's).
infra-tools: .tools/infra/.installed

.tools/infra/.installed: scripts/requirements-infra.txt
	python3 -m venv .tools/infra
	.tools/infra/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-infra.txt
	touch $@

.tools/node_modules/.bin/asl-validator:
	npm install --silent --no-audit --no-fund --prefix .tools $(ASL_VALIDATOR)

.tools/node_modules/playwright-core/package.json:
	npm install --silent --no-audit --no-fund --prefix .tools $(PLAYWRIGHT)

## lint: formatting, clippy's lints, and the documentation's links (rustdoc's
## warnings denied: a link to a private or missing item). `make test` runs the
## first two; rustdoc would compile every AWS SDK crate once more (3 minutes).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

emulator-install:
	scripts/emulator install

emulator-start:
	scripts/emulator start

emulator-stop:
	scripts/emulator stop

## bench: cold start and size of the ten Lambdas, fresh work
## per sample, against the floor (a bare lambda_runtime function) and, where
## it does the same calls, Python + boto3; the audit of a 5,000-instance
## fleet against a Python + boto3 tool; an organization's audit (10,000
## instances, 10 accounts x 2 regions) through the single Lambda and the
## audit state machine, with an estimate for 500 accounts x 17 regions; the
## audit's in-process throughput
FUNCTIONS := start-build resolve-source launch-builder run-ssm-provision create-image test-image \
	copy-image promote audit-fleet cleanup-build

bench: emulator-install
	$(CARGO) build --release --bins $(addprefix -p ,$(FUNCTIONS)) -p lambda-floor -p kiln-cli -p audit-throughput
	$(KILN_VENV)/bin/python bench/coldstart.py --target-dir $(CARGO_TARGET_DIR)/release
	$(KILN_VENV)/bin/python bench/audit.py --kiln $(CARGO_TARGET_DIR)/release/kiln
	$(KILN_VENV)/bin/python bench/org_audit.py --kiln $(CARGO_TARGET_DIR)/release/kiln \
		--functions $(CARGO_TARGET_DIR)/release
	$(CARGO_TARGET_DIR)/release/audit-throughput

clean:
	$(CARGO) clean
	rm -rf .venv .emulator .tools
