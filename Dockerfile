# recstream worker image: the same install as `make install`, run as a non-root user.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RECSTREAM_DATA_DIR=/var/lib/recstream \
    RECSTREAM_REGISTRY_DIR=/var/lib/recstream-models \
    RECSTREAM_WEB_PORT=8082

RUN groupadd --system recstream && useradd --system --gid recstream --home /app recstream \
    && mkdir -p /app /var/lib/recstream /var/lib/recstream-models \
    && chown recstream:recstream /var/lib/recstream /var/lib/recstream-models

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY recstream ./recstream
COPY agents ./agents
COPY tables ./tables
COPY web ./web
COPY models ./models
RUN python -m pip install --upgrade pip && python -m pip install .

USER recstream
EXPOSE 8082
VOLUME ["/var/lib/recstream", "/var/lib/recstream-models"]
HEALTHCHECK --interval=10s --timeout=2s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8082/healthz', timeout=2).status != 200)"
# RECSTREAM_BROKER must name the cluster (kafka://host:9092); there is no embedded broker here.
CMD ["faust", "-A", "recstream.app", "worker", "-l", "info"]
