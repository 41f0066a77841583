from dlpy.cli import main

raise SystemExit(main())
