# Every target runs inside the project environment (scripts/env-run builds it on first use).
ENV_RUN := scripts/env-run
PYTEST_ARGS ?=

.PHONY: demo test bench lock shell
# bonsai exits 3 when the gate refuses the candidate: for the demo that is an outcome, not an error.
demo:
	$(ENV_RUN) bonsai run --config configs/digits.yaml; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "demo: the gate refused this candidate; nothing was pushed"; exit 0; fi; exit $$rc

test:
	$(ENV_RUN) python -m pytest $(PYTEST_ARGS)

bench:
	$(ENV_RUN) python -m bench

lock:
	$(ENV_RUN) --relock

shell:
	$(ENV_RUN) bash
