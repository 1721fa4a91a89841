# The image the compiled Kubeflow Pipelines v2 / Vertex AI pipeline runs.
# It mirrors scripts/env-run's root filesystem: Debian 13, its Python 3.13, and a venv
# installed from the same requirements.lock with --no-deps, so image and local runs match.
FROM debian:trixie-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/bonsai/venv \
    PATH=/opt/bonsai/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

COPY requirements.lock /opt/bonsai/requirements.lock
RUN python3 -m venv /opt/bonsai/venv \
 && python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip install --no-cache-dir --no-deps -r /opt/bonsai/requirements.lock

WORKDIR /opt/bonsai/src
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipeline ./pipeline
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
 && python -c "import components, pipeline, tfx; print('tfx', tfx.__version__)"

# KFP v2 / Vertex run each component as
#   python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ARGS
# (the compiled spec sets the command); the executors are imported from the installed
# package by module path, so nothing outside the image is needed.
WORKDIR /opt/bonsai
