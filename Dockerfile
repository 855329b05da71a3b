# syntax=docker/dockerfile:1
# One image for every salesloop process: `docker run salesloop ingest|aggregator|api|migrate ...`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent salesloop

WORKDIR /app

# Dependencies in their own layer, so a code change does not reinstall them. Only the production
# list: the extras (the dev tooling in devstack/ and its embedded Postgres and broker) stay out.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alembic.ini ./
COPY migrations ./migrations
COPY services ./services
# Editable, so the package stays in /app next to alembic.ini and migrations/, where
# `salesloop migrate` looks for them (services/core/migrate.py).
RUN pip install --no-deps -e .

USER salesloop
EXPOSE 8001 8002 8003
# The services answer GET /healthz; docker-compose.yml checks it with the image's own python.
ENTRYPOINT ["salesloop"]
CMD ["--help"]
