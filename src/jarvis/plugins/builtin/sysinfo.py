"""`/sysinfo`: CPU, memory, disk, uptime and the loaded model."""

from __future__ import annotations

import os
import platform
import shutil
import time

import psutil

from jarvis.plugins.hookspecs import hookimpl
from jarvis.plugins.types import Command, Context, Tool

PLUGIN_NAME = "System information"
PLUGIN_DESCRIPTION = "CPU, memory, disk, uptime and the loaded model (/sysinfo)."


def _gb(value: float) -> str:
    return f"{value / 1e9:.1f} GB"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {seconds}s"


def report(context: Context) -> dict:
    services = context.services
    memory = psutil.virtual_memory()
    data_dir = services.settings.data_dir if services else os.getcwd()
    disk = shutil.disk_usage(data_dir)
    loaded = services.engines.local.loaded if services else None
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu_count": os.cpu_count(),
        "cpu_percent": psutil.cpu_percent(interval=0.1),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "memory_total": memory.total,
        "memory_available": memory.available,
        "disk_total": disk.total,
        "disk_free": disk.free,
        "system_uptime_seconds": round(time.time() - psutil.boot_time()),
        "service_uptime_seconds": round(time.time() - services.started_at) if services else None,
        "loaded_model": loaded.name if loaded else None,
    }


def sysinfo_command(_args: str, context: Context) -> str:
    info = report(context)
    load = ", ".join(map(str, info["load_average"])) if info["load_average"] else "n/a"
    lines = [
        f"OS: {info['os']}",
        f"CPU: {info['cpu_count']} cores, {info['cpu_percent']:.0f}% busy, load {load}",
        f"Memory: {_gb(info['memory_available'])} free of {_gb(info['memory_total'])}",
        f"Disk (data dir): {_gb(info['disk_free'])} free of {_gb(info['disk_total'])}",
        f"Uptime: system {_duration(info['system_uptime_seconds'])}",
        f"Model: {info['loaded_model'] or 'none loaded'}",
    ]
    if info["service_uptime_seconds"] is not None:
        lines[4] += f", JARVIS {_duration(info['service_uptime_seconds'])}"
    return "\n".join(lines)


@hookimpl
def jarvis_commands() -> list[Command]:
    return [Command("sysinfo", "CPU, memory, disk, uptime and the loaded model", sysinfo_command)]


@hookimpl
def jarvis_tools() -> list[Tool]:
    return [
        Tool(
            "system_info",
            "CPU, memory, disk and uptime of the machine JARVIS runs on.",
            {"type": "object", "properties": {}},
            lambda _args, context: report(context),
            ("cpu", "memory", "ram", "disk", "uptime", "load", "speicher", "festplatte", "prozessor", "laufzeit"),
        )
    ]
