import sys

from replaylib.cli import main

sys.exit(main())
