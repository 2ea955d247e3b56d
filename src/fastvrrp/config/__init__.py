"""keepalived.conf: lexer, parser, typed model and semantic checks.

    from fastvrrp.config import load, ConfigError
    config = load("/etc/keepalived/keepalived.conf")   # raises ConfigError (every error)
    config.instances, config.warnings
"""

from fastvrrp.config.diagnostics import ConfigError, Diagnostic, Location, Severity
from fastvrrp.config.loader import default_config_id, load, parse_text
from fastvrrp.config.model import Config

__all__ = [
    "Config",
    "ConfigError",
    "Diagnostic",
    "Location",
    "Severity",
    "default_config_id",
    "load",
    "parse_text",
]
