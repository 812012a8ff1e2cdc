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
# Dependencies first, from the lock files alone (the same pins and hashes as the test venv:
# `make lock`): a change to the code reuses this layer.
COPY requirements/runtime.txt requirements/build.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes --no-deps \
        -r requirements/runtime.txt -r requirements/build.txt
COPY pyproject.toml ./
COPY README.md ./
COPY zoho ./zoho
COPY servicekit ./servicekit
COPY broker ./broker
COPY notifier ./notifier
COPY sandbox ./sandbox
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build *.egg-info
USER zoho
EXPOSE 50051 50052 8780 9090 9091
CMD ["zoho-broker", "serve", "--no-migrate"]

FROM runtime AS test
USER root
COPY requirements/dev.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/dev.txt
COPY tests ./tests
# tests/integration/test_compose.py reads these.
COPY docker-compose.yml Dockerfile .dockerignore ./
COPY deploy ./deploy
USER zoho
CMD ["pytest", "-q", "-p", "no:cacheprovider", "tests/integration"]
