"""The presets: one module per reproduction, each defining ``PRESET = chinchilla.preset.Preset(...)``."""
