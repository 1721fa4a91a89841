# The image the compiled Kubeflow Pipelines v2 / Vertex AI pipeline runs.
# It mirrors scripts/env-run's root filesystem: Debian 13, its Python 3.13, and a venv
# installed from the same requirements.lock with --no-deps, so image and local runs match.
#
# Targets:
#   runtime  (default here; `make image`)  the Vertex / Kubeflow task image.
#   dataflow the same, plus Beam's SDK harness boot entrypoint, for Dataflow's
#            --sdk_container_image (needs the apache/beam_python3.13_sdk image of the
#            lock's Beam version; `make image-dataflow`).
ARG BEAM_VERSION=2.77.0

FROM debian:trixie-slim AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/bonsai/venv \
    PATH=/opt/bonsai/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONUNBUFFERED=1

COPY requirements.lock /opt/bonsai/requirements.lock
RUN python3 -m venv /opt/bonsai/venv \
 && python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip install --no-cache-dir --no-deps -r /opt/bonsai/requirements.lock

# The project is installed as a wheel (only `tfx_bonsai` lands in site-packages); the source
# is removed afterwards, so nothing on the task's working directory can shadow it.
COPY pyproject.toml README.md LICENSE /tmp/bonsai-src/
COPY tfx_bonsai /tmp/bonsai-src/tfx_bonsai
COPY components /tmp/bonsai-src/components
COPY pipeline /tmp/bonsai-src/pipeline
WORKDIR /opt/bonsai
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation /tmp/bonsai-src \
 && rm -rf /tmp/bonsai-src \
 && python -m pip check \
 && python -c "import tfx_bonsai, tfx; print('tfx-bonsai', tfx_bonsai.__version__, 'tfx', tfx.__version__)"

# KFP v2 / Vertex run each component as
#   python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ARGS
# (the compiled spec sets the command); the executors are imported from the installed
# package (tfx_bonsai.components...), so nothing outside the image is needed.

# Beam's SDK harness, for Dataflow workers: the boot binary of the same Beam version as the
# lock, copied from Beam's own SDK image, as Beam's custom-container guide does.
FROM apache/beam_python3.13_sdk:${BEAM_VERSION} AS beam_sdk

FROM runtime AS dataflow
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

FROM runtime
