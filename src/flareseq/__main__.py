import sys

from flareseq.cli import main

sys.exit(main())
