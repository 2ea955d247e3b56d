"""fastvrrp: a keepalived.conf-compatible VRRP daemon with Cython accelerators."""

__version__ = "0.1.0"
