# l4kit in a container. The responder needs NET_RAW and NET_ADMIN, and lo's two loopback
# sysctls set by docker run (a container's /proc/sys is read-only):
#   docker build -t l4kit .
#   docker run --rm -it --cap-add NET_RAW --cap-add NET_ADMIN \
#     --sysctl net.ipv4.conf.lo.route_localnet=1 --sysctl net.ipv4.conf.lo.accept_local=1 l4kit
# System packages come from the same list as the README commands and CI, less the
# ones only the tests use (marked "# tests" there: tshark). Python packages are pinned
# by scripts/docker-constraints.txt, so that two builds of one commit are the same.

# Stage 1: the wheel, with replay's per-packet modules compiled by mypyc (setup.py).
# The C compiler stays in this stage.
FROM python:3.11-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/docker-constraints.txt /constraints.txt
ENV PIP_CONSTRAINT=/constraints.txt
COPY pyproject.toml setup.py README.md LICENSE ./
COPY toolkit toolkit
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the tools l4kit runs with, and the wheel.
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/l4kit
COPY scripts/system-packages.txt scripts/system-packages.txt
# hadolint ignore=DL3008
RUN apt-get update \
    && grep -v '#\s*tests' scripts/system-packages.txt | sed 's/\s*#.*//' | grep -v '^\s*$' \
       | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*

COPY scripts/docker-constraints.txt scripts/docker-constraints.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --constraint scripts/docker-constraints.txt /wheels/*.whl && rm -rf /wheels

ENTRYPOINT ["l4kit"]
CMD ["respond", "--iface", "lo"]
