import sys

from broker.operator.cli import main

sys.exit(main())
