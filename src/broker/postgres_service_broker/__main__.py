from postgres_service_broker.cli import main

raise SystemExit(main())
