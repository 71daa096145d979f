"""The live tests drive hub-submit with the evaluator's offline busybox images."""
from __future__ import annotations

from tests.evaluator.conftest import busybox_binary, busybox_image  # noqa: F401 - fixtures, used by name
