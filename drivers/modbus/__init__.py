"""Modbus TCP driver: holding and input registers polled into samples.

See README.md in this folder for the configuration reference.
"""
from drivers.modbus.config import ModbusDeviceConfig, TagConfig
from drivers.modbus.driver import ModbusDriver

__all__ = ["ModbusDriver", "ModbusDeviceConfig", "TagConfig"]
