from digitread.cli import main

raise SystemExit(main())
