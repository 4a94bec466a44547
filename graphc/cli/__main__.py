"""`python -m graphc.cli`: the `graphc` command."""
from graphc.cli import main

raise SystemExit(main())
