# An SSH server of its own for the remote-worker test (tests/wheel/test_deploy.py): the
# offline test image with OpenSSH and a user `runner`; keys and config are mounted.
ARG BASE_IMAGE=cronium-test:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server && \
    rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd && \
    useradd --create-home --shell /bin/bash runner && \
    usermod -p "*" runner  # no password, yet not locked: sshd refuses keys of locked users
