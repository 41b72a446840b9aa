"""ecglens.classify: one 12-lead 1-D CNN for PTB-XL superclasses, and an MIT-BIH beat classifier."""

from ecglens.core import DISCLAIMER

__all__ = ["DISCLAIMER"]
