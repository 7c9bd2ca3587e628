import sys

from amaro.cli import main

sys.exit(main())
