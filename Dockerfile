# l4kit in a container. The responder needs NET_RAW and NET_ADMIN:
#   docker build -t l4kit .
#   docker run --rm -it --cap-add NET_RAW --cap-add NET_ADMIN l4kit
# System packages come from the same list as the README commands and CI.
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/l4kit
COPY scripts/system-packages.txt scripts/system-packages.txt
# hadolint ignore=DL3008
RUN apt-get update \
    && grep -v '^\s*#' scripts/system-packages.txt | grep -v '^\s*$' \
       | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md LICENSE ./
COPY toolkit toolkit
RUN pip install --no-cache-dir .

ENTRYPOINT ["l4kit"]
CMD ["respond", "--iface", "lo"]
