import sys

from kimi_mcp.cli import main

sys.exit(main())
