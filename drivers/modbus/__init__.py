"""Modbus driver: TCP, RTU over a serial line, RTU over TCP; reads coils, discrete
inputs, holding and input registers into samples, and writes tags marked writable.

See README.md in this folder for the configuration reference.
"""
from drivers.modbus.config import ModbusDeviceConfig, TagConfig
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.write import ModbusWriteError, WriteFailed, WriteRefused, WriteValueError

__all__ = ["ModbusDriver", "ModbusDeviceConfig", "TagConfig", "ModbusWriteError",
           "WriteRefused", "WriteValueError", "WriteFailed"]
