"""An unreachable Docker daemon is a clear error naming where Cronium looked."""

import pytest

from cronium_prefect.errors import DockerUnavailable
from cronium_prefect.executors.docker import docker_client


def test_unreachable_daemon_names_the_address(monkeypatch, tmp_path):
    socket_path = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    with pytest.raises(DockerUnavailable) as caught:
        docker_client()
    message = str(caught.value)
    assert message.startswith(f"cannot reach the Docker daemon through unix://{socket_path}")
    assert "Is dockerd running" in message
