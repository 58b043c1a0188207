# syntax=docker/dockerfile:1.7
# producer_sim image (simulated cameras / load generator), built from the repository root:
#   docker build -f deploy/docker/producer-sim.Dockerfile -t line-inspection/producer-sim:0.1.0 .
# It needs no TensorFlow: the project's base dependencies plus its `simulator` extra (pyproject.toml).
# Real images instead of synthetic ones: mount a folder and set SIM_SOURCE_DIR.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# Exact versions of every runtime dependency, as tested (python -m line_harness.tools.lock_constraints).
COPY deploy/docker/constraints.txt ./
COPY line_contracts ./line_contracts
COPY line_runtime ./line_runtime
COPY surface_images ./surface_images
COPY producer_sim ./producer_sim
RUN pip install -c constraints.txt ".[simulator]" \
 && pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE} AS producer-sim
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 10001:10001
CMD ["python", "-m", "producer_sim", "run"]
