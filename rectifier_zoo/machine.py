"""What a measurement ran on: the CPU, named precisely enough to compare figures across days.

Our machines change from session to session (an Intel Xeon with AMX one day, an AMD EPYC of
another generation the next) and a virtual machine's "model name" alone may not tell them
apart ("AMD EPYC" is both Zen 3 and Zen 4): so the family and model numbers and the vector
units that decide speed (AVX-512, AMX) are recorded with every benchmark figure and study
summary. Pure Python; reads /proc/cpuinfo where there is one.
"""

from __future__ import annotations

import platform


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The first CPU of `cpuinfo` (/proc/cpuinfo's text; read when None).

    Returns:
        `{"cpu": model name, "cpu_family": int or None, "cpu_model": int or None,
        "avx512": bool, "amx": bool}`: AVX-512 is any `avx512*` flag, AMX any `amx*` flag.
        Without /proc/cpuinfo, `cpu` is `platform.processor()` and the rest unknown (None,
        False).
    """
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if not key:
            if fields:  # the first processor's block ends at the first blank line
                break
            continue
        fields.setdefault(key, value.strip())
    flags = fields.get("flags", "").split()

    def number(key: str) -> int | None:
        value = fields.get(key, "")
        return int(value) if value.isdigit() else None

    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "cpu_family": number("cpu family"),
        "cpu_model": number("model"),
        "avx512": any(flag.startswith("avx512") for flag in flags),
        "amx": any(flag.startswith("amx") for flag in flags),
    }


def cpu_label(info: dict) -> str:
    """One line for printed tables: 'AMD EPYC (family 25 model 1), no AVX-512, no AMX'.

    A unit that `info` does not record (results written before it was) is left out, or said
    to be unknown for AMX, rather than guessed.
    """
    parts = [info["cpu"]]
    if info.get("cpu_family") is not None and info.get("cpu_model") is not None:
        parts[0] += f" (family {info['cpu_family']} model {info['cpu_model']})"
    if "avx512" in info:
        parts.append("AVX-512" if info["avx512"] else "no AVX-512")
    parts.append({True: "AMX", False: "no AMX"}.get(info.get("amx"), "AMX unknown"))
    return ", ".join(parts)
