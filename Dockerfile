# One image for every role: `cronium worker`, `cronium dashboard`, `prefect server start`
# and the CLI. Built from the wheel (python -m build), never from the checkout:
#   python -m build && docker build -t cronium .
# ARG BASE_IMAGE lets tests build it from the offline Debian image (cronium-test:bookworm).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# Debian's own python3 (the offline test image) comes without venv; python:*-slim has it.
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3-venv && \
      rm -rf /var/lib/apt/lists/*; \
    fi
# dist/ holds the cronium wheel, and may hold every dependency's wheel too: then build with
# --build-arg PIP_NO_INDEX=1 (offline, or behind a proxy the image does not trust).
ARG PIP_NO_INDEX
COPY dist/ /tmp/dist/
RUN python3 -m venv /opt/cronium && \
    /opt/cronium/bin/pip install --no-cache-dir --find-links /tmp/dist \
      /tmp/dist/cronium_prefect-*.whl && \
    rm -rf /tmp/dist && \
    useradd --system --uid 10001 --create-home --home-dir /home/cronium cronium

# Not root: secrets come from the environment or mounted files at run time, never baked in.
USER cronium
WORKDIR /home/cronium
ENV PATH=/opt/cronium/bin:$PATH \
    CRONIUM_HOME=/home/cronium/.cronium \
    PREFECT_HOME=/home/cronium/.prefect \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["cronium"]
CMD ["--help"]
