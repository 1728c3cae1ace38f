"""What machine a bench ran on, recorded in every bench's JSON so that figures from different
machines can be put side by side: the CPU model and the flags that matter for training
(bf16 dot products, AVX-512, AMX), the core count, the torch version, and a 2048 x 2048 fp32
matmul rate taken in the same run, which says how fast this machine is right now."""

import os
import platform

import torch

from sasrec.machine import matmul_gflops


def cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    wanted = ("avx512_bf16", "avx512f", "avx512_vnni", "amx_bf16", "amx_tile", "avx2")
    return model, [flag for flag in wanted if flag in flags]


def machine_info() -> dict:
    model, flags = cpu_model_and_flags()
    info = {"cpu": model, "cpu_flags": flags, "bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
            "avx512": "avx512f" in flags, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "matmul_2048_fp32_gflops": round(matmul_gflops(), 1)}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


if __name__ == "__main__":
    import json

    print(json.dumps(machine_info()))
