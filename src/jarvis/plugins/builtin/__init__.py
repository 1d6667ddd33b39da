"""Built-in plugins; registered through the same hooks as third-party ones."""

from jarvis.plugins.builtin import calculator, datetime_plugin, memory_commands, sysinfo

BUILTINS = {
    "datetime": datetime_plugin,
    "calculator": calculator,
    "sysinfo": sysinfo,
    "memory": memory_commands,
}
