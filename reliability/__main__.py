import sys

from reliability.cli import main

sys.exit(main(sys.argv[1:]))
