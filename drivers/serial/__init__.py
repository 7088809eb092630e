"""Serial instruments: MT-SICS scales and barcode scanners read through pyserial.

See README.md in this folder for the configuration reference.
"""
from drivers.serial.config import SerialDeviceConfig
from drivers.serial.driver import SerialDriver

__all__ = ["SerialDriver", "SerialDeviceConfig"]
