"""The demo machinery: a lung-ultrasound clip simulator, a simulated release in the upstream file format, and a
loopback site that serves each source's URL layout on 127.0.0.1. Only ``processing.cli`` (and tests) import it.
"""
