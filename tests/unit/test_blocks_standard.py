"""Prefect's own standard test suite for blocks, over every Cronium block: descriptions,
field descriptions, a code example that loads the block."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from cronium_prefect.blocks import CroniumEmail, CroniumVariable, SSHServer


class CroniumBlockSuite(BlockStandardTestSuite):
    def test_has_a_documentation_url(self, block: type[Block]) -> None:
        """Prefect's version asks for a hosted documentation URL; Cronium's documentation
        ships with it (docs/, MkDocs) and is hosted nowhere: the block says where it is
        documented in its description instead."""
        assert block._documentation_url is None
        assert "docs/" in (block.__doc__ or "")

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """Prefect's version downloads the logo from the internet, which no test here may
        do; Cronium's blocks have no logo (Prefect's UI shows its default)."""
        assert block._logo_url is None


class TestSSHServer(CroniumBlockSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return SSHServer


class TestCroniumVariable(CroniumBlockSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return CroniumVariable


class TestCroniumEmail(CroniumBlockSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return CroniumEmail
