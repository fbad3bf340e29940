# One image for every fraudradar service; the command picks the service:
#   docker run fraudradar/fraudradar:0.1.0 ingest | score | api | topics ensure | simulate ...
# Slim, non-root (uid 10001), works with a read-only root filesystem (writes only to /tmp).
# /config is where docker-compose.yml keeps generated keys and the partners file (a volume).
# Versions are pinned: the base image by tag here, Python packages by the wheel build below.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# a C compiler for the compiled parts (services/scorer/_fastcore.c, models/_hstcore.c; the wheel
# carries the built module, the runtime stage needs no compiler)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md LICENSE ./
COPY services ./services
COPY models ./models
# Wheels of the project and all its dependencies; the runtime stage installs from them offline.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    FRAUDRADAR_CACHE=/tmp/fraudradar MPLCONFIGDIR=/tmp/matplotlib HOME=/tmp
RUN groupadd --gid 10001 fraudradar \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fraudradar
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels fraudradar && rm -rf /wheels \
 && install -d -o 10001 -g 10001 /config
USER 10001:10001
WORKDIR /tmp
# 9400: /metrics /healthz /readyz of every service (and ingest's HTTP push); 8080: partner API.
EXPOSE 9400 8080
ENTRYPOINT ["fraudradar"]
CMD ["--help"]
