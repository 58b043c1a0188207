# syntax=docker/dockerfile:1.7
# Worker images, built from the repository root (the build context):
#   docker build -f deploy/docker/worker.Dockerfile --target worker-gpu -t line-inspection/worker:0.1.0-gpu .
#   docker build -f deploy/docker/worker.Dockerfile --target worker-cpu -t line-inspection/worker:0.1.0-cpu .
# Model baked in: add --build-arg MODEL_DIR=models (a folder in the context holding version sub-folders,
# e.g. models/3/{saved_model.pb,model.tflite,metadata.json}). Without it /models is empty and a model
# must be mounted there (Helm: model.source url|s3|pvc; compose: a bind mount). See docs/deploy.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TF_VERSION=2.21.0

# ---- build: a virtualenv with the project and its wheels; nothing from here but /opt/venv ships.
FROM ${PYTHON_IMAGE} AS build-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# Exact versions of every runtime dependency, as tested (python -m line_harness.tools.lock_constraints).
COPY deploy/docker/constraints.txt ./
# Only the worker and the layers below it: no training, no simulator (docs/architecture.md).
COPY line_contracts ./line_contracts
COPY line_runtime ./line_runtime
COPY worker ./worker

FROM build-base AS build-cpu
ARG TF_VERSION
# LiteRT only: the CPU worker serves the model's LiteRT twin and never imports TensorFlow.
RUN pip install -c constraints.txt ".[worker-cpu]" \
 && pip uninstall -y pip setuptools wheel

FROM build-base AS build-gpu
ARG TF_VERSION
# TensorFlow's GPU build: the and-cuda extra brings CUDA and cuDNN as wheels; the node supplies the driver.
RUN pip install -c constraints.txt "tensorflow[and-cuda]==${TF_VERSION}" ".[worker-gpu]" \
 && pip uninstall -y pip setuptools wheel

# ---- runtime: slim Python, a non-root user, the virtualenv, optionally a model. No compiler, no pip.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2 \
    WORKER_MODEL_PATH=/models \
    WORKER_METRICS_PORT=9400
EXPOSE 9400
CMD ["python", "-m", "worker"]

FROM runtime AS worker-cpu
ARG MODEL_DIR=deploy/docker/no-model
COPY --from=build-cpu /opt/venv /opt/venv
COPY --chown=10001:10001 ${MODEL_DIR} /models
USER 10001:10001

FROM runtime AS worker-gpu
ARG MODEL_DIR=deploy/docker/no-model
COPY --from=build-gpu /opt/venv /opt/venv
COPY --chown=10001:10001 ${MODEL_DIR} /models
USER 10001:10001
