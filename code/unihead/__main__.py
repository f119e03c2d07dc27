from unihead.cli import main

raise SystemExit(main())
