# One image for the broker, the notifier and the sandbox (the command picks which).
#   runtime: the services only, no test dependencies, runs as a non-root user.
#   test:    runtime plus the dev extra and tests/, for compose's `tests` service.
# No key or client secret is ever baked in: they come from the environment at run time.
# PYTHON_IMAGE: any Debian-based Python 3.11 image; where no registry is reachable,
# scripts/compose_test.py builds a local stand-in from Debian's packages and passes it here.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json
WORKDIR /app
RUN groupadd --system --gid 10001 zoho \
    && useradd --system --uid 10001 --gid zoho --home-dir /app --no-create-home zoho
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY zoho ./zoho
COPY servicekit ./servicekit
COPY broker ./broker
COPY notifier ./notifier
COPY sandbox ./sandbox
RUN pip install --no-cache-dir --no-deps . && rm -rf build *.egg-info
USER zoho
EXPOSE 50051 50052 8780 9090 9091
CMD ["zoho-broker", "serve", "--no-migrate"]

FROM runtime AS test
USER root
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY tests ./tests
# tests/integration/test_compose.py reads these.
COPY docker-compose.yml Dockerfile .dockerignore ./
COPY deploy ./deploy
USER zoho
CMD ["pytest", "-q", "-p", "no:cacheprovider", "tests/integration"]
