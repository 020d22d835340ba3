"""tfll-live: real-time tracking of the tear film lipid layer (Kothapalli et al., 2022)."""

__version__ = "0.1.0"
