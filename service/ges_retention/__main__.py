from ges_retention.cli import main

raise SystemExit(main())
