"""OPC-UA driver (asyncua): subscriptions with deadbands, polling as a fallback, security.

See README.md in this folder for the configuration reference.
"""
from drivers.opcua.browse import BrowseError, browse
from drivers.opcua.config import OpcUaDeviceConfig, OpcUaTagConfig
from drivers.opcua.driver import OpcUaDriver

__all__ = ["OpcUaDriver", "OpcUaDeviceConfig", "OpcUaTagConfig", "browse", "BrowseError"]
