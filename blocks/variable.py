"""The `cronium-variable` block: one Cronium variable, global or scoped to an owner.

One block document per variable, so that runs writing different keys never touch the same
document: no update can be lost to a concurrent read-modify-write.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from cronium_prefect.caps import NestedTooDeep, load_json
from cronium_prefect.errors import CroniumError
from cronium_prefect.variables import check_key, check_value

__all__ = ["CroniumVariable", "stored_value"]


class CroniumVariable(Block):
    """A value scripts read with `getVariable` and write with `setVariable`. Documented
    in docs/variables.md; a global variable API_TOKEN is the block `global--api-token`.

    Example:
        ```python
        from cronium_prefect.blocks import CroniumVariable

        variable = CroniumVariable.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Cronium Variable"
    _block_type_slug = "cronium-variable"
    _description = "A Cronium variable: key, scope (global or an owner), plain or secret value."

    key: str = Field(description="Variable key: upper case letters, digits and '_'.")
    owner: str | None = Field(
        default=None, description="Owner whose events see it first; unset: global."
    )
    secret: bool = Field(default=False, description="Secret values are masked in logs and UI.")
    value_json: str | None = Field(
        default=None, description="The value as JSON text (plain variables)."
    )
    secret_json: SecretStr | None = Field(
        default=None, description="The value as JSON text (secret variables)."
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value)

    @classmethod
    def of(cls, key: str, value: Any, owner: str | None = None, secret: bool = False):
        text = check_value(check_key(key), value)
        if secret:
            return cls(key=key, owner=owner, secret=True, secret_json=SecretStr(text))
        return cls(key=key, owner=owner, secret=False, value_json=text)

    @property
    def value(self) -> Any:
        text = self.secret_json.get_secret_value() if self.secret_json else self.value_json
        return None if text is None else stored_value(self.key, text)


def stored_value(key: str, text: str) -> Any:
    """A stored value, read as a value written through Cronium is: saved around the model
    (Prefect's API or UI), it may be invalid or nested past the cap; then a clear error
    naming the variable, not a traceback in every run that reads it."""
    try:
        return load_json(text, f"the stored value of variable {key}")
    except NestedTooDeep as exc:
        raise CroniumError(f"{exc}: set it again with `cronium var set {key} ...`") from None
    except ValueError:
        raise CroniumError(
            f"the stored value of variable {key} is not JSON (saved around Cronium): set it "
            f"again with `cronium var set {key} ...`"
        ) from None
