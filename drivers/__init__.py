"""Device drivers: one package per protocol, each producing `Sample`s.

Nothing here imports `gateway`, `store` or `webui`: data flows downhill from the
machines. The shared contract lives in `drivers.base`.
"""
