"""The plugin is tested end to end: pytester runs pytest in a subprocess on a small project in a temporary directory."""

pytest_plugins = ["pytester"]
