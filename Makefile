# Every target runs inside the project environment (scripts/env-run builds it on first use).
ENV_RUN := scripts/env-run
PYTEST_ARGS ?=

.PHONY: demo test bench lock shell
demo:
	$(ENV_RUN) bonsai run --config configs/digits.yaml

test:
	$(ENV_RUN) python -m pytest $(PYTEST_ARGS)

bench:
	$(ENV_RUN) python -m bench

lock:
	$(ENV_RUN) --relock

shell:
	$(ENV_RUN) bash
