# The hourly job image: `replayer hourly` as its entrypoint (tools/hourly-entrypoint.sh), one
# hour of the serverless mix configured by the environment (docs/hourly.md).
#
#   docker build -t replayer-hourly .
#   docker run --rm --env-file hour.env replayer-hourly            (or --dry-run)
#
# Two stages: the first builds replayer and its C extensions (Cython, a C compiler) into a
# virtual environment; the second holds that environment only, and runs as a user without
# privileges.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A C compiler for replayer's extensions; libcurl's headers only for pycurl on a platform
# without its binary wheel (replayer itself loads libcurl at run time, no headers needed).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/replayer
ENV PATH=/opt/replayer/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY _ext ./_ext
COPY proto ./proto
COPY replayer ./replayer
# The build requirements (Cython, numpy, grpcio-tools) come from pyproject.toml; the
# extensions are compiled and the gRPC stubs of proto/ generated here, for this image's Python,
# and the extensions imported once from the installed package (-I: not from ./replayer).
RUN pip install . \
 && python -I -c "import replayer._pacer, replayer._h1, replayer._curl"

FROM ${PYTHON_IMAGE}
# libcurl is what pycurl built from source links to; ca-certificates verify https:// targets.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin replayer
COPY --from=build /opt/replayer /opt/replayer
COPY tools/hourly-entrypoint.sh /usr/local/bin/replayer-hourly
ENV PATH=/opt/replayer/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
# Run directories (records, summary, the lines) go under results/ here.
WORKDIR /home/replayer
# sh execs Python, so replayer gets the scheduler's SIGTERM itself.
ENTRYPOINT ["/bin/sh", "/usr/local/bin/replayer-hourly"]
