# syntax=docker/dockerfile:1.7
# evidence_viewer image (the operator page), built from the repository root:
#   docker build -f deploy/docker/viewer.Dockerfile -t line-inspection/evidence-viewer:0.1.0 .
# No TensorFlow, no Kafka client use: the project's base dependencies plus its `viewer` extra (boto3).
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
COPY evidence_viewer ./evidence_viewer
RUN pip install -c constraints.txt ".[viewer]" \
 && pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE} AS evidence-viewer
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp VIEWER_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8088
CMD ["python", "-m", "evidence_viewer"]
