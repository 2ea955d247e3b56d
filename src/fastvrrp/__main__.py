import sys

from fastvrrp.cli import main

sys.exit(main())
