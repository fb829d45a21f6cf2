"""`python -m sekisho` runs the CLI."""

from sekisho.cli import main

raise SystemExit(main())
