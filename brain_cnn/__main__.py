from brain_cnn.cli import main

raise SystemExit(main())
