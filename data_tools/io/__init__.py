"""Files in and out: atomic writes, video/image I/O, YAML configs, filelists, logging set-up, contact sheets, timing.

Imports only ``data_tools.errors`` and third-party packages; every other part of ``data_tools`` builds on this one.
"""
