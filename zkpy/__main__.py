import sys

from zkpy.cli.main import main

sys.exit(main())
