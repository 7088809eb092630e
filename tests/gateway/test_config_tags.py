"""A device's `tags` that is not a table is a configuration error naming it, not a crash of the validator."""
from __future__ import annotations

import pytest

from gateway.config import parse
from gateway.errors import ConfigError


@pytest.mark.parametrize("tags", ["5", "1.5", "true"])
def test_tags_that_are_not_a_table_are_an_error_with_their_key_path(tags):
    text = (f'[gateway]\nid = "g"\n[devices.x]\ntype = "modbus_tcp"\nhost = "h"\ntags = {tags}\n'
            '[sinks.o]\ntype = "mqtt"\nurl = "mqtt://h"\n')
    with pytest.raises(ConfigError) as exc:
        parse(text)
    assert any("devices.x" in p for p in exc.value.problems), exc.value.problems
