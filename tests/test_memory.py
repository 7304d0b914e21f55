"""available_memory() on fake /proc and cgroup trees (v2 in a namespace, a limit on an
ancestor, memory.high, v1 with and without a namespace, unlimited v1 on a hybrid machine,
old kernels), the macOS/Windows/other readers with their sources faked, and one real
reading. Needs no Keras."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from pytest_kerasfreeze._keras import memory

GiB, MiB = 1 << 30, 1 << 20


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake_linux(tmp_path, monkeypatch):
    """Point memory's Linux paths at files under tmp_path; returns a function that
    writes /proc/self/cgroup and /proc/self/mountinfo from (fstype, point, root, options)."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {64 * GiB // 1024} kB\nMemAvailable: {32 * GiB // 1024} kB\n")
    monkeypatch.setattr(memory, "MEMINFO", str(meminfo))
    monkeypatch.setattr(memory, "PROC_CGROUP", str(tmp_path / "cgroup"))
    monkeypatch.setattr(memory, "MOUNTINFO", str(tmp_path / "mountinfo"))

    def setup(cgroup, mounts):
        (tmp_path / "cgroup").write_text(cgroup)
        lines = [
            f"{30 + i} 25 0:{i} {root} {point} rw,nosuid - {fstype} {fstype} rw,{options}"
            for i, (fstype, point, root, options) in enumerate(mounts)
        ]
        (tmp_path / "mountinfo").write_text("\n".join(lines) + "\n")

    return setup


def test_v2_in_a_cgroup_namespace(tmp_path, fake_linux):
    cg = tmp_path / "sys/fs/cgroup"
    write(cg / "memory.max", f"{GiB}\n")
    write(cg / "memory.current", f"{300 * MiB}\n")
    write(cg / "memory.stat", f"anon 1\nfile 2\ninactive_file {100 * MiB}\nactive_file 3\n")
    fake_linux("0::/\n", [("cgroup2", str(cg), "/", "nsdelegate")])
    assert memory._cgroup_headroom().bytes == GiB - 300 * MiB + 100 * MiB
    reading = memory._linux_available()
    assert reading.bytes == GiB - 200 * MiB
    assert reading.source.startswith(f"cgroup v2 limit of {cg}: min(memory.max, memory.high)")


def test_v2_limit_on_an_ancestor_and_memory_high(tmp_path, fake_linux):
    cg = tmp_path / "cg2"
    write(cg / "user.slice/memory.max", f"{4 * GiB}\n")
    write(cg / "user.slice/memory.high", f"{3 * GiB}\n")
    write(cg / "user.slice/memory.current", f"{GiB}\n")
    write(cg / "user.slice/job/memory.max", "max\n")
    write(cg / "user.slice/job/memory.high", "max\n")
    write(cg / "user.slice/job/memory.current", f"{GiB // 2}\n")
    fake_linux("0::/user.slice/job\n", [("cgroup2", str(cg), "/", "")])
    reading = memory._cgroup_headroom()
    assert reading.bytes == 2 * GiB  # the parent's memory.high (3) minus its usage (1)
    assert f"{cg}/user.slice:" in reading.source


def test_v1_without_a_namespace_strips_the_mount_root(tmp_path, fake_linux):
    m = tmp_path / "memory"
    write(m / "memory.limit_in_bytes", f"{2 * GiB}\n")
    write(m / "memory.usage_in_bytes", f"{GiB}\n")
    write(m / "memory.stat", f"cache 5\ninactive_file 7\ntotal_inactive_file {10 * MiB}\n")
    fake_linux("4:memory:/docker/abc\n0::/\n", [("cgroup", str(m), "/docker/abc", "memory")])
    reading = memory._cgroup_headroom()
    assert reading.bytes == GiB + 10 * MiB
    assert reading.source == (
        f"cgroup v1 limit of {m}: memory.limit_in_bytes − memory.usage_in_bytes"
        " + total_inactive_file"
    )


def test_v1_unlimited_on_a_hybrid_machine_reads_meminfo(tmp_path, fake_linux):
    m, unified = tmp_path / "memory", tmp_path / "unified"
    write(m / "process_api/x/memory.limit_in_bytes", "9223372036854771712\n")
    write(m / "process_api/x/memory.usage_in_bytes", "1000\n")
    write(unified / "cgroup.procs", "1\n")  # a v2 hierarchy without the memory controller
    fake_linux(
        "4:memory:/process_api/x\n0::/\n",
        [("cgroup", str(m), "/", "memory"), ("cgroup2", str(unified), "/", "")],
    )
    assert memory._cgroup_headroom() is None
    assert memory._linux_available() == (32 * GiB, f"MemAvailable ({memory.MEMINFO})")


def test_meminfo_on_new_and_old_kernels(tmp_path):
    p = tmp_path / "meminfo"
    p.write_text("MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 60 kB\nCached: 20 kB\n")
    assert memory._meminfo_available(str(p)).bytes == 60 * 1024
    p.write_text("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 20 kB\n")
    old = memory._meminfo_available(str(p))
    assert old.bytes == 31 * 1024 and old.source.startswith("MemFree + Buffers")
    assert memory._meminfo_available(str(tmp_path / "absent")) is None


def test_linux_takes_the_smaller_and_nothing_is_cached(tmp_path, fake_linux, monkeypatch):
    cg = tmp_path / "cg"
    write(cg / "memory.max", f"{GiB}\n")
    write(cg / "memory.current", "0\n")
    fake_linux("0::/\n", [("cgroup2", str(cg), "/", "")])
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.available_memory() == GiB
    assert memory.describe_source().startswith("cgroup v2 limit")
    write(cg / "memory.current", f"{GiB // 4}\n")
    assert memory.available_memory() == 3 * GiB // 4  # read again, not remembered
    write(cg / "memory.current", f"{2 * GiB}\n")  # over the limit: nothing left, not < 0
    assert memory.available_memory() == 0


def test_nothing_readable_is_zero_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "MEMINFO", str(tmp_path / "none"))
    monkeypatch.setattr(memory, "PROC_CGROUP", str(tmp_path / "none"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.available_memory() == 0
    assert memory.describe_source().startswith("unknown")


VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               12345.
Pages active:                            400000.
Pages inactive:                          300000.
Pages speculative:                         5000.
Pages wired down:                        150000.
"Translation faults":                 123456789.
"""


def test_macos_reads_psutil_or_vm_stat(monkeypatch):
    fake_psutil = types.SimpleNamespace(virtual_memory=lambda: types.SimpleNamespace(available=7))
    monkeypatch.setattr(memory, "_psutil", fake_psutil)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.read_available() == (7, "psutil.virtual_memory().available")
    monkeypatch.setattr(memory, "_psutil", None)
    done = subprocess.CompletedProcess(["vm_stat"], 0, stdout=VM_STAT, stderr="")
    monkeypatch.setattr(memory.subprocess, "run", lambda *a, **k: done)
    assert memory.read_available() == (
        16384 * (12345 + 5000 + 300000),
        "vm_stat: pages free + speculative + inactive",
    )
    assert memory._parse_vm_stat("no page size here") is None


def test_windows_reads_global_memory_status(monkeypatch):
    def fill(pointer):
        status = pointer._obj
        status.ullAvailPhys, status.ullAvailVirtual = 5 * GiB, 2 * GiB
        return 1

    kernel32 = types.SimpleNamespace(GlobalMemoryStatusEx=fill)
    monkeypatch.setattr(memory.ctypes, "windll", types.SimpleNamespace(kernel32=kernel32), False)
    monkeypatch.setattr(sys, "platform", "win32")
    assert memory.read_available() == (
        2 * GiB,
        "GlobalMemoryStatusEx: min(ullAvailPhys, ullAvailVirtual)",
    )


def test_other_platforms_use_sysconf_without_psutil(monkeypatch):
    monkeypatch.setattr(memory, "_psutil", None)
    monkeypatch.setattr(sys, "platform", "sunos5")
    pages = {"SC_AVPHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(memory.os, "sysconf", pages.__getitem__)
    assert memory.read_available() == (40960, "sysconf(SC_AVPHYS_PAGES) × SC_PAGE_SIZE")


def test_this_machine():
    avail, source = memory.read_available()
    assert avail > 0
    assert memory.available_memory() > 0
    if sys.platform.startswith("linux"):
        assert source.startswith(("MemAvailable", "cgroup", "MemFree"))
