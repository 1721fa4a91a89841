# Every target runs inside the project environment (scripts/env-run builds it on first use).
ENV_RUN := scripts/env-run
PYTEST_ARGS ?=

.PHONY: demo test bench lock shell image image-dataflow vertex-local
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

# The project image (Vertex / Kubeflow tasks), tagged with the package version; starts dockerd
# and creates the debian:trixie-slim base locally when no registry is reachable.
image:
	scripts/image runtime

# The same plus Beam's SDK harness entrypoint, for Dataflow workers (needs Beam's SDK image).
image-dataflow:
	scripts/image dataflow

# The compiled Vertex pipeline launched in that image on this machine, as Vertex launches it.
vertex-local: image
	scripts/vertex-local --fresh
