# syntax=docker/dockerfile:1
#
# One image for every foundry process (API, migrations, workers); docker-compose.yml picks the
# command. The training image is the same Dockerfile built with EXTRAS=gpu (the "gpu" extra
# of pyproject.toml).
#
#   docker build -t foundry .                                  # CPU image
#   docker build -t foundry-training --build-arg EXTRAS=gpu .  # training image (CUDA)
#
# TORCH_INDEX_URL, when set, is passed to pip as an extra index: pointing it at a CPU-only
# wheel index keeps the CPU image free of CUDA libraries while still honouring the torch pin
# in pyproject.toml (a "+cpu" local version satisfies "==X.Y.Z").

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A virtualenv is self-contained, so the runtime stage copies exactly one folder.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .

ARG EXTRAS=""
ARG TORCH_INDEX_URL=""
RUN pip install --upgrade pip \
 && pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".${EXTRAS:+[$EXTRAS]}" \
 && foundry --help > /dev/null


FROM ${PYTHON_IMAGE} AS runtime

# No system packages needed: psycopg[binary], Pillow and torch wheels bundle their libraries.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/foundry --create-home foundry

# Only the virtualenv: the project (migrations included) is installed in it, and no second
# copy of the source can shadow the installed package.
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FOUNDRY_VAR_DIR=/var/lib/foundry

# /var/lib/foundry (the app user's home) exists in the image owned by that user, so a fresh
# named volume mounted there inherits the ownership and the non-root processes can write to it.
# The working directory is an empty, read-only one: Settings reads a ".env" from it if present.
WORKDIR /app
USER foundry

EXPOSE 8000
CMD ["foundry", "api", "--host", "0.0.0.0", "--port", "8000"]
