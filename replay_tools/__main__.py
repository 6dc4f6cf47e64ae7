import sys

from replay_tools.cli import main

sys.exit(main())
