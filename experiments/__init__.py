"""The presets (one ``PRESET = chinchilla.reproduce.Preset(...)`` per file), installed as ``chinchilla.presets``."""
