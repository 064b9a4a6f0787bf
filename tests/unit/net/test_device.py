"""Device names are checked as Linux checks them, before a device is opened."""

from __future__ import annotations

import pytest

from weron.net.device import DeviceError, check_device_name


@pytest.mark.parametrize("name", ["weron0", "wrn-%d", "a" * 15, ""])
def test_device_names_linux_takes(name: str) -> None:
    check_device_name(name)


@pytest.mark.parametrize("name", ["bad/name", "a b", "tab\there", "a:1", ".", "..", "a" * 16])
def test_device_names_linux_refuses(name: str) -> None:
    with pytest.raises(DeviceError, match="choose another --dev"):
        check_device_name(name)
