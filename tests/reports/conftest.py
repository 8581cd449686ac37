from __future__ import annotations

from tests.attacks.conftest import _one_torch_thread, basic, mnist_test  # noqa: F401 (shared fixtures)
