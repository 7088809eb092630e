"""The durable LMDB store-and-forward queue (imports nothing from gateway or webui)."""
