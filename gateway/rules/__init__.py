"""Rules: qualify raw samples into business events (one module per rule type)."""
