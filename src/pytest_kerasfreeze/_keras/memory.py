"""How many bytes this process can still allocate without swapping or being OOM-killed.

The bottom layer: the standard library only (psutil is used where it is importable, on
macOS and unknown platforms, never required). Nothing is cached: a reading costs about
0.1 ms on Linux, so read it once per snapshot, not once per weight.

What is read:

* **Linux**: the smaller of ``MemAvailable`` in ``/proc/meminfo`` (kernels before 3.14:
  MemFree + Buffers + Cached + SReclaimable) and, for every memory-cgroup level from this
  process's cgroup up to the root of its hierarchy, ``limit − usage + inactive_file``:
  cgroup v2 ``min(memory.max, memory.high) − memory.current`` + ``inactive_file`` of
  ``memory.stat``; cgroup v1 ``memory.limit_in_bytes − memory.usage_in_bytes`` +
  ``total_inactive_file`` (a v1 limit ≥ 2^62 means none). psutil is not used on Linux:
  its ``available`` is MemAvailable alone and misses a container's limit.
* **macOS**: ``psutil.virtual_memory().available`` if psutil is importable, else the same
  figure from ``vm_stat``: pages free + speculative + inactive, times the page size.
* **Windows**: ``GlobalMemoryStatusEx`` through ctypes, min(ullAvailPhys, ullAvailVirtual)
  (the second matters to 32-bit processes only). Job-object limits are not read.
* **elsewhere**: psutil, else ``sysconf(SC_AVPHYS_PAGES) × SC_PAGE_SIZE``.

Example::

    >>> from pytest_kerasfreeze._keras import memory
    >>> memory.available_memory() > 0
    True
    >>> memory.describe_source()  # doctest: +SKIP
    'MemAvailable (/proc/meminfo)'
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import re
import subprocess
import sys
from typing import Any, NamedTuple

# Where Linux keeps the figures (tests point these at fake trees).
MEMINFO = "/proc/meminfo"
PROC_CGROUP = "/proc/self/cgroup"
MOUNTINFO = "/proc/self/mountinfo"

_V1_UNLIMITED = 1 << 62  # cgroup v1 writes 9223372036854771712 (PAGE_COUNTER_MAX) for "none"

_psutil: Any = None
if not sys.platform.startswith("linux"):  # used only where the OS is not read directly
    with contextlib.suppress(ImportError):
        _psutil = importlib.import_module("psutil")


class Reading(NamedTuple):
    """Bytes available, and which figure gave them."""

    bytes: int
    source: str


def available_memory() -> int:
    """Bytes this process can still allocate (0 where no figure can be read).

    Example::

        budget = memory.available_memory() // 4  # "auto": copy below a quarter of it
    """
    return read_available().bytes


def describe_source() -> str:
    """Which figure :func:`available_memory` reads here, and where from.

    Example::

        >>> memory.describe_source()  # doctest: +SKIP
        'MemAvailable (/proc/meminfo)'  # in a container: 'cgroup v2 limit of /sys/fs/...'
    """
    return read_available().source


def read_available() -> Reading:
    """The figure and its source in one reading (two calls could see different figures).

    Example::

        avail, source = memory.read_available()
    """
    try:
        if sys.platform.startswith("linux"):
            found = _linux_available()
        elif sys.platform == "darwin":
            found = _macos_available()
        elif sys.platform == "win32":
            found = _windows_available()
        else:
            found = _generic_available()
    except (OSError, ValueError, AttributeError, subprocess.SubprocessError):
        found = None
    if found is None:
        return Reading(0, "unknown: no figure of available memory could be read (0 assumed)")
    return Reading(max(0, found.bytes), found.source)


# -- Linux ------------------------------------------------------------------------------
def _linux_available() -> Reading | None:
    """The smaller of MemAvailable and the tightest cgroup headroom (see the module)."""
    figures = [f for f in (_meminfo_available(), _cgroup_headroom()) if f is not None]
    return min(figures, key=lambda f: f.bytes) if figures else None


def _meminfo_available(path: str | None = None) -> Reading | None:
    """MemAvailable of ``/proc/meminfo`` (the classic estimate on kernels before 3.14)."""
    path = path or MEMINFO
    fields: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        return None
    if "MemAvailable" in fields:
        return Reading(fields["MemAvailable"], f"MemAvailable ({path})")
    if "MemFree" in fields:
        total = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached", "SReclaimable"))
        return Reading(total, f"MemFree + Buffers + Cached + SReclaimable ({path})")
    return None


def _cgroup_headroom() -> Reading | None:
    """The smallest ``limit − usage + inactive_file`` over this process's memory-cgroup
    levels, v2 and v1; ``None`` where no level has a limit."""
    best: Reading | None = None
    for version, directory in _memory_dirs():
        if version == 2:
            limits = [_read_int(f"{directory}/memory.{name}") for name in ("max", "high")]
            known = [v for v in limits if v is not None]
            usage = _read_int(f"{directory}/memory.current")
            if not known or usage is None:
                continue
            room = min(known) - usage + _stat_field(f"{directory}/memory.stat", "inactive_file")
            how = "min(memory.max, memory.high) − memory.current + inactive_file"
        else:
            limit = _read_int(f"{directory}/memory.limit_in_bytes")
            usage = _read_int(f"{directory}/memory.usage_in_bytes")
            if limit is None or usage is None or limit >= _V1_UNLIMITED:
                continue
            room = limit - usage + _stat_field(f"{directory}/memory.stat", "total_inactive_file")
            how = "memory.limit_in_bytes − memory.usage_in_bytes + total_inactive_file"
        if best is None or room < best.bytes:
            best = Reading(room, f"cgroup v{version} limit of {directory}: {how}")
    return best


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _stat_field(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == name and value.strip().isdigit():
                    return int(value)
    except OSError:
        pass
    return 0


def _mounts() -> list[tuple[str, str, str, str]]:
    """(fstype, mount point, root inside the hierarchy, super options) of cgroup mounts."""
    found = []
    try:
        with open(MOUNTINFO) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, more = left.split(), right.split()
                if len(fields) >= 5 and more and more[0] in ("cgroup", "cgroup2"):
                    options = more[2] if len(more) > 2 else ""
                    found.append((more[0], fields[4].replace("\\040", " "), fields[3], options))
    except OSError:
        pass
    return found


def _levels(mount_point: str, mount_root: str, cgroup_path: str) -> list[str]:
    """Directories from the process's cgroup up to the mount point, leaf first."""
    rel = cgroup_path
    if mount_root not in ("/", "") and (rel == mount_root or rel.startswith(mount_root + "/")):
        rel = rel[len(mount_root) :]  # no cgroup namespace: the mount shows a subtree
    rel = rel.strip("/")
    leaf = os.path.join(mount_point, rel) if rel else mount_point
    if not os.path.isdir(leaf):  # not visible from here (namespaces): the root only
        leaf = mount_point
    top, level = os.path.normpath(mount_point), os.path.normpath(leaf)
    levels = [level]
    while level != top and len(level) > len(top):
        level = os.path.dirname(level)
        levels.append(level)
    return levels


def _memory_dirs() -> list[tuple[int, str]]:
    """(cgroup version, directory) of every level that may limit this process's memory."""
    try:
        with open(PROC_CGROUP) as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        return []
    v2_path = next((p for h, c, p in entries if h == "0" and c == ""), None)
    v1_path = next((p for _, c, p in entries if "memory" in c.split(",")), None)
    dirs: list[tuple[int, str]] = []
    for fstype, point, root, options in _mounts():
        if fstype == "cgroup2" and v2_path is not None:
            levels = _levels(point, root, v2_path)
            dirs += [(2, d) for d in levels if os.path.exists(f"{d}/memory.max")]
        elif fstype == "cgroup" and v1_path is not None and "memory" in options.split(","):
            levels = _levels(point, root, v1_path)
            dirs += [(1, d) for d in levels if os.path.exists(f"{d}/memory.limit_in_bytes")]
    return dirs


# -- macOS, Windows, elsewhere ----------------------------------------------------------
def _macos_available() -> Reading | None:
    """psutil's figure if importable, else free + speculative + inactive from ``vm_stat``."""
    if _psutil is not None:
        return Reading(int(_psutil.virtual_memory().available), "psutil.virtual_memory().available")
    out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5, check=True)
    found = _parse_vm_stat(out.stdout)
    return None if found is None else Reading(found, "vm_stat: pages free + speculative + inactive")


def _parse_vm_stat(text: str) -> int | None:
    """Bytes in the free, speculative and inactive pages of ``vm_stat``'s output.

    Example::

        >>> _parse_vm_stat("(page size of 4096 bytes)\\nPages free: 2.\\nPages inactive: 1.")
        12288
    """
    size = re.search(r"page size of (\d+) bytes", text)
    pages = dict(re.findall(r'^"?([A-Za-z][^:"]*)"?:\s+(\d+)\.?\s*$', text, re.MULTILINE))
    if size is None or "Pages free" not in pages:
        return None
    wanted = ("Pages free", "Pages speculative", "Pages inactive")
    return int(size.group(1)) * sum(int(pages.get(k, 0)) for k in wanted)


class _MemoryStatusEx(ctypes.Structure):
    _fields_ = [
        ("dwLength", ctypes.c_uint32),
        ("dwMemoryLoad", ctypes.c_uint32),
        ("ullTotalPhys", ctypes.c_uint64),
        ("ullAvailPhys", ctypes.c_uint64),
        ("ullTotalPageFile", ctypes.c_uint64),
        ("ullAvailPageFile", ctypes.c_uint64),
        ("ullTotalVirtual", ctypes.c_uint64),
        ("ullAvailVirtual", ctypes.c_uint64),
        ("ullAvailExtendedVirtual", ctypes.c_uint64),
    ]


def _windows_available() -> Reading | None:
    """min(ullAvailPhys, ullAvailVirtual) of ``GlobalMemoryStatusEx``."""
    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009 (Windows only)
    if not kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    found = int(min(status.ullAvailPhys, status.ullAvailVirtual))
    return Reading(found, "GlobalMemoryStatusEx: min(ullAvailPhys, ullAvailVirtual)")


def _generic_available() -> Reading | None:
    """psutil if importable, else ``sysconf(SC_AVPHYS_PAGES) × SC_PAGE_SIZE``."""
    if _psutil is not None:
        return Reading(int(_psutil.virtual_memory().available), "psutil.virtual_memory().available")
    pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return Reading(pages * size, "sysconf(SC_AVPHYS_PAGES) × SC_PAGE_SIZE")
