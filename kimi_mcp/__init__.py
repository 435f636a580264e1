"""kimi-mcp: a token-saving companion for coding agents."""

__version__ = "0.1.0"
