"""One line naming the machine a benchmark ran on.

Figures on "a 2-core CPU" differ several-fold between CPU models (training on
a 2-core AMD EPYC with AVX2 ran at about a quarter of the speed of the 2-core
machine the README's first figures came from), so every benchmark prints the
CPU model and its vector extensions beside its numbers.
"""

from __future__ import annotations

import platform
from pathlib import Path


from brain_cnn.model.engines import usable_cpus


def describe() -> str:
    """CPU model, vector extensions TensorFlow and ONNX Runtime use, usable CPUs and OS."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:  # not Linux: the model name from platform is all there is
        pass
    vectors = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    extensions = f" ({', '.join(vectors)})" if vectors else ""
    return f"{model}{extensions}, {usable_cpus()} CPUs usable, {platform.system()} {platform.machine()}"


if __name__ == "__main__":
    print(describe())
