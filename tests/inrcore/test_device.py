import platform
from pathlib import Path

import pytest
import torch

from inrcore.device import multiplies_bfloat16


def _cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64", reason="reads x86 /proc/cpuinfo")
def test_the_cpu_multiplies_bfloat16_as_its_flags_say():
    # the kernel's own word on the CPU, beside torch's: AMX tiles or AVX-512 BF16 multiply bfloat16
    flags = _cpuinfo_flags()
    assert multiplies_bfloat16(torch.device("cpu")) == bool({"amx_tile", "avx512_bf16"} & flags)


def test_devices_without_bfloat16_arithmetic():
    assert multiplies_bfloat16(torch.device("meta")) is False
    if not torch.cuda.is_available():
        assert multiplies_bfloat16(torch.device("cuda")) is False

