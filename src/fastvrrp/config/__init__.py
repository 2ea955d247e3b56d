"""keepalived.conf: lexer, parser, typed model and semantic checks."""
